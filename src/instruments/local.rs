//! Local currency (지역화폐) rules (docs/instruments.md "Local currency (지역화폐)"): a wallet per user
//! and region, holding principal (what the user charged) and bonus grants (the region's incentive,
//! each with its own expiry).
//!
//! This file owns:
//! - charging: principal plus a bonus of `incentive_rate` × the part of the charge within the calendar
//!   month's `monthly_bonus_cap` (the month read in the region's UTC offset, KST by default), rounded down
//!   to the minor unit; each charge's bonus is a separate [`BonusGrant`] expiring `bonus_lifetime_seconds`
//!   later;
//! - payment: bonus first (oldest-expiring grant first, expired grants never), then principal; the payment
//!   records the split and which grants it took from ([`LocalPayment`]); `51` when principal plus unexpired
//!   bonus cannot cover it;
//! - cancellation by the region's [`CancelRestore`] policy (`reverse` or `pro_rata`), never more than the
//!   payment took in total or per bucket (`64`); a full cancel restores the exact split; bonus whose grant
//!   has expired by then is forfeited and reported;
//! - the balance view `{principal, bonus, refundable}` and the wallet refund, which pays out principal
//!   only and claws the bonus back.
//!
//! Not here: whether the merchant belongs to the wallet's region (`57`) — the caller checks that from its
//! merchant registry before [`LocalWallet::pay`]. Pure: the caller loads the wallet and payment, applies a
//! rule, saves both and posts the movement to the ledger in one transaction.

use rust_decimal::Decimal;
use time::UtcOffset;

use super::card::{RuleError, add, amount, check_ratio, checked_cancel, floor_rate, positive_units, sub, units};
use crate::money::{Amount, Currency};

/// How a region's cancels give money back to the wallet's two buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelRestore {
    /// The inverse of spending (the default). Spending went bonus (oldest-expiring grant first) then
    /// principal, so a cancel unwinds from the end: the payment's principal first, then its bonus,
    /// latest-expiring grant first. Partial cancels continue where the previous one stopped.
    #[default]
    Reverse,
    /// Both buckets in proportion to the payment's split: the cumulative cancelled amount is split by
    /// largest remainder in minor units (a tie gives the unit to principal), and each cancel moves the
    /// difference from the previous cumulative split. Within the bonus bucket, grants are restored
    /// latest-expiring first, as in `Reverse`.
    ProRata,
}

impl CancelRestore {
    /// The word the admin API uses (`reverse`, `pro_rata`).
    pub fn as_str(self) -> &'static str {
        match self {
            CancelRestore::Reverse => "reverse",
            CancelRestore::ProRata => "pro_rata",
        }
    }
}

/// A region's money rules (the admin API's `/v1/admin/regions` body, minus id and name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionPolicy {
    pub currency: Currency,
    /// Bonus per unit charged within the cap, e.g. 0.10.
    pub incentive_rate: Decimal,
    /// How much of each calendar month's charges earns a bonus.
    pub monthly_bonus_cap: Amount,
    /// How long a bonus grant stays spendable.
    pub bonus_lifetime_seconds: i64,
    pub cancel_restore: CancelRestore,
    /// The offset in which calendar months are read: a charge at 00:30 on the 1st in Korea is in the new
    /// month although it is still the previous month in UTC. Default +09:00.
    pub utc_offset: UtcOffset,
}

impl RegionPolicy {
    /// A policy in KST, validated.
    pub fn new(
        currency: Currency,
        incentive_rate: Decimal,
        monthly_bonus_cap: Amount,
        bonus_lifetime_seconds: i64,
        cancel_restore: CancelRestore,
    ) -> Result<Self, RuleError> {
        let p = Self {
            currency,
            incentive_rate,
            monthly_bonus_cap,
            bonus_lifetime_seconds,
            cancel_restore,
            utc_offset: time::macros::offset!(+9),
        };
        p.validate()?;
        Ok(p)
    }

    /// The rate lies in `[0, 1]` (a bonus larger than the charge is a typo), the lifetime is positive (a
    /// bonus expiring at birth could never be spent), the cap is at the currency's scale.
    pub fn validate(&self) -> Result<(), RuleError> {
        check_ratio(self.incentive_rate, "incentive_rate must be within 0..=1")?;
        if self.bonus_lifetime_seconds <= 0 {
            return Err(RuleError::InvalidConfig("bonus_lifetime_seconds must be positive"));
        }
        units(self.monthly_bonus_cap, &self.currency)
            .map_err(|_| RuleError::InvalidConfig("monthly_bonus_cap must be at the currency's scale"))?;
        Ok(())
    }
}

/// A wallet-local identifier of a bonus grant, assigned in charge order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GrantId(pub u64);

/// The bonus one charge earned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BonusGrant {
    pub id: GrantId,
    pub granted_at_ms: i64,
    /// The first instant it is no longer spendable nor restorable.
    pub expires_at_ms: i64,
    /// What was granted.
    pub amount: Amount,
    /// What is left of it.
    pub remaining: Amount,
}

impl BonusGrant {
    pub fn is_expired(&self, now_ms: i64) -> bool {
        now_ms >= self.expires_at_ms
    }
}

/// A user's wallet in one region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalWallet {
    /// What the user charged and has not spent: always refundable.
    pub principal: Amount,
    /// Bonus grants, in grant order. Spent grants stay until they expire because a cancel may restore
    /// them; [`LocalWallet::lapse_expired`] removes expired ones.
    pub grants: Vec<BonusGrant>,
    /// The id the next grant gets.
    pub next_grant_id: u64,
    /// The calendar month (year, month in the region's offset) `charged_in_month` counts.
    pub bonus_month: Option<(i32, u8)>,
    /// Everything charged in `bonus_month`, against the monthly bonus cap.
    pub charged_in_month: Amount,
}

/// What one charge added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalCharge {
    pub principal: Amount,
    pub bonus: Amount,
    /// The grant holding the bonus; none when the bonus is zero.
    pub grant: Option<GrantId>,
    pub bonus_expires_at_ms: Option<i64>,
}

/// What a payment took from one grant, and what cancels have returned of it since.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BonusTake {
    pub grant: GrantId,
    /// The grant's expiry, copied so a cancel can tell forfeiture even after the grant was removed.
    pub expires_at_ms: i64,
    pub taken: Amount,
    /// Restored plus forfeited by cancels so far.
    pub returned: Amount,
}

/// One payment from a wallet, as the cancellation rules need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalPayment {
    /// The split the payment took.
    pub principal: Amount,
    pub bonus: Amount,
    /// Which grants the bonus came from, in the order taken (oldest-expiring first).
    pub takes: Vec<BonusTake>,
    /// What cancels have returned so far, per bucket. `cancelled_bonus` includes the forfeited part.
    pub cancelled_principal: Amount,
    pub cancelled_bonus: Amount,
    /// The part of `cancelled_bonus` that was not restored because its grant had expired.
    pub forfeited_bonus: Amount,
}

/// What one cancel gave back to one grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantReturn {
    pub grant: GrantId,
    pub amount: Amount,
    /// True when the grant had expired: the amount is forfeited, not restored.
    pub forfeited: bool,
}

/// The outcome of one cancel: `principal + bonus + forfeited == amount`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalCancel {
    pub amount: Amount,
    /// Restored to principal.
    pub principal: Amount,
    /// Restored to (unexpired) bonus grants.
    pub bonus: Amount,
    /// The bonus part whose grants had expired: returned by the merchant, kept by the region.
    pub forfeited: Amount,
    pub grants: Vec<GrantReturn>,
}

/// The balance view (`GET /v1/instruments/{id}/balance`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalBalance {
    pub principal: Amount,
    /// Unexpired bonus only.
    pub bonus: Amount,
    /// What a refund of the wallet would pay: principal only.
    pub refundable: Amount,
}

/// What a refund of the wallet moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletRefund {
    /// Paid out to the user.
    pub principal: Amount,
    /// Unexpired bonus taken back by the region.
    pub bonus_clawed_back: Amount,
    /// Expired bonus still held, removed at the same time (as [`LocalWallet::lapse_expired`] would).
    pub bonus_lapsed: Amount,
}

/// The calendar month of an instant in a fixed offset, for the monthly bonus cap.
pub fn month_of(at_ms: i64, offset: UtcOffset) -> Result<(i32, u8), RuleError> {
    let local_ms = i128::from(at_ms) + i128::from(offset.whole_seconds()) * 1000;
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(local_ms * 1_000_000)
        .map_err(|_| RuleError::Inconsistent("instant out of range"))?;
    Ok((t.year(), t.month() as u8))
}

/// The principal share of a cumulative cancelled amount under pro rata: `cum × P / A` rounded to the
/// nearest minor unit with a tie going to principal. With two buckets this is exactly the largest-
/// remainder allocation (the two fractional parts sum to one unit, so the larger one is the one ≥ ½), and
/// it never decreases as `cum` grows, so successive cancels never move a negative amount; at `cum == A`
/// it is exactly `P`.
fn pro_rata_principal(cum: i64, principal: i64, total: i64) -> i64 {
    if total <= 0 {
        return 0;
    }
    let num = i128::from(cum) * i128::from(principal);
    let total = i128::from(total);
    let (q, r) = (num / total, num % total);
    let up = r > 0 && 2 * r >= total;
    // q + up ≤ cum ≤ i64::MAX because principal ≤ total.
    i64::try_from(q + i128::from(up)).unwrap_or(cum)
}

impl LocalWallet {
    /// An empty wallet.
    pub fn new(policy: &RegionPolicy) -> Self {
        Self {
            principal: amount(0, &policy.currency),
            grants: Vec::new(),
            next_grant_id: 1,
            bonus_month: None,
            charged_in_month: amount(0, &policy.currency),
        }
    }

    /// Charges `requested`: all of it becomes principal; the part within what is left of this calendar
    /// month's cap earns `floor(part × incentive_rate)` bonus as a new grant.
    pub fn charge(&mut self, requested: Amount, now_ms: i64, policy: &RegionPolicy) -> Result<LocalCharge, RuleError> {
        policy.validate()?;
        let cur = &policy.currency;
        let req = positive_units(requested, cur)?;
        let month = month_of(now_ms, policy.utc_offset)?;
        let charged_before = if self.bonus_month == Some(month) { units(self.charged_in_month, cur)? } else { 0 };
        let room = units(policy.monthly_bonus_cap, cur)?.saturating_sub(charged_before).max(0);
        let bonus = floor_rate(req.min(room), policy.incentive_rate)?;
        let expires_at_ms = policy
            .bonus_lifetime_seconds
            .checked_mul(1000)
            .and_then(|l| now_ms.checked_add(l))
            .ok_or(RuleError::InvalidConfig("bonus_lifetime_seconds too large"))?;
        let principal = add(units(self.principal, cur)?, req)?;
        let charged = add(charged_before, req)?;
        let grant = if bonus > 0 {
            let id = GrantId(self.next_grant_id);
            let next = self.next_grant_id.checked_add(1).ok_or(RuleError::Inconsistent("grant ids exhausted"))?;
            self.grants.push(BonusGrant {
                id,
                granted_at_ms: now_ms,
                expires_at_ms,
                amount: amount(bonus, cur),
                remaining: amount(bonus, cur),
            });
            self.next_grant_id = next;
            Some(id)
        } else {
            None
        };
        self.principal = amount(principal, cur);
        self.charged_in_month = amount(charged, cur);
        self.bonus_month = Some(month);
        Ok(LocalCharge {
            principal: requested,
            bonus: amount(bonus, cur),
            grant,
            bonus_expires_at_ms: grant.map(|_| expires_at_ms),
        })
    }

    /// Unexpired bonus, in minor units.
    fn live_bonus(&self, now_ms: i64, cur: &Currency) -> Result<i64, RuleError> {
        self.grants.iter().filter(|g| !g.is_expired(now_ms)).try_fold(0, |s, g| add(s, units(g.remaining, cur)?))
    }

    /// Pays `requested`: unexpired bonus first, oldest-expiring grant first (ties by grant order), so the
    /// bonus closest to lapsing is used before it is lost; then principal. `51` when principal plus
    /// unexpired bonus is short; nothing changes on refusal.
    pub fn pay(&mut self, requested: Amount, now_ms: i64, policy: &RegionPolicy) -> Result<LocalPayment, RuleError> {
        let cur = &policy.currency;
        let req = positive_units(requested, cur)?;
        let principal = units(self.principal, cur)?;
        let available = add(principal, self.live_bonus(now_ms, cur)?)?;
        if req > available {
            return Err(RuleError::InsufficientFunds { requested, available: amount(available, cur) });
        }
        let mut order: Vec<usize> = (0..self.grants.len()).filter(|i| !self.grants[*i].is_expired(now_ms)).collect();
        order.sort_by_key(|i| (self.grants[*i].expires_at_ms, self.grants[*i].id));
        // Plan first, then apply, so an inconsistent grant leaves the wallet untouched.
        let mut need = req;
        let mut plan = Vec::new();
        for i in order {
            if need == 0 {
                break;
            }
            let remaining = units(self.grants[i].remaining, cur)?;
            let take = need.min(remaining);
            if take > 0 {
                plan.push((i, remaining - take, take));
                need -= take;
            }
        }
        let bonus = req - need;
        let principal_after = sub(principal, need)?;
        let mut takes = Vec::with_capacity(plan.len());
        for (i, remaining, take) in plan {
            let g = &mut self.grants[i];
            g.remaining = amount(remaining, cur);
            takes.push(BonusTake {
                grant: g.id,
                expires_at_ms: g.expires_at_ms,
                taken: amount(take, cur),
                returned: amount(0, cur),
            });
        }
        self.principal = amount(principal_after, cur);
        Ok(LocalPayment {
            principal: amount(need, cur),
            bonus: amount(bonus, cur),
            takes,
            cancelled_principal: amount(0, cur),
            cancelled_bonus: amount(0, cur),
            forfeited_bonus: amount(0, cur),
        })
    }

    /// Cancels `requested` of `payment` at `now_ms` by the region's policy. Refuses with `64` past what
    /// the payment has left in total; per bucket the split never passes what the payment took (the
    /// pro-rata split is clamped to the buckets' remainders, which only bites if the region changed its
    /// policy between two cancels). Bonus going back to a grant that has expired by now is forfeited.
    /// Nothing changes on refusal.
    pub fn cancel(
        &mut self,
        payment: &mut LocalPayment,
        requested: Amount,
        now_ms: i64,
        policy: &RegionPolicy,
    ) -> Result<LocalCancel, RuleError> {
        let cur = &policy.currency;
        let req = positive_units(requested, cur)?;
        let (p_took, b_took) = (units(payment.principal, cur)?, units(payment.bonus, cur)?);
        let (p_done, b_done) = (units(payment.cancelled_principal, cur)?, units(payment.cancelled_bonus, cur)?);
        let total = add(p_took, b_took)?;
        let cum = checked_cancel(total, add(p_done, b_done)?, req, cur)?;
        let (p_left, b_left) = (sub(p_took, p_done)?, sub(b_took, b_done)?);
        let (lo, hi) = ((req - b_left).max(0), req.min(p_left));
        if lo > hi {
            // Unreachable after `checked_cancel` (req ≤ p_left + b_left); kept so `clamp` cannot panic.
            return Err(RuleError::Inconsistent("cancel does not fit the payment's buckets"));
        }
        let p = match policy.cancel_restore {
            CancelRestore::Reverse => hi,
            CancelRestore::ProRata => (pro_rata_principal(cum, p_took, total) - p_done).clamp(lo, hi),
        };
        let b = req - p;

        // The bonus part goes back to the grants in reverse of taking (latest-expiring first).
        let mut need = b;
        let mut plan = Vec::new();
        for (t, take) in payment.takes.iter().enumerate().rev() {
            if need == 0 {
                break;
            }
            let chunk = need.min(sub(units(take.taken, cur)?, units(take.returned, cur)?)?);
            if chunk > 0 {
                plan.push((t, chunk));
                need -= chunk;
            }
        }
        if need > 0 {
            return Err(RuleError::Inconsistent("the payment's bonus takes do not add up to its bonus"));
        }
        let mut restores = Vec::new();
        let mut returns = Vec::with_capacity(plan.len());
        let (mut restored, mut forfeited) = (0i64, 0i64);
        for &(t, chunk) in &plan {
            let take = &payment.takes[t];
            let expired = now_ms >= take.expires_at_ms;
            if expired {
                forfeited = add(forfeited, chunk)?;
            } else {
                let g = self
                    .grants
                    .iter()
                    .position(|g| g.id == take.grant)
                    .ok_or(RuleError::Inconsistent("an unexpired grant is missing from the wallet"))?;
                let after = add(units(self.grants[g].remaining, cur)?, chunk)?;
                if after > units(self.grants[g].amount, cur)? {
                    return Err(RuleError::Inconsistent("restore would exceed the grant"));
                }
                restores.push((g, after));
                restored = add(restored, chunk)?;
            }
            returns.push(GrantReturn { grant: take.grant, amount: amount(chunk, cur), forfeited: expired });
        }
        let principal_after = add(units(self.principal, cur)?, p)?;
        let forfeited_total = add(units(payment.forfeited_bonus, cur)?, forfeited)?;
        let mut returned_after = Vec::with_capacity(plan.len());
        for &(t, chunk) in &plan {
            returned_after.push((t, add(units(payment.takes[t].returned, cur)?, chunk)?));
        }

        // Apply.
        for (g, after) in restores {
            self.grants[g].remaining = amount(after, cur);
        }
        self.principal = amount(principal_after, cur);
        for (t, after) in returned_after {
            payment.takes[t].returned = amount(after, cur);
        }
        payment.cancelled_principal = amount(p_done + p, cur);
        payment.cancelled_bonus = amount(b_done + b, cur);
        payment.forfeited_bonus = amount(forfeited_total, cur);
        Ok(LocalCancel {
            amount: requested,
            principal: amount(p, cur),
            bonus: amount(restored, cur),
            forfeited: amount(forfeited, cur),
            grants: returns,
        })
    }

    /// The balance view at `now_ms`.
    pub fn balance(&self, now_ms: i64, policy: &RegionPolicy) -> Result<LocalBalance, RuleError> {
        let cur = &policy.currency;
        Ok(LocalBalance {
            principal: self.principal,
            bonus: amount(self.live_bonus(now_ms, cur)?, cur),
            refundable: self.principal,
        })
    }

    /// Removes expired grants and returns the bonus they still held, so the caller can post the lapse to
    /// the ledger and keep the wallet's balance equal to the sum of its postings. Cancels of payments
    /// that took from a removed grant forfeit that part (the payment remembers the expiry).
    pub fn lapse_expired(&mut self, now_ms: i64, policy: &RegionPolicy) -> Result<Amount, RuleError> {
        let cur = &policy.currency;
        let lapsed =
            self.grants.iter().filter(|g| g.is_expired(now_ms)).try_fold(0, |s, g| add(s, units(g.remaining, cur)?))?;
        self.grants.retain(|g| !g.is_expired(now_ms));
        Ok(amount(lapsed, cur))
    }

    /// Refunds the wallet: principal is paid out, unexpired bonus is clawed back (it was the region's
    /// money, given to be spent locally), expired bonus lapses. Grants stay (emptied) so a later cancel of
    /// an earlier payment can still restore to them.
    pub fn refund(&mut self, now_ms: i64, policy: &RegionPolicy) -> Result<WalletRefund, RuleError> {
        let cur = &policy.currency;
        let clawed = self.live_bonus(now_ms, cur)?;
        let principal = self.principal;
        units(principal, cur)?;
        let lapsed = self.lapse_expired(now_ms, policy)?;
        for g in &mut self.grants {
            g.remaining = amount(0, cur);
        }
        self.principal = amount(0, cur);
        Ok(WalletRefund { principal, bonus_clawed_back: amount(clawed, cur), bonus_lapsed: lapsed })
    }
}

impl LocalPayment {
    /// What the payment took in total.
    pub fn amount(&self, currency: &Currency) -> Result<Amount, RuleError> {
        Ok(amount(add(units(self.principal, currency)?, units(self.bonus, currency)?)?, currency))
    }

    /// What is still left to cancel; a reversal (`0400`) cancels exactly this.
    pub fn remaining(&self, currency: &Currency) -> Result<Amount, RuleError> {
        let took = add(units(self.principal, currency)?, units(self.bonus, currency)?)?;
        let done = add(units(self.cancelled_principal, currency)?, units(self.cancelled_bonus, currency)?)?;
        Ok(amount(sub(took, done)?, currency))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::test_currencies::{krw, usd};
    use proptest::prelude::*;

    fn won(n: i64) -> Amount {
        Amount::from_minor(n, &krw())
    }
    const DAY: i64 = 86_400_000;
    const H: i64 = 3_600_000;
    /// 2025-02-01 00:00 KST (2025-01-31T15:00Z).
    const FEB1_KST: i64 = 1_738_335_600_000;

    fn policy(rate: &str, cap: i64, lifetime_days: i64, restore: CancelRestore) -> RegionPolicy {
        RegionPolicy::new(krw(), rate.parse().unwrap(), won(cap), lifetime_days * 86_400, restore).unwrap()
    }

    /// Sum of a wallet's grants' remaining, expired or not.
    fn held_bonus(w: &LocalWallet) -> i64 {
        w.grants.iter().map(|g| units(g.remaining, &krw()).unwrap()).sum()
    }

    #[test]
    fn charge_adds_bonus_within_the_monthly_cap() {
        let pol = policy("0.10", 500_000, 365, CancelRestore::Reverse);
        let mut w = LocalWallet::new(&pol);
        let t = FEB1_KST + 10 * DAY;
        let c = w.charge(won(300_000), t, &pol).unwrap();
        assert_eq!((c.principal, c.bonus, c.grant), (won(300_000), won(30_000), Some(GrantId(1))));
        assert_eq!(c.bonus_expires_at_ms, Some(t + 365 * DAY));
        // 200,000 of the cap is left: 10% of it.
        let c = w.charge(won(300_000), t + H, &pol).unwrap();
        assert_eq!(c.bonus, won(20_000));
        // Cap used up: no bonus, no grant.
        let c = w.charge(won(50_000), t + 2 * H, &pol).unwrap();
        assert_eq!((c.bonus, c.grant), (won(0), None));
        // Next month: a fresh cap.
        let c = w.charge(won(100_000), t + 30 * DAY, &pol).unwrap();
        assert_eq!(c.bonus, won(10_000));
        let b = w.balance(t + 30 * DAY, &pol).unwrap();
        assert_eq!((b.principal, b.bonus, b.refundable), (won(750_000), won(60_000), won(750_000)));
    }

    #[test]
    fn bonus_rounds_down_to_the_minor_unit() {
        let pol = policy("0.07", 1_000_000, 30, CancelRestore::Reverse);
        let mut w = LocalWallet::new(&pol);
        assert_eq!(w.charge(won(12_345), FEB1_KST, &pol).unwrap().bonus, won(864)); // 864.15
        let usd_pol = RegionPolicy::new(
            usd(),
            "0.07".parse().unwrap(),
            Amount::from_minor(100_000, &usd()),
            86_400,
            CancelRestore::Reverse,
        )
        .unwrap();
        let mut u = LocalWallet::new(&usd_pol);
        let c = u.charge(Amount::parse("12.34", &usd()).unwrap(), FEB1_KST, &usd_pol).unwrap();
        assert_eq!(c.bonus.to_string(), "0.86"); // 0.8638
    }

    #[test]
    fn the_month_is_read_in_kst() {
        let pol = policy("0.10", 100_000, 365, CancelRestore::Reverse);
        let mut w = LocalWallet::new(&pol);
        // 2025-01-31 23:30 KST: January.
        assert_eq!(w.charge(won(100_000), FEB1_KST - H / 2, &pol).unwrap().bonus, won(10_000));
        // 2025-02-01 00:30 KST is still January in UTC, but February here: a fresh cap.
        assert_eq!(month_of(FEB1_KST + H / 2, UtcOffset::UTC).unwrap(), (2025, 1));
        assert_eq!(month_of(FEB1_KST + H / 2, pol.utc_offset).unwrap(), (2025, 2));
        assert_eq!(w.charge(won(100_000), FEB1_KST + H / 2, &pol).unwrap().bonus, won(10_000));
        assert_eq!(w.charge(won(100_000), FEB1_KST + H, &pol).unwrap().bonus, won(0));
    }

    /// A wallet with principal 600,000 and two grants: #1 20,000 expiring in 60 days, #2 30,000
    /// expiring in 30 days (charged later but with a shorter lifetime).
    fn two_grant_wallet(restore: CancelRestore) -> (LocalWallet, RegionPolicy) {
        let long = policy("0.10", 200_000, 60, restore);
        let short = policy("0.10", 500_000, 30, restore);
        let mut w = LocalWallet::new(&long);
        w.charge(won(200_000), FEB1_KST, &long).unwrap(); // grant 1: 20,000, expires +60d
        w.charge(won(400_000), FEB1_KST + H, &short).unwrap(); // grant 2: 300,000 left of cap → 30,000, +30d
        assert_eq!(w.principal, won(600_000));
        (w, long)
    }

    #[test]
    fn payment_spends_oldest_expiring_bonus_first_then_principal() {
        let (mut w, pol) = two_grant_wallet(CancelRestore::Reverse);
        let now = FEB1_KST + DAY;
        let p = w.pay(won(40_000), now, &pol).unwrap();
        assert_eq!((p.principal, p.bonus), (won(0), won(40_000)));
        let took: Vec<_> = p.takes.iter().map(|t| (t.grant, t.taken)).collect();
        assert_eq!(took, vec![(GrantId(2), won(30_000)), (GrantId(1), won(10_000))]);
        let q = w.pay(won(100_000), now, &pol).unwrap();
        assert_eq!((q.principal, q.bonus), (won(90_000), won(10_000)));
        assert_eq!(w.balance(now, &pol).unwrap().bonus, won(0));
        assert_eq!(w.principal, won(510_000));
        let e = w.pay(won(510_001), now, &pol).unwrap_err();
        assert_eq!(e, RuleError::InsufficientFunds { requested: won(510_001), available: won(510_000) });
    }

    #[test]
    fn expired_bonus_is_never_spent() {
        let (mut w, pol) = two_grant_wallet(CancelRestore::Reverse);
        let now = FEB1_KST + 31 * DAY; // grant 2 expired
        assert_eq!(w.balance(now, &pol).unwrap().bonus, won(20_000));
        let p = w.pay(won(25_000), now, &pol).unwrap();
        assert_eq!((p.principal, p.bonus), (won(5_000), won(20_000)));
        assert_eq!(p.takes.len(), 1);
        assert_eq!(
            w.pay(won(595_001), now, &pol).unwrap_err(),
            RuleError::InsufficientFunds { requested: won(595_001), available: won(595_000) }
        );
        // Lapsing removes grant 2 and reports what it held.
        assert_eq!(w.lapse_expired(now, &pol).unwrap(), won(30_000));
        assert_eq!(w.grants.len(), 1);
    }

    #[test]
    fn reverse_restores_principal_first_then_bonus_latest_expiring_first() {
        let (mut w, pol) = two_grant_wallet(CancelRestore::Reverse);
        let now = FEB1_KST + DAY;
        w.pay(won(40_000), now, &pol).unwrap(); // all of grant 2, 10,000 of grant 1
        let mut p = w.pay(won(100_000), now, &pol).unwrap(); // 10,000 of grant 1, 90,000 principal
        let c = w.cancel(&mut p, won(95_000), now, &pol).unwrap();
        assert_eq!((c.principal, c.bonus, c.forfeited), (won(90_000), won(5_000), won(0)));
        assert_eq!(c.grants, vec![GrantReturn { grant: GrantId(1), amount: won(5_000), forfeited: false }]);
        let e = w.cancel(&mut p, won(5_001), now, &pol).unwrap_err();
        assert_eq!(e, RuleError::ExceedsCancellable { requested: won(5_001), cancellable: won(5_000) });
        let c = w.cancel(&mut p, won(5_000), now, &pol).unwrap();
        assert_eq!((c.principal, c.bonus), (won(0), won(5_000)));
        assert_eq!((p.cancelled_principal, p.cancelled_bonus), (won(90_000), won(10_000)));
        assert_eq!(w.principal, won(600_000));
        assert_eq!(w.balance(now, &pol).unwrap().bonus, won(10_000));
    }

    #[test]
    fn expired_bonus_is_forfeited_on_cancel() {
        let (mut w, pol) = two_grant_wallet(CancelRestore::Reverse);
        let mut p = w.pay(won(45_000), FEB1_KST + DAY, &pol).unwrap(); // 30,000 of #2, 15,000 of #1
        let later = FEB1_KST + 40 * DAY; // #2 expired, #1 not
        // Reverse: no principal; bonus latest-expiring first: 15,000 back to #1, then 5,000 of #2 forfeited.
        let c = w.cancel(&mut p, won(20_000), later, &pol).unwrap();
        assert_eq!((c.principal, c.bonus, c.forfeited), (won(0), won(15_000), won(5_000)));
        assert_eq!(
            c.grants,
            vec![
                GrantReturn { grant: GrantId(1), amount: won(15_000), forfeited: false },
                GrantReturn { grant: GrantId(2), amount: won(5_000), forfeited: true },
            ]
        );
        // The expired grant has been lapsed by now; the rest of the cancel is still forfeited, not an error.
        w.lapse_expired(later, &pol).unwrap();
        let c = w.cancel(&mut p, won(25_000), later, &pol).unwrap();
        assert_eq!((c.bonus, c.forfeited), (won(0), won(25_000)));
        assert_eq!((p.cancelled_bonus, p.forfeited_bonus), (won(45_000), won(30_000)));
        assert_eq!(w.balance(later, &pol).unwrap().bonus, won(20_000));
    }

    #[test]
    fn pro_rata_splits_by_largest_remainder_and_a_full_cancel_is_exact() {
        let pol = policy("0.10", 300_000, 365, CancelRestore::ProRata);
        let mut w = LocalWallet::new(&pol);
        w.charge(won(300_000), FEB1_KST, &pol).unwrap(); // bonus 30,000
        let mut p = w.pay(won(100_000), FEB1_KST, &pol).unwrap();
        assert_eq!((p.principal, p.bonus), (won(70_000), won(30_000)));
        // 33,333 × 0.7 = 23,333.1 and × 0.3 = 9,999.9: the spare unit goes to bonus.
        let c = w.cancel(&mut p, won(33_333), FEB1_KST, &pol).unwrap();
        assert_eq!((c.principal, c.bonus), (won(23_333), won(10_000)));
        // Cumulative 66,666 → 46,666.2 / 19,999.8 → 46,666 / 20,000: this cancel 23,333 / 10,000.
        let c = w.cancel(&mut p, won(33_333), FEB1_KST, &pol).unwrap();
        assert_eq!((c.principal, c.bonus), (won(23_333), won(10_000)));
        let c = w.cancel(&mut p, won(33_334), FEB1_KST, &pol).unwrap();
        assert_eq!((c.principal, c.bonus), (won(23_334), won(10_000)));
        assert_eq!((p.cancelled_principal, p.cancelled_bonus), (won(70_000), won(30_000)));
        assert_eq!(w.principal, won(300_000));
        assert_eq!(w.balance(FEB1_KST, &pol).unwrap().bonus, won(30_000));
    }

    #[test]
    fn pro_rata_tie_goes_to_principal_and_never_passes_a_bucket() {
        let pol = policy("1", 1, 365, CancelRestore::ProRata);
        let mut w = LocalWallet::new(&pol);
        w.charge(won(1), FEB1_KST, &pol).unwrap(); // principal 1, bonus 1
        let mut p = w.pay(won(2), FEB1_KST, &pol).unwrap();
        assert_eq!((p.principal, p.bonus), (won(1), won(1)));
        let c = w.cancel(&mut p, won(1), FEB1_KST, &pol).unwrap();
        assert_eq!((c.principal, c.bonus), (won(1), won(0)));
        let c = w.cancel(&mut p, won(1), FEB1_KST, &pol).unwrap();
        assert_eq!((c.principal, c.bonus), (won(0), won(1)));
    }

    #[test]
    fn refund_pays_principal_and_claws_back_bonus() {
        let (mut w, pol) = two_grant_wallet(CancelRestore::Reverse);
        let now = FEB1_KST + 31 * DAY; // grant 2 (30,000) expired
        let r = w.refund(now, &pol).unwrap();
        assert_eq!((r.principal, r.bonus_clawed_back, r.bonus_lapsed), (won(600_000), won(20_000), won(30_000)));
        let b = w.balance(now, &pol).unwrap();
        assert_eq!((b.principal, b.bonus, b.refundable), (won(0), won(0), won(0)));
    }

    #[test]
    fn policy_is_validated_and_named() {
        assert!(RegionPolicy::new(krw(), "1.5".parse().unwrap(), won(1), 60, CancelRestore::Reverse).is_err());
        assert!(RegionPolicy::new(krw(), "-0.1".parse().unwrap(), won(1), 60, CancelRestore::Reverse).is_err());
        assert!(RegionPolicy::new(krw(), "0.1".parse().unwrap(), won(1), 0, CancelRestore::Reverse).is_err());
        let cents = Amount::from_minor(1, &usd());
        assert!(RegionPolicy::new(krw(), "0.1".parse().unwrap(), cents, 60, CancelRestore::Reverse).is_err());
        let r: CancelRestore = serde_json::from_str("\"pro_rata\"").unwrap();
        assert_eq!((r, r.as_str()), (CancelRestore::ProRata, "pro_rata"));
        assert_eq!(serde_json::to_string(&CancelRestore::default()).unwrap(), "\"reverse\"");
    }

    // ---- property tests ---------------------------------------------------------------------------

    #[derive(Debug, Clone)]
    enum Op {
        Charge(i64),
        Pay(i64),
        Cancel(usize, i64),
        CancelAll(usize),
        Advance(i64),
        Lapse,
        Refund,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (1i64..200_000).prop_map(Op::Charge),
            4 => (1i64..150_000).prop_map(Op::Pay),
            4 => (any::<usize>(), 1i64..80_000).prop_map(|(i, n)| Op::Cancel(i, n)),
            1 => any::<usize>().prop_map(Op::CancelAll),
            2 => (0i64..20 * DAY).prop_map(Op::Advance),
            1 => Just(Op::Lapse),
            1 => Just(Op::Refund),
        ]
    }

    fn restore() -> impl Strategy<Value = CancelRestore> {
        prop_oneof![Just(CancelRestore::Reverse), Just(CancelRestore::ProRata)]
    }

    /// The tracked totals a wallet must agree with.
    #[derive(Default)]
    struct Model {
        principal: i64,
        bonus_held: i64,
    }

    fn check_payment(p: &LocalPayment, restore: CancelRestore) -> Result<(), TestCaseError> {
        let u = |a: Amount| units(a, &krw()).unwrap();
        let (pt, bt, pc, bc) = (u(p.principal), u(p.bonus), u(p.cancelled_principal), u(p.cancelled_bonus));
        prop_assert!(pc <= pt && bc <= bt, "bucket over-cancelled: {p:?}");
        prop_assert!(u(p.forfeited_bonus) <= bc);
        prop_assert_eq!(p.takes.iter().map(|t| u(t.taken)).sum::<i64>(), bt);
        prop_assert_eq!(p.takes.iter().map(|t| u(t.returned)).sum::<i64>(), bc);
        for t in &p.takes {
            prop_assert!(t.returned <= t.taken);
        }
        let cum = pc + bc;
        match restore {
            CancelRestore::Reverse => prop_assert_eq!(pc, cum.min(pt)),
            // The cumulative split is the largest-remainder split of the cumulative amount: within one
            // minor unit of exact proportion.
            CancelRestore::ProRata => {
                prop_assert_eq!(pc, pro_rata_principal(cum, pt, pt + bt));
                let exact = i128::from(cum) * i128::from(pt);
                prop_assert!((i128::from(pc) * i128::from(pt + bt) - exact).abs() * 2 <= i128::from(pt + bt));
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Random charges, payments, partial and full cancels, clock moves, lapses and refunds. After every
        /// step: no bucket negative; the wallet agrees with the tracked totals; per payment and per bucket
        /// the cancelled total never passes what the payment took; each cancel's parts sum to its amount
        /// and forfeit only expired grants; pro-rata follows the largest-remainder split. At the end a
        /// full cancel of every payment returns its exact split, minus what expired.
        #[test]
        fn wallet_invariants_hold_under_random_operations(
            rate in prop_oneof![Just("0"), Just("0.05"), Just("0.10"), Just("0.123")],
            cap in 0i64..300_000,
            lifetime_days in 1i64..40,
            restore in restore(),
            ops in prop::collection::vec(op(), 1..80),
        ) {
            let pol = policy(rate, cap, lifetime_days, restore);
            let u = |a: Amount| units(a, &krw()).unwrap();
            let mut now = FEB1_KST;
            let mut w = LocalWallet::new(&pol);
            let mut m = Model::default();
            let mut payments: Vec<LocalPayment> = Vec::new();
            let mut month_bonus: std::collections::HashMap<(i32, u8), i64> = Default::default();
            for op in ops {
                match op {
                    Op::Charge(n) => {
                        let c = w.charge(won(n), now, &pol).unwrap();
                        m.principal += n;
                        m.bonus_held += u(c.bonus);
                        let sum = month_bonus.entry(month_of(now, pol.utc_offset).unwrap()).or_default();
                        *sum += u(c.bonus);
                        // Bonus per month never passes rate × cap.
                        prop_assert!(*sum <= floor_rate(cap, pol.incentive_rate).unwrap());
                        prop_assert!(u(c.bonus) <= floor_rate(n, pol.incentive_rate).unwrap());
                    }
                    Op::Pay(n) => {
                        let live = u(w.balance(now, &pol).unwrap().bonus);
                        match w.pay(won(n), now, &pol) {
                            Ok(p) => {
                                prop_assert_eq!(u(p.principal) + u(p.bonus), n);
                                // Bonus first: principal only once the live bonus is gone.
                                prop_assert_eq!(u(p.bonus), n.min(live));
                                // Oldest-expiring first: every grant taken before the last is emptied,
                                // and none still holding live bonus expires before the last one taken.
                                if let Some(last) = p.takes.last() {
                                    for t in &p.takes {
                                        prop_assert!(now < t.expires_at_ms);
                                        let g = w.grants.iter().find(|g| g.id == t.grant).unwrap();
                                        if t.grant != last.grant {
                                            prop_assert_eq!(u(g.remaining), 0);
                                        }
                                    }
                                    for g in w.grants.iter().filter(|g| !g.is_expired(now) && u(g.remaining) > 0) {
                                        prop_assert!((g.expires_at_ms, g.id) >= (last.expires_at_ms, last.grant));
                                    }
                                }
                                m.principal -= u(p.principal);
                                m.bonus_held -= u(p.bonus);
                                payments.push(p);
                            }
                            Err(RuleError::InsufficientFunds { available, .. }) => {
                                prop_assert_eq!(u(available), m.principal + live);
                                prop_assert!(n > u(available));
                            }
                            Err(e) => prop_assert!(false, "unexpected {e}"),
                        }
                    }
                    Op::Cancel(_, _) | Op::CancelAll(_) if payments.is_empty() => {}
                    Op::Cancel(i, _) | Op::CancelAll(i) => {
                        let i = i % payments.len();
                        let left = u(payments[i].remaining(&krw()).unwrap());
                        let n = match op { Op::Cancel(_, n) => n, _ => left.max(1) };
                        let before = payments[i].clone();
                        match w.cancel(&mut payments[i], won(n), now, &pol) {
                            Ok(c) => {
                                prop_assert!(n <= left);
                                prop_assert_eq!(u(c.principal) + u(c.bonus) + u(c.forfeited), n);
                                prop_assert_eq!(c.grants.iter().map(|g| u(g.amount)).sum::<i64>(), u(c.bonus) + u(c.forfeited));
                                for g in &c.grants {
                                    let t = before.takes.iter().find(|t| t.grant == g.grant).unwrap();
                                    prop_assert_eq!(g.forfeited, now >= t.expires_at_ms);
                                }
                                m.principal += u(c.principal);
                                m.bonus_held += u(c.bonus);
                            }
                            Err(RuleError::ExceedsCancellable { cancellable, .. }) => {
                                prop_assert!(n > left);
                                prop_assert_eq!(u(cancellable), left);
                                prop_assert_eq!(&payments[i], &before);
                            }
                            Err(e) => prop_assert!(false, "unexpected {e}"),
                        }
                    }
                    Op::Advance(ms) => now += ms,
                    Op::Lapse => m.bonus_held -= u(w.lapse_expired(now, &pol).unwrap()),
                    Op::Refund => {
                        let r = w.refund(now, &pol).unwrap();
                        prop_assert_eq!(u(r.principal), m.principal);
                        m.principal = 0;
                        m.bonus_held -= u(r.bonus_clawed_back) + u(r.bonus_lapsed);
                    }
                }
                // No bucket negative (units() refuses negatives) and the wallet matches the model.
                prop_assert_eq!(u(w.principal), m.principal);
                prop_assert_eq!(held_bonus(&w), m.bonus_held);
                for g in &w.grants {
                    prop_assert!(g.remaining <= g.amount);
                }
                let b = w.balance(now, &pol).unwrap();
                prop_assert_eq!(b.refundable, b.principal);
                for p in &payments {
                    check_payment(p, restore)?;
                }
            }
            // Full cancel of everything left: each payment's exact split comes back, minus what expired.
            for p in payments.iter_mut() {
                let left = p.remaining(&krw()).unwrap();
                if u(left) > 0 {
                    w.cancel(p, left, now, &pol).unwrap();
                }
                prop_assert_eq!(p.cancelled_principal, p.principal);
                prop_assert_eq!(p.cancelled_bonus, p.bonus);
                let expired: i64 = p.takes.iter().filter(|t| now >= t.expires_at_ms).map(|t| u(t.taken)).sum();
                prop_assert!(u(p.forfeited_bonus) <= expired);
                check_payment(p, restore)?;
            }
        }

        /// Pro rata: for any split and any sequence of partial cancels, each cancel's parts sum exactly to
        /// it, no bucket is passed, and the last cancel lands on the exact split.
        #[test]
        fn pro_rata_splits_sum_exactly(
            principal in 0i64..1_000_000,
            bonus in 0i64..1_000_000,
            cuts in prop::collection::vec(1i64..500_000, 1..12),
        ) {
            prop_assume!(principal + bonus > 0);
            let total = principal + bonus;
            let (mut done, mut prev) = (0i64, 0i64);
            for cut in cuts.into_iter().chain(std::iter::once(i64::MAX)) {
                let cut = cut.min(total - done);
                if cut == 0 { break; }
                done += cut;
                let p = pro_rata_principal(done, principal, total);
                prop_assert!(p >= prev && p - prev <= cut, "principal part out of range");
                prop_assert!(p <= principal && done - p <= bonus);
                prev = p;
            }
            prop_assert_eq!(done, total);
            prop_assert_eq!(prev, principal);
        }
    }
}
