//! Local-currency wallets (지역화폐): the region and merchant registry, a wallet per
//! requestor and region, charging, the balance view, and the read–apply–write loop every wallet
//! change goes through (`lane`: this node's writers of one wallet).
//!
//! The money rules (bonus on the monthly cap, bonus first, cancel restore policy, forfeiture) are
//! `instruments::local`'s; the entries are `ledger::standard`'s. Here a wallet is loaded in one
//! snapshot (its row, its bonus grants, the balances of its two ledger accounts), a rule is applied to
//! it in memory, and the new state is written with the entries in one database transaction that
//! succeeds only if nobody wrote the wallet since (its `version`). On one node the changes of a wallet
//! queue in its lane (`lane`), which decides them in order on the wallet it holds and writes them in
//! batches; what another node wrote meanwhile is read again, never overwritten.
//! Bonus that expired is lapsed (posted to the region's forfeited account) by the next write.

use rust_decimal::Decimal;

use super::lane::Lanes;
use crate::config::{Config, RegionSpec, check_id, region_row};
use crate::instruments::card::RuleError;
use crate::instruments::local::{
    BonusGrant, BonusTake, CancelRestore, GrantId, LocalPayment, LocalWallet, RegionPolicy,
};
use crate::ledger::{self, Account, EntryId, JournalEntry};
use crate::money::{Amount, Currency};
use crate::requestors::Requestor;
use crate::store::{
    GrantRow, InstrumentKind, InstrumentRow, InstrumentStatus, LocalPaymentRow, MerchantRow, RegionRow, Store, TakeRow,
    TxnRow, WalletOutcome, WalletRow, WalletSnapshot,
};
use crate::{Error, Result};

/// A stored region's rules.
pub fn policy(region: &RegionRow, config: &Config) -> Result<(Currency, RegionPolicy)> {
    let corrupt = |m: &str| Error::Store(crate::store::StoreError::Corrupt(format!("region {}: {m}", region.id)));
    let cur = config.currency(&region.currency).cloned().ok_or_else(|| corrupt("unknown currency"))?;
    let rate: Decimal = region.incentive_rate.parse().map_err(|_| corrupt("incentive rate"))?;
    let restore = if region.cancel_restore == "pro_rata" { CancelRestore::ProRata } else { CancelRestore::Reverse };
    let p = RegionPolicy::new(cur.clone(), rate, region.monthly_bonus_cap, region.bonus_lifetime_seconds, restore)
        .map_err(|e| corrupt(&e.to_string()))?;
    Ok((cur, p))
}

/// Defines (or redefines) a region and registers the merchants listed with it; true when the region
/// is new.
pub async fn define_region(
    store: &Store,
    config: &Config,
    spec: &RegionSpec,
    now: i64,
) -> Result<(RegionRow, Vec<MerchantRow>, bool)> {
    let mut row = region_row(spec, config, now)?;
    for m in &spec.merchants {
        check_id(&m.id, "merchant_id_invalid", 15)?;
    }
    if let Some(old) = store.region(&row.id).await? {
        if old.currency != row.currency {
            return Err(Error::invalid("currency_fixed", "a region's currency cannot change"));
        }
        row.created_at = old.created_at;
    }
    let created = store.upsert_region(&row).await?;
    let mut merchants = Vec::with_capacity(spec.merchants.len());
    for m in &spec.merchants {
        merchants.push(define_merchant(store, &m.id, &m.name, &row.id, now).await?.0);
    }
    Ok((row, merchants, created))
}

/// Registers (or moves) a merchant; true when it is new.
pub async fn define_merchant(
    store: &Store,
    id: &str,
    name: &str,
    region: &str,
    now: i64,
) -> Result<(MerchantRow, bool)> {
    // DE42 is 15 characters.
    check_id(id, "id_invalid", 15)?;
    if name.trim().is_empty() || name.len() > 100 {
        return Err(Error::invalid("name_invalid", "name must be 1-100 characters"));
    }
    if store.region(region).await?.is_none() {
        return Err(Error::invalid("region_unknown", "no region has this id"));
    }
    let row = MerchantRow {
        id: id.to_string(),
        name: name.trim().to_string(),
        region_id: region.to_string(),
        created_at: now,
    };
    let created = store.upsert_merchant(&row).await?;
    Ok((row, created))
}

/// Seeds the regions and merchants of the config that the database does not have yet (an
/// operator's later changes through the admin API are kept).
pub async fn seed(store: &Store, config: &Config, now: i64) -> Result<()> {
    for r in &config.regions {
        if store.region(&r.id).await?.is_none() {
            store.upsert_region(&region_row(r, config, now)?).await?;
        }
        for m in &r.merchants {
            if store.merchant(&m.id).await?.is_none() {
                define_merchant(store, &m.id, &m.name, &r.id, now).await?;
            }
        }
    }
    Ok(())
}

/// Opens the requestor's wallet in `region`, or gives back the one it has (false = not new).
pub async fn open(store: &Store, requestor: &Requestor, region: &str, now: i64) -> Result<(InstrumentRow, bool)> {
    if store.region(region).await?.is_none() {
        return Err(Error::invalid("region_unknown", "no region has this id"));
    }
    let id = format!("ins_{}", uuid::Uuid::now_v7().simple());
    let row = InstrumentRow::stored_value(id, requestor.id.clone(), InstrumentKind::Local, now);
    match store.insert_wallet(&row, region).await? {
        None => Ok((row, true)),
        Some(existing) => match store.instrument(&existing).await? {
            Some(i) if i.status == InstrumentStatus::Deleted => {
                // Reopened as the same wallet: what it still held and the month's charges toward the
                // bonus cap come back (the cap is per person and month: closing a wallet must not
                // reset it); its old tokens stay revoked.
                let from = [InstrumentStatus::Deleted];
                match store.set_instrument_status(&existing, &from, InstrumentStatus::Active, now).await? {
                    Some(row) => Ok((row, true)),
                    // Reopened by a racing request meanwhile.
                    None => store.instrument(&existing).await?.map(|i| (i, false)).ok_or(Error::InstrumentNotFound),
                }
            }
            Some(i) => Ok((i, false)),
            None => Err(Error::InstrumentNotFound),
        },
    }
}

/// A wallet loaded for one change: the stored rows and the rules' view of them.
#[derive(Clone)]
pub struct Loaded {
    pub snapshot: WalletSnapshot,
    pub region: RegionRow,
    pub currency: Currency,
    pub policy: RegionPolicy,
    pub wallet: LocalWallet,
    pub payment: Option<LocalPayment>,
}

fn corrupt(m: &str) -> Error {
    Error::Store(crate::store::StoreError::Corrupt(m.to_string()))
}

fn month_text(m: (i32, u8)) -> String {
    format!("{:04}-{:02}", m.0, m.1)
}

fn parse_month(s: &str) -> Option<(i32, u8)> {
    let (y, m) = s.split_once('-')?;
    Some((y.parse().ok()?, m.parse().ok()?))
}

/// The ledger accounts of a wallet (principal, bonus).
pub fn accounts(instrument_id: &str, cur: &Currency) -> Result<(Account, Account)> {
    let e = |e: ledger::LedgerError| corrupt(&e.to_string());
    Ok((
        Account::wallet_principal(instrument_id, cur).map_err(e)?,
        Account::wallet_bonus(instrument_id, cur).map_err(e)?,
    ))
}

/// Reads a wallet (and one of its payments) in one snapshot.
pub async fn load(store: &Store, config: &Config, instrument_id: &str, payment: Option<&str>) -> Result<Loaded> {
    // The region (and so the currency) of a wallet never changes, so it is read outside the snapshot.
    let region_id = store.wallet_region(instrument_id).await?.ok_or(Error::InstrumentNotFound)?;
    let region = store.region(&region_id).await?.ok_or_else(|| corrupt("a wallet's region is missing"))?;
    let (cur, policy) = policy(&region, config)?;
    let (pa, ba) = accounts(instrument_id, &cur)?;
    let snapshot = store
        .wallet_snapshot(instrument_id, [pa.id.as_str(), ba.id.as_str()], payment)
        .await?
        .ok_or(Error::InstrumentNotFound)?;
    let w = &snapshot.wallet;
    let grants = w
        .grants
        .iter()
        .map(|g| BonusGrant {
            id: GrantId(g.grant_id as u64),
            granted_at_ms: g.granted_at,
            expires_at_ms: g.expires_at,
            amount: g.amount,
            remaining: g.remaining,
        })
        .collect::<Vec<_>>();
    let held = w.grants.iter().try_fold(Amount::zero(&cur), |held, g| held.checked_add(g.remaining));
    if held != Ok(snapshot.bonus) {
        return Err(corrupt("a wallet's bonus grants differ from its bonus account"));
    }
    let wallet = LocalWallet {
        principal: snapshot.principal,
        grants,
        next_grant_id: w.next_grant_id as u64,
        bonus_month: w.bonus_month.as_deref().and_then(parse_month),
        charged_in_month: w.charged_in_month,
    };
    let payment = snapshot.payment.as_ref().map(to_payment);
    Ok(Loaded { snapshot, region, currency: cur, policy, wallet, payment })
}

/// The rules' view of a stored payment.
pub(super) fn to_payment(p: &LocalPaymentRow) -> LocalPayment {
    LocalPayment {
        principal: p.principal,
        bonus: p.bonus,
        takes: p
            .takes
            .iter()
            .map(|t| BonusTake {
                grant: GrantId(t.grant_id as u64),
                expires_at_ms: t.expires_at,
                taken: t.taken,
                returned: t.returned,
            })
            .collect(),
        cancelled_principal: p.cancelled_principal,
        cancelled_bonus: p.cancelled_bonus,
        forfeited_bonus: p.forfeited_bonus,
    }
}

impl Loaded {
    /// The wallet's new state to store, at the version it was read.
    pub fn wallet_row(&self) -> Result<WalletRow> {
        let w = &self.wallet;
        let grants = w
            .grants
            .iter()
            .map(|g| GrantRow {
                grant_id: g.id.0 as i64,
                granted_at: g.granted_at_ms,
                expires_at: g.expires_at_ms,
                amount: g.amount,
                remaining: g.remaining,
            })
            .collect();
        Ok(WalletRow {
            bonus_month: w.bonus_month.map(month_text),
            charged_in_month: w.charged_in_month,
            next_grant_id: w.next_grant_id as i64,
            grants,
            ..self.snapshot.wallet.clone()
        })
    }

    /// A payment's stored form.
    pub fn payment_row(&self, transaction_id: &str, p: &LocalPayment) -> Result<LocalPaymentRow> {
        Ok(LocalPaymentRow {
            transaction_id: transaction_id.to_string(),
            instrument_id: self.snapshot.wallet.instrument_id.clone(),
            principal: p.principal,
            bonus: p.bonus,
            cancelled_principal: p.cancelled_principal,
            cancelled_bonus: p.cancelled_bonus,
            forfeited_bonus: p.forfeited_bonus,
            takes: p
                .takes
                .iter()
                .map(|t| TakeRow {
                    grant_id: t.grant.0 as i64,
                    expires_at: t.expires_at_ms,
                    taken: t.taken,
                    returned: t.returned,
                })
                .collect(),
        })
    }

    /// Removes expired grants; the entry that moves their bonus to the region's forfeited account.
    pub(super) fn lapse(&mut self, now: i64) -> Result<Option<JournalEntry>> {
        let lapsed = self.wallet.lapse_expired(now, &self.policy).map_err(|e| corrupt(&e.to_string()))?;
        if lapsed.is_zero() {
            return Ok(None);
        }
        ledger::bonus_expiry(
            EntryId::fresh(),
            &self.currency,
            &self.snapshot.wallet.instrument_id,
            &self.region.id,
            lapsed,
        )
        .map(Some)
        .map_err(|e| corrupt(&e.to_string()))
    }
}

/// What one change to a wallet writes besides the wallet itself (owned, so a retry can rebuild it).
#[derive(Default)]
pub struct Plan {
    pub entries: Vec<JournalEntry>,
    pub transaction_id: Option<String>,
    pub consume_token: Option<String>,
    pub new_payment: Option<LocalPaymentRow>,
    pub payment_update: Option<LocalPaymentRow>,
    pub cancel: Option<(String, Amount)>,
    pub reverse: Option<String>,
    pub txn: Option<TxnRow>,
}

/// What a rule decided for one attempt.
pub enum Step<T> {
    /// Write this, then answer `T`.
    Write(Box<Plan>, T),
    /// Write nothing and answer `T` (a refusal such as `51`).
    Refuse(T),
}

/// How a change to a wallet ended.
pub enum Applied<T> {
    /// Written (or refused by the rule), with the rule's answer.
    Done(T),
    /// The database refused the write (a guard held); nothing was written.
    Refused(WalletOutcome),
}

/// Every change to a wallet: loaded (or as this node's lane holds it), expired bonus lapsed, `rule`
/// decides, and the result is written with the lapse in one transaction (see `lane`).
pub use super::lane::apply;

/// What a charge added.
pub struct Charged {
    pub entry_id: String,
    pub currency: Currency,
    pub principal: Amount,
    pub bonus: Amount,
    pub bonus_expires_at: Option<i64>,
}

/// Charges `amount` (major-unit decimal text) to an active wallet: principal plus the region's bonus.
pub async fn charge(
    lanes: &Lanes,
    store: &Store,
    config: &Config,
    now: impl Fn() -> i64,
    instrument: &InstrumentRow,
    amount: &str,
) -> Result<Charged> {
    if let Some(e) = instrument.status.refusal() {
        return Err(e);
    }
    let applied = apply(lanes, store, config, now, &instrument.id, None, |l, at| {
        let requested = Amount::parse(amount, &l.currency).map_err(|_| {
            Error::invalid("amount_invalid", "amount must be a positive decimal at the currency's scale")
        })?;
        let c = l.wallet.charge(requested, at, &l.policy).map_err(|e| match e {
            RuleError::InvalidAmount(m) => Error::invalid("amount_invalid", m),
            other => corrupt(&other.to_string()),
        })?;
        let id = EntryId::fresh();
        let split = ledger::Split { principal: c.principal, bonus: c.bonus };
        let entry = ledger::local_charge(id.clone(), &l.currency, &instrument.id, &l.region.id, split)
            .map_err(|e| corrupt(&e.to_string()))?;
        let charged = Charged {
            entry_id: id.as_str().to_string(),
            currency: l.currency.clone(),
            principal: c.principal,
            bonus: c.bonus,
            bonus_expires_at: c.bonus_expires_at_ms,
        };
        Ok(Step::Write(Box::new(Plan { entries: vec![entry], ..Plan::default() }), charged))
    })
    .await?;
    match applied {
        Applied::Done(c) => Ok(c),
        Applied::Refused(o) => Err(corrupt(&format!("a charge was refused: {o:?}"))),
    }
}

/// The balance view of a wallet now, with its live bonus grants (amount left, expiry).
pub struct WalletBalance {
    pub currency: Currency,
    pub region: String,
    pub principal: Amount,
    pub bonus: Amount,
    pub refundable: Amount,
    pub grants: Vec<(Amount, i64)>,
}

pub async fn balance(store: &Store, config: &Config, instrument_id: &str, now: i64) -> Result<WalletBalance> {
    let l = load(store, config, instrument_id, None).await?;
    let b = l.wallet.balance(now, &l.policy).map_err(|e| corrupt(&e.to_string()))?;
    let grants = l
        .wallet
        .grants
        .iter()
        .filter(|g| !g.is_expired(now) && !g.remaining.is_zero())
        .map(|g| (g.remaining, g.expires_at_ms))
        .collect();
    Ok(WalletBalance {
        currency: l.currency,
        region: l.region.id,
        principal: b.principal,
        bonus: b.bonus,
        refundable: b.refundable,
        grants,
    })
}
