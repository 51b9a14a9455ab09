//! A property test across the three kinds of instrument, in process against the real service state
//! (SQLite store, HSM simulator, issuer simulator, ISO 8583 handlers): random sequences of charges,
//! payments, partial cancels, reversals, settlements and clock moves, and after every step:
//!
//! - every journal entry balances, every cached balance equals the sum of its postings, the books
//!   balance, no stored-value account is negative;
//! - per payment, the total cancelled never exceeds the original and equals its approved cancels;
//! - a wallet's bonus grants hold exactly its bonus account, and the balance view agrees with the
//!   postings;
//! - a payment fully given back (cancelled or reversed) gave back exactly its principal/bonus split,
//!   the bonus part split between restored and forfeited, forfeited only where its grant had expired;
//! - every answer is the one an independent model of the rules expects (`00`/`51`/`64`/`12`/`54`/`57`),
//!   and the gift certificate's balance is what the model says.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

mod common;

use std::collections::HashMap;

use proptest::prelude::*;
use sqlx::AnyPool;
use tsp::app::{ServeOptions, build};
use tsp::config::MerchantConfig;
use tsp::config::RegionSpec;
use tsp::config::TerminalSpec;
use tsp::iso8583::{Message, Mti, OriginalData};
use tsp::payments::Answer;
use tsp::requestors::{self, Requestor, Scope};
use tsp::tokens::TokenOptions;

const DAY: i64 = 86_400;
/// The bonus lifetime of both test regions: clock moves of up to a few hours let some expire.
const BONUS_LIFETIME: i64 = 4 * 3600;
const GIFT_FACE: i64 = 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Card,
    Gift,
    /// Index into the two wallets: 0 `reverse`, 1 `pro_rata`.
    Local(usize),
}

#[derive(Debug, Clone)]
enum Op {
    Charge {
        wallet: usize,
        amount: i64,
    },
    Pay {
        kind: Kind,
        amount: i64,
        elsewhere: bool,
    },
    /// Cancel `amount` of the payment picked by `pick` (modulo the payments so far).
    Cancel {
        pick: usize,
        amount: i64,
        rest: bool,
    },
    Reverse {
        pick: usize,
    },
    Advance {
        seconds: i64,
    },
    Settle,
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![Just(Kind::Card), Just(Kind::Gift), Just(Kind::Local(0)), Just(Kind::Local(1))]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..2usize, 1..40_000i64).prop_map(|(wallet, amount)| Op::Charge { wallet, amount }),
        5 => (kind(), 1..25_000i64, prop::bool::weighted(0.1))
            .prop_map(|(kind, amount, elsewhere)| Op::Pay { kind, amount, elsewhere }),
        4 => (any::<usize>(), 1..15_000i64, any::<bool>()).prop_map(|(pick, amount, rest)| Op::Cancel { pick, amount, rest }),
        1 => any::<usize>().prop_map(|pick| Op::Reverse { pick }),
        2 => prop_oneof![0..3_600i64, 3_600..3 * DAY].prop_map(|seconds| Op::Advance { seconds }),
        1 => Just(Op::Settle),
    ]
}

/// A payment as the model knows it.
#[derive(Debug, Clone)]
struct Paid {
    kind: Kind,
    request: Message,
    amount: i64,
    cancelled: i64,
    reversed: bool,
}

struct Rig {
    _dir: tempfile::TempDir,
    state: tsp::api::AppState,
    pool: AnyPool,
    requestor: Requestor,
    card: String,
    gift: String,
    gift_expires: i64,
    wallets: [String; 2],
    merchants: [String; 2],
    stan: u32,
    payments: Vec<Paid>,
    gift_balance: i64,
}

fn de42(id: &str) -> String {
    format!("{id:<15}")
}

impl Rig {
    async fn new() -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let database_url = common::fresh_database().await;
        let opts = ServeOptions {
            data_dir: dir.path().join("data"),
            config: None,
            database_url: database_url.clone(),
            http_addr: "127.0.0.1:0".parse().unwrap(),
            iso_addr: "127.0.0.1:0".parse().unwrap(),
            hsm: None,
            seal: Default::default(),
        };
        let state = build(&opts).await.unwrap();
        let now = state.clock.now_ms();
        let requestor =
            requestors::create(&state.store, "401", "props", &[Scope::Instruments, Scope::Tokens], now).await.unwrap();
        let requestor = requestor.requestor;
        let (card, _) = state.vault.register_card(&requestor, "4111111111111111", "3012").await.unwrap();
        let gift_expires = now + 2 * DAY * 1000;
        let issued = tsp::stored_value::gift::issue(
            &state.store,
            &state.config,
            &GIFT_FACE.to_string(),
            "KRW",
            gift_expires,
            now,
        )
        .await
        .unwrap();
        let (gift, _) = tsp::stored_value::gift::register(&state.store, &requestor, &issued.code, now).await.unwrap();
        let mut wallets = Vec::new();
        let mut merchants = Vec::new();
        for (i, restore) in ["reverse", "pro_rata"].into_iter().enumerate() {
            let merchant = format!("PROP-SHOP-{i}");
            let spec = RegionSpec {
                id: format!("prop-{restore}"),
                name: format!("props {restore}"),
                currency: "KRW".into(),
                incentive_rate: "0.10".into(),
                monthly_bonus_cap: "50000".into(),
                bonus_lifetime_seconds: BONUS_LIFETIME,
                cancel_restore: Some(restore.into()),
                merchants: vec![MerchantConfig { id: merchant.clone(), name: "shop".into() }],
            };
            tsp::stored_value::wallet::define_region(&state.store, &state.config, &spec, now).await.unwrap();
            let (w, created) = tsp::stored_value::wallet::open(&state.store, &requestor, &spec.id, now).await.unwrap();
            assert!(created);
            wallets.push(w.id);
            merchants.push(merchant);
        }
        for (id, merchant) in [("PROPTRM0", "PROP-SHOP-0"), ("PROPTRM1", "PROP-SHOP-1"), ("PROPTRMA", "PROP-ANY-SHOP")]
        {
            let spec = TerminalSpec { id: id.into(), merchant_id: merchant.into(), van: None };
            state.terminals.register(&spec, now).await.unwrap();
        }
        let pool = common::database(&dir.path().join("data"), database_url.as_deref()).await;
        Rig {
            _dir: dir,
            state,
            pool,
            requestor,
            card: card.id,
            gift: gift.id,
            gift_expires,
            wallets: [wallets[0].clone(), wallets[1].clone()],
            merchants: [merchants[0].clone(), merchants[1].clone()],
            stan: 0,
            payments: Vec::new(),
            gift_balance: GIFT_FACE,
        }
    }

    fn now(&self) -> i64 {
        self.state.clock.now_ms()
    }

    async fn send(&self, m: Message) -> Message {
        match self.state.payments.handle(m, None).await {
            Answer::Send(bytes) => Message::decode(&bytes).unwrap(),
            Answer::Nothing => panic!("no answer"),
        }
    }

    fn request(&mut self, mti: Mti, pan: &str, processing: &str, amount: i64, merchant: &str) -> Message {
        self.stan += 1;
        let stan = format!("{:06}", self.stan);
        let mut m = Message::new(mti);
        m.set_pan(pan).unwrap();
        m.set_processing_code(processing).unwrap();
        m.set_amount(amount as u64).unwrap();
        m.set_transmission_date_time("1123103000").unwrap();
        m.set_stan(&stan).unwrap();
        m.set_local_time("193000").unwrap();
        m.set_local_date("1123").unwrap();
        m.set_pos_entry_mode("011").unwrap();
        m.set_pos_condition_code("00").unwrap();
        m.set_acquirer_id("12345").unwrap();
        m.set_rrn(&format!("RRN{stan:0>9}")).unwrap();
        // One registered terminal per merchant (see `Rig::new`).
        let terminal = match merchant {
            "PROP-SHOP-0" => "PROPTRM0",
            "PROP-SHOP-1" => "PROPTRM1",
            _ => "PROPTRMA",
        };
        m.set_terminal_id(terminal).unwrap();
        m.set_merchant_id(&de42(merchant)).unwrap();
        m.set_currency_code("410").unwrap();
        m
    }

    fn naming(original: &Message) -> OriginalData {
        OriginalData::new(
            original.mti(),
            original.stan().unwrap(),
            original.transmission_date_time().unwrap(),
            original.acquirer_id().unwrap(),
        )
        .unwrap()
    }

    /// Principal and live bonus of a wallet, as the balance view shows them.
    async fn wallet_view(&self, w: usize) -> (i64, i64) {
        let b = tsp::stored_value::wallet::balance(&self.state.store, &self.state.config, &self.wallets[w], self.now())
            .await
            .unwrap();
        (b.principal.to_minor().unwrap(), b.bonus.to_minor().unwrap())
    }

    async fn apply(&mut self, op: &Op) {
        match *op {
            Op::Charge { wallet, amount } => {
                let instrument = self.state.store.instrument(&self.wallets[wallet]).await.unwrap().unwrap();
                let clock = self.state.clock.clone();
                let before = self.wallet_view(wallet).await;
                let c = tsp::stored_value::wallet::charge(
                    self.state.payments.wallets(),
                    &self.state.store,
                    &self.state.config,
                    move || clock.now_ms(),
                    &instrument,
                    &amount.to_string(),
                )
                .await
                .unwrap();
                assert_eq!(c.principal.to_minor(), Some(amount));
                let bonus = c.bonus.to_minor().unwrap();
                assert!(bonus <= amount / 10, "bonus {bonus} above 10 % of {amount}");
                let after = self.wallet_view(wallet).await;
                assert_eq!(after, (before.0 + amount, before.1 + bonus), "a charge adds exactly its split");
            }
            Op::Pay { kind, amount, elsewhere } => {
                let instrument = match kind {
                    Kind::Card => self.card.clone(),
                    Kind::Gift => self.gift.clone(),
                    Kind::Local(w) => self.wallets[w].clone(),
                };
                let issued = self.state.tokens.issue(&self.requestor, &instrument, &TokenOptions::default()).await;
                if kind == Kind::Gift && self.now() >= self.gift_expires {
                    // An expired certificate gets no token (a token issued before its expiry is
                    // declined 54 at the terminal: tests/gift.rs).
                    assert!(matches!(issued, Err(tsp::Error::InstrumentExpired)), "{op:?}");
                    return;
                }
                let token = issued.unwrap().row.token.clone();
                let merchant = match (kind, elsewhere) {
                    (Kind::Local(w), true) => self.merchants[1 - w].clone(),
                    (Kind::Local(w), false) => self.merchants[w].clone(),
                    _ => "PROP-ANY-SHOP".into(),
                };
                let expected = match kind {
                    Kind::Card => "00",
                    Kind::Gift if self.now() >= self.gift_expires => "54",
                    Kind::Gift if amount > self.gift_balance => "51",
                    Kind::Gift => "00",
                    Kind::Local(_) if elsewhere => "57",
                    Kind::Local(w) => {
                        let (p, b) = self.wallet_view(w).await;
                        if amount > p + b { "51" } else { "00" }
                    }
                };
                let before = match kind {
                    Kind::Local(w) => Some(self.wallet_view(w).await),
                    _ => None,
                };
                let req = self.request(Mti::FINANCIAL_REQUEST, &token, "000000", amount, &merchant);
                let ans = self.send(req.clone()).await;
                assert_eq!(ans.response_code(), Some(expected), "{op:?}");
                if expected == "00" {
                    if kind == Kind::Gift {
                        self.gift_balance -= amount;
                    }
                    if let (Kind::Local(w), Some((p, b))) = (kind, before) {
                        // Bonus first: the payment takes min(amount, live bonus) from bonus.
                        let from_bonus = amount.min(b);
                        assert_eq!(self.wallet_view(w).await, (p - (amount - from_bonus), b - from_bonus));
                    }
                    self.payments.push(Paid { kind, request: req, amount, cancelled: 0, reversed: false });
                } else if let (Kind::Local(w), Some(b)) = (kind, before) {
                    assert_eq!(self.wallet_view(w).await, b, "a refused payment moves nothing");
                }
            }
            Op::Cancel { pick, amount, rest } => {
                if self.payments.is_empty() {
                    return;
                }
                let i = pick % self.payments.len();
                let paid = self.payments[i].clone();
                let left = paid.amount - paid.cancelled;
                let amount = if rest && left > 0 { left } else { amount };
                let expected = if paid.reversed {
                    "12"
                } else if amount > left {
                    "64"
                } else {
                    "00"
                };
                let pan = paid.request.pan().unwrap().to_string();
                let merchant = paid.request.merchant_id().unwrap().trim_end().to_string();
                let mut req = self.request(Mti::FINANCIAL_REQUEST, &pan, "200000", amount, &merchant);
                req.set_original_data(&Self::naming(&paid.request)).unwrap();
                let ans = self.send(req).await;
                assert_eq!(ans.response_code(), Some(expected), "{op:?} of {:?}", paid.kind);
                if expected == "00" {
                    self.payments[i].cancelled += amount;
                    if paid.kind == Kind::Gift {
                        self.gift_balance += amount;
                    }
                }
            }
            Op::Reverse { pick } => {
                if self.payments.is_empty() {
                    return;
                }
                let i = pick % self.payments.len();
                let paid = self.payments[i].clone();
                let pan = paid.request.pan().unwrap().to_string();
                let merchant = paid.request.merchant_id().unwrap().trim_end().to_string();
                let mut req = self.request(Mti::REVERSAL_REQUEST, &pan, "000000", paid.amount, &merchant);
                req.set_original_data(&Self::naming(&paid.request)).unwrap();
                let ans = self.send(req).await;
                assert_eq!(ans.response_code(), Some("00"), "{op:?}");
                if !paid.reversed {
                    if paid.kind == Kind::Gift {
                        self.gift_balance += paid.amount - paid.cancelled;
                    }
                    self.payments[i].reversed = true;
                }
            }
            Op::Advance { seconds } => self.state.clock.advance(seconds * 1000),
            Op::Settle => {
                tsp::payments::settle(&self.state.store, &self.state.clock).await.unwrap();
            }
        }
    }

    /// Every invariant of the module docs, read from the database.
    async fn check(&self) {
        let pool = &self.pool;
        let unbalanced: Vec<(String,)> = sqlx::query_as(
            "SELECT entry_id FROM ledger_postings GROUP BY entry_id \
             HAVING SUM(CASE side WHEN 'debit' THEN amount ELSE -amount END) <> 0",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        assert!(unbalanced.is_empty(), "unbalanced entries {unbalanced:?}");
        let accounts: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT id, kind, balance FROM ledger_accounts").fetch_all(pool).await.unwrap();
        let mut net = 0;
        let mut by_id = HashMap::new();
        for (id, kind, cached) in &accounts {
            let k: tsp::ledger::AccountKind = kind.parse().unwrap();
            let postings: Vec<(String, i64)> =
                sqlx::query_as("SELECT side, amount FROM ledger_postings WHERE account_id = $1")
                    .bind(id)
                    .fetch_all(pool)
                    .await
                    .unwrap();
            let sum: i64 = postings.iter().map(|(s, a)| if s == k.normal_side().as_str() { *a } else { -*a }).sum();
            assert_eq!(*cached, sum, "account {id}: cached {cached}, postings {sum}");
            assert!(!k.non_negative() || *cached >= 0, "{id} is negative: {cached}");
            net += if k.normal_side() == tsp::ledger::Side::Debit { *cached } else { -*cached };
            by_id.insert(id.clone(), *cached);
        }
        assert_eq!(net, 0, "the books do not balance");
        assert_eq!(by_id.get(&format!("gift:{}", self.gift_id().await)).copied().unwrap_or(0), self.gift_balance);

        // Per payment: cancelled ≤ original, and equal to its approved cancels.
        for paid in &self.payments {
            let row: (String, i64, i64, String) = sqlx::query_as(
                "SELECT id, amount, cancelled_amount, status FROM transactions WHERE msg_class = '02' AND stan = $1",
            )
            .bind(paid.request.stan().unwrap())
            .fetch_one(pool)
            .await
            .unwrap();
            let (id, amount, cancelled, status) = row;
            assert!(cancelled <= amount);
            assert_eq!(cancelled, paid.cancelled, "{:?}", paid.kind);
            assert_eq!(status, if paid.reversed { "reversed" } else { "approved" });
            if let Kind::Local(_) = paid.kind {
                self.check_split(&id, paid).await;
            }
        }
        // Wallets: grants hold the bonus account; the balance view agrees with the postings.
        for (w, id) in self.wallets.iter().enumerate() {
            let grants: (i64, i64) = sqlx::query_as(
                "SELECT CAST(COALESCE(SUM(remaining), 0) AS BIGINT), CAST(COALESCE(SUM(CASE WHEN expires_at > $2 THEN remaining END), 0) AS BIGINT) \
                 FROM bonus_grants WHERE instrument_id = $1",
            )
            .bind(id)
            .bind(self.now())
            .fetch_one(pool)
            .await
            .unwrap();
            let bonus_account = by_id.get(&format!("wallet:{id}:bonus")).copied().unwrap_or(0);
            let principal_account = by_id.get(&format!("wallet:{id}:principal")).copied().unwrap_or(0);
            assert_eq!(grants.0, bonus_account, "wallet {w}: grants vs bonus account");
            assert_eq!(self.wallet_view(w).await, (principal_account, grants.1), "wallet {w}: view vs postings");
        }
    }

    async fn gift_id(&self) -> String {
        sqlx::query_scalar("SELECT id FROM gift_certificates WHERE instrument_id = $1")
            .bind(&self.gift)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// A local payment's split against what its cancels and reversal gave back.
    async fn check_split(&self, txn_id: &str, paid: &Paid) {
        let (p, b): (i64, i64) =
            sqlx::query_as("SELECT principal, bonus FROM local_payments WHERE transaction_id = $1")
                .bind(txn_id)
                .fetch_one(&self.pool)
                .await
                .unwrap();
        assert_eq!(p + b, paid.amount);
        let back: (i64, i64, i64) = sqlx::query_as(
            "SELECT CAST(COALESCE(SUM(principal), 0) AS BIGINT), CAST(COALESCE(SUM(bonus), 0) AS BIGINT), \
             CAST(COALESCE(SUM(forfeited), 0) AS BIGINT) FROM transactions \
             WHERE original_id = $1 AND status = 'approved' AND kind IN ('cancel', 'reversal')",
        )
        .bind(txn_id)
        .fetch_one(&self.pool)
        .await
        .unwrap();
        assert!(back.0 <= p && back.1 + back.2 <= b, "gave back more than the split: {back:?} of ({p}, {b})");
        if paid.reversed || paid.cancelled == paid.amount {
            assert_eq!((back.0, back.1 + back.2), (p, b), "a full give-back restores the exact split");
        }
        if back.2 > 0 {
            let expired: i64 = sqlx::query_scalar(
                "SELECT CAST(COALESCE(SUM(taken), 0) AS BIGINT) FROM local_payment_takes WHERE transaction_id = $1 AND expires_at <= $2",
            )
            .bind(txn_id)
            .bind(self.now())
            .fetch_one(&self.pool)
            .await
            .unwrap();
            assert!(back.2 <= expired, "forfeited {} but only {expired} of its bonus has expired", back.2);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, max_shrink_iters: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_sequences_keep_every_invariant(ops in prop::collection::vec(op(), 1..40)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let mut rig = Rig::new().await;
            for op in &ops {
                rig.apply(op).await;
                rig.check().await;
            }
        });
    }
}
