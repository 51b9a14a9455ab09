//! Per-requestor and per-key rate limits of the REST API (config `[limits]`): generic cell-rate
//! limiters keyed by requestor id or key id, answering 429 with `Retry-After` when spent.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::error::ApiError;
use crate::config::Limits;

/// One keyed limit; `None` when switched off.
struct Keyed(Option<DefaultKeyedRateLimiter<String>>);

impl Keyed {
    fn new(per_second: u32, burst: u32) -> Keyed {
        let quota = NonZeroU32::new(per_second)
            .map(|rate| Quota::per_second(rate).allow_burst(NonZeroU32::new(burst).unwrap_or(rate)));
        Keyed(quota.map(RateLimiter::keyed))
    }

    /// Takes one cell for `key`, or says how long until one is free.
    fn take(&self, key: &str) -> Result<(), Duration> {
        let Some(limiter) = &self.0 else { return Ok(()) };
        limiter.check_key(&key.to_string()).map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

pub struct RestLimits {
    tokens: Keyed,
    detokenize: Keyed,
    auth_failures: Keyed,
    /// Key ids that spent their failure allowance, until when they are not even looked up.
    blocked: Mutex<HashMap<String, Instant>>,
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
        self.tokens.take(requestor).map_err(too_many)
    }

    /// One detokenize by `requestor`.
    pub fn detokenize(&self, requestor: &str) -> Result<(), ApiError> {
        self.detokenize.take(requestor).map_err(too_many)
    }

    /// Whether key `key_id` may be tried now: not while it is blocked for failing too often.
    pub fn key_may_try(&self, key_id: &str) -> Result<(), ApiError> {
        let blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        match blocked.get(key_id) {
            Some(until) if *until > Instant::now() => Err(too_many(*until - Instant::now())),
            _ => Ok(()),
        }
    }

    /// Counts a refused try of `key_id`; once its allowance is spent, it is blocked until a try is
    /// allowed again.
    pub fn key_refused(&self, key_id: &str) {
        if let Err(wait) = self.auth_failures.take(key_id) {
            let mut blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            if blocked.len() > 100_000 {
                blocked.retain(|_, until| *until > now);
            }
            blocked.insert(key_id.to_string(), now + wait);
        }
    }
}

fn too_many(wait: Duration) -> ApiError {
    // Whole seconds, rounded up (RFC 9110 delay-seconds), at least 1.
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many requests; try again later")
        .retry_after(secs.max(1))
}
