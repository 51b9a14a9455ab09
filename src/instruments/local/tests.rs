//! Unit tests of `local.rs`.

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
    // A region of `i64::MAX` seconds was accepted (`POST /v1/admin/regions`), then every charge in it
    // was a 500.
    let max = MAX_BONUS_LIFETIME_SECONDS;
    assert!(RegionPolicy::new(krw(), "0.1".parse().unwrap(), won(1), max, CancelRestore::Reverse).is_ok());
    for too_long in [max + 1, i64::MAX] {
        assert!(RegionPolicy::new(krw(), "0.1".parse().unwrap(), won(1), too_long, CancelRestore::Reverse).is_err());
    }
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
