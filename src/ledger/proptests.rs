//! Property tests: random sequences of the standard entries with random amounts (some too large on
//! purpose), checked after every step against an independent model kept in minor units; and random
//! raw postings against the entry constructor's rules.

use std::collections::BTreeMap;

use proptest::prelude::*;
use rust_decimal::Decimal;

use super::*;
use crate::money::{Amount, Currency};

fn currencies() -> [Currency; 2] {
    [
        Currency { code: "KRW".into(), numeric: "410".into(), scale: 0 },
        Currency { code: "USD".into(), numeric: "840".into(), scale: 2 },
    ]
}

/// Gift certificates: (id, currency index).
const GIFTS: [(&str, usize); 3] = [("g0", 0), ("g1", 0), ("g2", 1)];
/// Wallets: (id, region, currency index). Regions keep one currency.
const WALLETS: [(&str, &str, usize); 3] = [("w0", "r0", 0), ("w1", "r0", 0), ("w2", "r1", 1)];
const MERCHANTS: [&str; 2] = ["m0", "m1"];

#[derive(Debug, Clone)]
enum Op {
    IssueGift { gift: usize, minor: i64 },
    GiftPay { gift: usize, merchant: usize, minor: i64 },
    GiftCancel { pay: usize, minor: i64 },
    GiftReverse { pay: usize },
    LocalCharge { wallet: usize, principal: i64, bonus: i64 },
    LocalPay { wallet: usize, merchant: usize, principal: i64, bonus: i64 },
    LocalCancel { pay: usize, principal: i64, bonus: i64, forfeit: i64 },
    LocalReverse { pay: usize },
    Expire { wallet: usize, minor: i64 },
    Refund { wallet: usize, all: bool, principal: i64, bonus: i64 },
}

fn op() -> impl Strategy<Value = Op> {
    let amt = || 0i64..20_000;
    let gift = || 0..GIFTS.len();
    let wallet = || 0..WALLETS.len();
    let merchant = || 0..MERCHANTS.len();
    prop_oneof![
        (gift(), amt()).prop_map(|(gift, minor)| Op::IssueGift { gift, minor }),
        (gift(), merchant(), amt()).prop_map(|(gift, merchant, minor)| Op::GiftPay { gift, merchant, minor }),
        (any::<usize>(), amt()).prop_map(|(pay, minor)| Op::GiftCancel { pay, minor }),
        any::<usize>().prop_map(|pay| Op::GiftReverse { pay }),
        (wallet(), amt(), 0i64..3_000).prop_map(|(wallet, principal, bonus)| Op::LocalCharge {
            wallet,
            principal,
            bonus
        }),
        (wallet(), merchant(), amt(), 0i64..3_000).prop_map(|(wallet, merchant, principal, bonus)| Op::LocalPay {
            wallet,
            merchant,
            principal,
            bonus
        }),
        (any::<usize>(), amt(), 0i64..3_000, 0i64..3_000)
            .prop_map(|(pay, principal, bonus, forfeit)| { Op::LocalCancel { pay, principal, bonus, forfeit } }),
        any::<usize>().prop_map(|pay| Op::LocalReverse { pay }),
        (wallet(), 0i64..3_000).prop_map(|(wallet, minor)| Op::Expire { wallet, minor }),
        (wallet(), any::<bool>(), amt(), 0i64..3_000).prop_map(|(wallet, all, principal, bonus)| Op::Refund {
            wallet,
            all,
            principal,
            bonus
        }),
    ]
}

struct GiftPayRec {
    gift: usize,
    merchant: usize,
    left: i64,
}

struct LocalPayRec {
    wallet: usize,
    merchant: usize,
    principal_left: i64,
    bonus_left: i64,
}

/// The ledger under test beside a model of what every account should hold, in minor units, written
/// in the instruments' terms (not from the entries' lines), so a builder that got a side wrong shows.
struct Harness {
    cur: [Currency; 2],
    ledger: Balances,
    model: BTreeMap<String, (i64, usize)>,
    gift_pays: Vec<GiftPayRec>,
    local_pays: Vec<LocalPayRec>,
    next: u64,
    applied: usize,
    refused: usize,
}

/// A movement in the model: account id, currency index, delta in the account's normal-side terms.
type Effect = (String, usize, i64);

impl Harness {
    fn new() -> Self {
        Harness {
            cur: currencies(),
            ledger: Balances::new(),
            model: BTreeMap::new(),
            gift_pays: Vec::new(),
            local_pays: Vec::new(),
            next: 0,
            applied: 0,
            refused: 0,
        }
    }

    fn id(&mut self) -> EntryId {
        self.next += 1;
        EntryId::new(&format!("e{}", self.next)).unwrap()
    }

    fn amt(&self, c: usize, minor: i64) -> Amount {
        Amount::from_minor(minor, &self.cur[c])
    }

    fn model(&self, id: &str) -> i64 {
        self.model.get(id).map_or(0, |m| m.0)
    }

    /// Applies `entry` (if it could be built) and checks the outcome against the model: refused with
    /// `NegativeBalance` (and nothing changed) exactly when the model says a stored-value account
    /// would go negative. Returns whether it was applied.
    fn run(&mut self, entry: Result<JournalEntry, LedgerError>, effects: Vec<Effect>) -> bool {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                // Only an entry with nothing to post is refused by a builder here (amounts are ≥ 0).
                assert!(matches!(e, LedgerError::TooFewLines { count: 0, .. }), "{e}");
                assert!(effects.iter().all(|(_, _, d)| *d == 0));
                self.refused += 1;
                return false;
            }
        };
        let mut after = self.model.clone();
        for (id, c, d) in &effects {
            after.entry(id.clone()).or_insert((0, *c)).0 += d;
        }
        let stored_value = |id: &str| id.starts_with("gift:") || id.starts_with("wallet:");
        let overdraws = after.iter().any(|(id, (m, _))| stored_value(id) && *m < 0);
        let before = self.ledger.clone();
        match self.ledger.apply(entry) {
            Ok(()) => {
                assert!(!overdraws, "applied an entry that overdraws stored value");
                self.model = after;
                self.applied += 1;
                true
            }
            Err(e) => {
                assert!(overdraws, "refused a valid entry: {e}");
                assert!(matches!(e, LedgerError::NegativeBalance { .. }), "{e}");
                assert!(self.ledger == before, "a refused entry changed the ledger");
                self.refused += 1;
                false
            }
        }
    }

    fn step(&mut self, op: &Op) {
        match *op {
            Op::IssueGift { gift, minor } => {
                let (g, c) = GIFTS[gift];
                let id = self.id();
                let e = gift_issuance(id, &self.cur[c], g, self.amt(c, minor));
                let code = &self.cur[c].code;
                self.run(e, vec![(format!("cash:{code}"), c, minor), (format!("gift:{g}"), c, minor)]);
            }
            Op::GiftPay { gift, merchant, minor } => {
                let (g, c) = GIFTS[gift];
                let m = MERCHANTS[merchant];
                let id = self.id();
                let e = gift_payment(id, &self.cur[c], g, m, self.amt(c, minor));
                let code = self.cur[c].code.clone();
                let fx = vec![(format!("gift:{g}"), c, -minor), (format!("merchant:{m}:{code}"), c, minor)];
                if self.run(e, fx) && minor > 0 {
                    self.gift_pays.push(GiftPayRec { gift, merchant, left: minor });
                }
            }
            Op::GiftCancel { pay, minor } => self.gift_restore(pay, Some(minor)),
            Op::GiftReverse { pay } => self.gift_restore(pay, None),
            Op::LocalCharge { wallet, principal, bonus } => {
                let (w, r, c) = WALLETS[wallet];
                let id = self.id();
                let split = Split { principal: self.amt(c, principal), bonus: self.amt(c, bonus) };
                let e = local_charge(id, &self.cur[c], w, r, split);
                let code = &self.cur[c].code;
                let fx = vec![
                    (format!("cash:{code}"), c, principal),
                    (format!("promo:{r}"), c, bonus),
                    (format!("wallet:{w}:principal"), c, principal),
                    (format!("wallet:{w}:bonus"), c, bonus),
                ];
                self.run(e, fx);
            }
            Op::LocalPay { wallet, merchant, principal, bonus } => {
                let (w, _, c) = WALLETS[wallet];
                let m = MERCHANTS[merchant];
                let id = self.id();
                let split = Split { principal: self.amt(c, principal), bonus: self.amt(c, bonus) };
                let e = local_payment(id, &self.cur[c], w, m, split);
                let code = self.cur[c].code.clone();
                let fx = vec![
                    (format!("wallet:{w}:principal"), c, -principal),
                    (format!("wallet:{w}:bonus"), c, -bonus),
                    (format!("merchant:{m}:{code}"), c, principal + bonus),
                ];
                if self.run(e, fx) {
                    self.local_pays.push(LocalPayRec {
                        wallet,
                        merchant,
                        principal_left: principal,
                        bonus_left: bonus,
                    });
                }
            }
            Op::LocalCancel { pay, principal, bonus, forfeit } => {
                self.local_restore(pay, Some((principal, bonus, forfeit)))
            }
            Op::LocalReverse { pay } => self.local_restore(pay, None),
            Op::Expire { wallet, minor } => {
                let (w, r, c) = WALLETS[wallet];
                let id = self.id();
                let e = bonus_expiry(id, &self.cur[c], w, r, self.amt(c, minor));
                self.run(e, vec![(format!("wallet:{w}:bonus"), c, -minor), (format!("forfeited:{r}"), c, minor)]);
            }
            Op::Refund { wallet, all, principal, bonus } => {
                let (w, r, c) = WALLETS[wallet];
                let (p, b) = if all {
                    (self.model(&format!("wallet:{w}:principal")), self.model(&format!("wallet:{w}:bonus")))
                } else {
                    (principal, bonus)
                };
                let id = self.id();
                let split = Split { principal: self.amt(c, p), bonus: self.amt(c, b) };
                let e = wallet_refund(id, &self.cur[c], w, r, split);
                let code = &self.cur[c].code;
                let fx = vec![
                    (format!("wallet:{w}:principal"), c, -p),
                    (format!("refunds:{code}"), c, p),
                    (format!("wallet:{w}:bonus"), c, -b),
                    // Clawback credits the promotion (debit-normal) account: it decreases.
                    (format!("promo:{r}"), c, -b),
                ];
                self.run(e, fx);
            }
        }
    }

    /// Cancel (`Some(amount)`, capped at what is left) or reverse (`None`: all that is left).
    fn gift_restore(&mut self, pay: usize, minor: Option<i64>) {
        if self.gift_pays.is_empty() {
            return;
        }
        let i = pay % self.gift_pays.len();
        let (gift, merchant, left) = (self.gift_pays[i].gift, self.gift_pays[i].merchant, self.gift_pays[i].left);
        let (g, c) = GIFTS[gift];
        let m = MERCHANTS[merchant];
        let amount = minor.map_or(left, |x| x.min(left));
        let id = self.id();
        let e = match minor {
            Some(_) => gift_cancel(id, &self.cur[c], g, m, self.amt(c, amount)),
            None => gift_reversal(id, &self.cur[c], g, m, self.amt(c, amount)),
        };
        let code = self.cur[c].code.clone();
        let fx = vec![(format!("merchant:{m}:{code}"), c, -amount), (format!("gift:{g}"), c, amount)];
        if self.run(e, fx) {
            self.gift_pays[i].left -= amount;
        }
        assert!(self.gift_pays[i].left >= 0);
    }

    /// Cancel (capped per bucket at what is left; forfeited bonus comes out of the bonus left) or
    /// reverse (everything left, bonus restored).
    fn local_restore(&mut self, pay: usize, parts: Option<(i64, i64, i64)>) {
        if self.local_pays.is_empty() {
            return;
        }
        let i = pay % self.local_pays.len();
        let rec = &self.local_pays[i];
        let (wallet, merchant, pl, bl) = (rec.wallet, rec.merchant, rec.principal_left, rec.bonus_left);
        let (w, r, c) = WALLETS[wallet];
        let m = MERCHANTS[merchant];
        let (p, b, f) = match parts {
            Some((p, b, f)) => {
                let b = b.min(bl);
                (p.min(pl), b, f.min(bl - b))
            }
            None => (pl, bl, 0),
        };
        let id = self.id();
        let restore = LocalRestore { principal: self.amt(c, p), bonus: self.amt(c, b), forfeited: self.amt(c, f) };
        let e = match parts {
            Some(_) => local_cancel(id, &self.cur[c], w, r, m, restore),
            None => local_reversal(id, &self.cur[c], w, r, m, restore),
        };
        let code = self.cur[c].code.clone();
        let fx = vec![
            (format!("merchant:{m}:{code}"), c, -(p + b + f)),
            (format!("wallet:{w}:principal"), c, p),
            (format!("wallet:{w}:bonus"), c, b),
            (format!("forfeited:{r}"), c, f),
        ];
        if self.run(e, fx) {
            let rec = &mut self.local_pays[i];
            rec.principal_left -= p;
            rec.bonus_left -= b + f;
        }
        let rec = &self.local_pays[i];
        assert!(rec.principal_left >= 0 && rec.bonus_left >= 0);
    }

    /// The invariants that must hold after every step.
    fn check(&self) {
        // Every entry balances, in one currency, at its scale, with positive lines.
        for e in self.ledger.entries() {
            assert!(e.lines().len() >= 2);
            assert_eq!(e.total(Side::Debit), e.total(Side::Credit), "entry {} unbalanced", e.id());
            for l in e.lines() {
                assert!(l.amount.decimal() > Decimal::ZERO);
                assert_eq!(l.amount.decimal().scale(), e.currency().scale);
                assert_eq!(l.account.currency, e.currency().code);
            }
        }
        // No stored-value account below zero.
        for (id, a) in self.ledger.accounts() {
            if a.kind.non_negative() {
                assert!(a.balance >= Decimal::ZERO, "{id} is {}", a.balance);
            }
        }
        // Cached balances equal the recomputed ones (and the books balance, inside audit).
        if let Err(e) = self.ledger.audit() {
            panic!("audit: {e}");
        }
        // The books balance in each currency.
        for (cur, net) in self.ledger.trial_balance() {
            assert!(net.is_zero(), "books in {cur} off by {net}");
        }
        // Every balance is what the model says, at the currency's scale.
        for (id, a) in self.ledger.accounts() {
            let (m, c) = self.model.get(id.as_str()).copied().unwrap_or((0, 0));
            assert_eq!(a.balance, Decimal::new(m, self.cur[c].scale), "{id}");
            assert_eq!(a.balance.scale(), self.cur.iter().find(|x| x.code == a.currency).map_or(99, |x| x.scale));
        }
        for (id, (m, _)) in &self.model {
            if *m != 0 {
                assert!(self.ledger.get(&AccountId::parse(id).unwrap()).is_some(), "{id} missing");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_standard_entries_keep_the_books(ops in prop::collection::vec(op(), 1..80)) {
        let mut h = Harness::new();
        for op in &ops {
            h.step(op);
            h.check();
        }
        prop_assert_eq!(h.ledger.entries().len(), h.applied);
    }

    /// Raw postings over a few KRW accounts: the constructor accepts exactly the entries with two or
    /// more positive lines whose debits equal credits; an accepted entry applies exactly when no
    /// stored-value account's net would go below zero.
    #[test]
    fn raw_entries_follow_the_rules(
        seed in prop::collection::vec((0usize..5, 0i64..500), 0..8),
        raw in prop::collection::vec((0usize..5, any::<bool>(), -3i64..60), 0..6),
        balance in any::<bool>(),
    ) {
        let c = &currencies()[0];
        let accounts = [
            Account::cash(c).unwrap(),
            Account::gift_balance("g", c).unwrap(),
            Account::wallet_bonus("w", c).unwrap(),
            Account::merchant_payable("m", c).unwrap(),
            Account::bonus_funding("r", c).unwrap(),
        ];
        // Some history, so accounts have balances to overdraw or not.
        let mut ledger = Balances::new();
        for (i, (target, minor)) in seed.iter().enumerate() {
            if *minor > 0 && accounts[*target].kind.normal_side() == Side::Credit {
                let e = JournalEntry::new(
                    EntryId::new(&format!("s{i}")).unwrap(),
                    EntryKind::Charge,
                    c,
                    vec![
                        Posting::debit(accounts[0].clone(), Amount::from_minor(*minor, c)),
                        Posting::credit(accounts[*target].clone(), Amount::from_minor(*minor, c)),
                    ],
                ).unwrap();
                ledger.apply(e).unwrap();
            }
        }
        let mut lines: Vec<Posting> = raw
            .iter()
            .map(|(a, debit, m)| Posting {
                account: accounts[*a].clone(),
                side: if *debit { Side::Debit } else { Side::Credit },
                amount: Amount::from_minor(*m, c),
            })
            .collect();
        let sum = |side: Side, lines: &[Posting]| -> i64 {
            lines.iter().filter(|l| l.side == side).map(|l| l.amount.decimal().mantissa() as i64).sum()
        };
        if balance {
            let diff = sum(Side::Debit, &lines) - sum(Side::Credit, &lines);
            if diff != 0 {
                let side = if diff > 0 { Side::Credit } else { Side::Debit };
                lines.push(Posting { account: accounts[3].clone(), side, amount: Amount::from_minor(diff.abs(), c) });
            }
        }
        let valid = lines.len() >= 2
            && lines.iter().all(|l| l.amount.decimal() > Decimal::ZERO)
            && sum(Side::Debit, &lines) == sum(Side::Credit, &lines);
        let built = JournalEntry::new(EntryId::new("x").unwrap(), EntryKind::Payment, c, lines.clone());
        prop_assert_eq!(built.is_ok(), valid, "{:?}", built);
        if let Ok(entry) = built {
            let mut net: BTreeMap<AccountId, i64> = BTreeMap::new();
            for l in &lines {
                let s = if l.side == l.account.kind.normal_side() { 1 } else { -1 };
                *net.entry(l.account.id.clone()).or_insert(0) += s * l.amount.decimal().mantissa() as i64;
            }
            let overdraws = accounts.iter().any(|a| {
                a.kind.non_negative()
                    && ledger.balance(&a.id) + Decimal::from(net.get(&a.id).copied().unwrap_or(0)) < Decimal::ZERO
            });
            let before = ledger.clone();
            let applied = ledger.apply(entry);
            prop_assert_eq!(applied.is_ok(), !overdraws, "{:?}", applied);
            if applied.is_err() {
                prop_assert!(ledger == before);
            }
            prop_assert!(ledger.audit().is_ok());
        }
    }
}

#[test]
fn the_random_walk_exercises_both_outcomes() {
    // A fixed sequence through the harness, so the property above is known to hit both accepted and
    // refused entries and every builder.
    let mut h = Harness::new();
    let ops = [
        Op::IssueGift { gift: 0, minor: 10_000 },
        Op::GiftPay { gift: 0, merchant: 0, minor: 4_000 },
        Op::GiftPay { gift: 0, merchant: 1, minor: 7_000 },
        Op::GiftCancel { pay: 0, minor: 1_000 },
        Op::GiftReverse { pay: 0 },
        Op::GiftReverse { pay: 0 },
        Op::LocalCharge { wallet: 2, principal: 5_000, bonus: 500 },
        Op::LocalPay { wallet: 2, merchant: 0, principal: 1_000, bonus: 500 },
        Op::LocalCancel { pay: 0, principal: 400, bonus: 100, forfeit: 300 },
        Op::LocalReverse { pay: 0 },
        Op::Expire { wallet: 2, minor: 100 },
        Op::Expire { wallet: 2, minor: 101 },
        Op::Refund { wallet: 2, all: true, principal: 0, bonus: 0 },
        Op::Refund { wallet: 2, all: false, principal: 1, bonus: 0 },
    ];
    for op in &ops {
        h.step(op);
        h.check();
    }
    assert_eq!(h.applied, 10);
    assert_eq!(h.refused, 4);
    let bal = |id: &str| h.ledger.balance(&AccountId::parse(id).unwrap());
    assert_eq!(bal("gift:g0"), Decimal::new(10_000, 0));
    assert_eq!(bal("wallet:w2:principal"), Decimal::ZERO);
    assert_eq!(bal("wallet:w2:bonus"), Decimal::ZERO);
    assert_eq!(bal("refunds:USD").to_string(), "50.00");
    // 300 of bonus forfeited on cancel + 100 expired; 100 clawed back; promotion keeps 400 spent.
    assert_eq!(bal("forfeited:r1").to_string(), "4.00");
    assert_eq!(bal("promo:r1").to_string(), "4.00");
}
