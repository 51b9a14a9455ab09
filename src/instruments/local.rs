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
    /// bonus expiring at birth could never be spent) and at most [`MAX_BONUS_LIFETIME_SECONDS`] (a
    /// longer one overflowed the grant's expiry: every charge in the region failed), the cap is at the
    /// currency's scale.
    pub fn validate(&self) -> Result<(), RuleError> {
        check_ratio(self.incentive_rate, "incentive_rate must be within 0..=1")?;
        if self.bonus_lifetime_seconds <= 0 {
            return Err(RuleError::InvalidConfig("bonus_lifetime_seconds must be positive"));
        }
        if self.bonus_lifetime_seconds > MAX_BONUS_LIFETIME_SECONDS {
            return Err(RuleError::InvalidConfig("bonus_lifetime_seconds must be at most 315360000 (10 years)"));
        }
        units(self.monthly_bonus_cap, &self.currency)
            .map_err(|_| RuleError::InvalidConfig("monthly_bonus_cap must be at the currency's scale"))?;
        Ok(())
    }
}

/// The longest a bonus may live: ten years (of 365 days).
pub const MAX_BONUS_LIFETIME_SECONDS: i64 = 10 * 365 * 86_400;

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
mod tests;
