//! Rate limits of the REST API (config `[limits]`): cell-rate limiters keyed by requestor id (for
//! authenticated work) or by source address (for refused API keys), answering 429 with
//! `Retry-After` when spent.
//!
//! Refused keys are limited by where they come from, never by the key id they name: a key id is not
//! secret, and counting failures per id would let anyone lock its owner out with wrong secrets. The
//! owner's right secret from another address is looked up as usual. Memory stays bounded: idle
//! limiter state is dropped once many sources are tracked, and blocks expire.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::error::ApiError;
use crate::config::Limits;

/// Sources (or requestors) a limiter tracks before it drops the idle ones.
const TRACKED: usize = 50_000;

/// One keyed limit; `None` when switched off.
struct Keyed<K: Hash + Eq + Clone>(Option<DefaultKeyedRateLimiter<K>>);

impl<K: Hash + Eq + Clone> Keyed<K> {
    fn new(per_second: u32, burst: u32) -> Keyed<K> {
        let quota = NonZeroU32::new(per_second)
            .map(|rate| Quota::per_second(rate).allow_burst(NonZeroU32::new(burst).unwrap_or(rate)));
        Keyed(quota.map(RateLimiter::keyed))
    }

    /// Takes one cell for `key`, or says how long until one is free.
    fn take(&self, key: &K) -> Result<(), Duration> {
        let Some(limiter) = &self.0 else { return Ok(()) };
        if limiter.len() > TRACKED {
            // Keys whose cells are all back are the same as new ones: forgetting them loses nothing.
            limiter.retain_recent();
        }
        limiter.check_key(key).map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.0.as_ref().map_or(0, |l| l.len())
    }
}

pub struct RestLimits {
    tokens: Keyed<String>,
    detokenize: Keyed<String>,
    auth_failures: Keyed<Source>,
    /// Sources that spent their failure allowance, until when their keys are not even looked up.
    blocked: Mutex<HashMap<Source, Instant>>,
}

/// Where a request came from, as the failure limit counts it: an IPv4 address, or an IPv6 /64 (one
/// host usually holds a whole /64, so counting single v6 addresses would count nothing); `Unknown`
/// when the front did not say (all such requests share one allowance).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    V4([u8; 4]),
    V6Prefix([u8; 8]),
    Unknown,
}

impl Source {
    pub fn of(ip: Option<IpAddr>) -> Source {
        match ip.map(|ip| ip.to_canonical()) {
            Some(IpAddr::V4(v4)) => Source::V4(v4.octets()),
            Some(IpAddr::V6(v6)) => {
                let mut prefix = [0u8; 8];
                prefix.copy_from_slice(&v6.octets()[..8]);
                Source::V6Prefix(prefix)
            }
            None => Source::Unknown,
        }
    }
}

impl RestLimits {
    pub fn new(l: &Limits) -> RestLimits {
        RestLimits {
            tokens: Keyed::new(l.tokens_per_second, l.tokens_burst),
            detokenize: Keyed::new(l.detokenize_per_second, l.detokenize_burst),
            auth_failures: Keyed::new(l.auth_failures_per_second, l.auth_failures_burst),
            blocked: Mutex::new(HashMap::new()),
        }
    }

    /// One token issuance by `requestor`.
    pub fn token(&self, requestor: &str) -> Result<(), ApiError> {
        self.tokens.take(&requestor.to_string()).map_err(too_many)
    }

    /// One detokenize by `requestor`.
    pub fn detokenize(&self, requestor: &str) -> Result<(), ApiError> {
        self.detokenize.take(&requestor.to_string()).map_err(too_many)
    }

    /// Whether a key from `source` may be tried now: not while the source is blocked for failing
    /// too often.
    pub fn key_may_try(&self, source: Source) -> Result<(), ApiError> {
        let blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        match blocked.get(&source) {
            Some(until) if *until > Instant::now() => Err(too_many(*until - Instant::now())),
            _ => Ok(()),
        }
    }

    /// Counts a refused key from `source`; once its allowance is spent, the source is blocked until
    /// a try is allowed again. True when this refusal started a block (the audit trail records
    /// blocks, not every refusal).
    pub fn key_refused(&self, source: Source) -> bool {
        let Err(wait) = self.auth_failures.take(&source) else { return false };
        let mut blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if blocked.len() > TRACKED {
            blocked.retain(|_, until| *until > now);
        }
        let was_blocked = blocked.get(&source).is_some_and(|until| *until > now);
        blocked.insert(source, now + wait);
        !was_blocked
    }
}

fn too_many(wait: Duration) -> ApiError {
    // Whole seconds, rounded up (RFC 9110 delay-seconds), at least 1.
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many requests; try again later")
        .retry_after(secs.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_second: u32, burst: u32) -> RestLimits {
        RestLimits::new(&Limits {
            auth_failures_per_second: per_second,
            auth_failures_burst: burst,
            ..Limits::default()
        })
    }

    #[test]
    fn a_source_that_keeps_failing_is_blocked_and_others_are_not() {
        let l = limits(1, 3);
        let attacker = Source::of(Some("203.0.113.7".parse().unwrap()));
        let owner = Source::of(Some("198.51.100.20".parse().unwrap()));
        let started: Vec<bool> = (0..5).map(|_| l.key_refused(attacker)).collect();
        // Three failures are allowed; the fourth starts a block, the fifth extends it.
        assert_eq!(started, [false, false, false, true, false]);
        assert!(l.key_may_try(attacker).is_err());
        assert!(l.key_may_try(owner).is_ok());
    }

    #[test]
    fn ipv6_sources_count_by_their_slash_64_and_mapped_v4_as_v4() {
        let a = Source::of(Some("2001:db8:1:2::1".parse().unwrap()));
        let b = Source::of(Some("2001:db8:1:2:ffff::9".parse().unwrap()));
        let c = Source::of(Some("2001:db8:1:3::1".parse().unwrap()));
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mapped = Source::of(Some("::ffff:192.0.2.1".parse().unwrap()));
        assert_eq!(mapped, Source::of(Some("192.0.2.1".parse().unwrap())));
    }

    #[test]
    fn the_state_of_many_sources_stays_bounded() {
        let l = limits(1000, 1000);
        for i in 0..(TRACKED as u32 + 20_000) {
            let _ = l.key_refused(Source::V4(i.to_be_bytes()));
        }
        // Idle sources are dropped once the limiter tracks more than TRACKED: what it holds is at
        // most TRACKED plus those seen since the last drop.
        assert!(l.auth_failures.tracked() <= TRACKED + 1, "{}", l.auth_failures.tracked());
    }
}
