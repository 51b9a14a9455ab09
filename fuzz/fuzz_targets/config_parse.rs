//! The configuration parser (`tsp serve --config FILE`): any UTF-8 text gives a config or an
//! error, never a panic. A config that loads then goes through what `tsp serve` derives from it on
//! start (`app::build`, `app::serve`) and while running, and must hold what validation promises:
//! a business-day rule, the default currency, every region's rules, BIN ranges that route each card
//! number to its own issuer and no token range that reads as a card, token numbers drawable from
//! every token range, limits and timeouts the runtime can turn into deadlines and semaphores.
#![no_main]

use std::sync::Arc;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use tsp::config::Config;
use tsp::issuer::Issuers;
use tsp::money::{Amount, MAX_MINOR};
use tsp::tokens::{TOKEN_LEN, TokenValue};

/// Pads a prefix to a 16-digit number (the check digit is not the point here).
fn number(prefix: &str) -> String {
    format!("{prefix:0<16}")
}

fn loaded(cfg: &Config) {
    // Settlement: the rule exists and places instants. From 1970 to 2100 each falls in a day that
    // holds it; the extremes (no clock gives them) must only not panic.
    let rule = cfg.business_day().expect("a loaded config has a business-day rule");
    for at in [0, 1_767_225_600_000, 4_102_444_800_000] {
        let day = rule.business_day(at, &[at - 1, 0]);
        assert!(day.opened_at_ms <= at && at < day.closes_at_ms, "an instant lies in its business day");
        let _ = rule.cancel_type(at, at + 1, &[]);
    }
    for at in [i64::MIN, i64::MAX] {
        let _ = rule.business_day(at, &[at, 0]);
        let _ = rule.cancel_type(at, at, &[0]);
    }

    // Currencies: the default one exists; every one builds amounts at its scale.
    let default = cfg.default_currency().expect("a loaded config has its default currency");
    assert!(cfg.currency(&default.numeric).is_some());
    for c in &cfg.currencies {
        assert!(cfg.currency(&c.code).is_some());
        let top = Amount::from_minor(MAX_MINOR, c);
        assert_eq!(top.to_minor(), Some(MAX_MINOR));
        let _ = Amount::parse("1", c).map(|a| a.to_string());
    }

    // Issuers by BIN (`Issuers::from_config`, as `app::build` makes them): each card range routes
    // to its own issuer; no token range, the platform's or an issuer's, reads as a card number.
    let issuers = Issuers::from_config(cfg);
    for i in &cfg.issuers {
        for p in &i.bin_prefixes {
            let found = issuers.for_pan(&number(p)).map(|x| x.id.as_str());
            assert_eq!(found, Some(i.id.as_str()), "a BIN routes to its own issuer");
        }
        for p in &i.token_bin_prefixes {
            assert!(issuers.for_pan(&number(p)).is_none(), "a token range never reads as a card BIN");
        }
    }
    for p in &cfg.platform.token_bin_prefixes {
        assert!(issuers.for_pan(&number(p)).is_none(), "a token range never reads as a card BIN");
    }

    // Token numbers: every range can give one (`Tokens::issue`).
    let all_token_prefixes =
        cfg.platform.token_bin_prefixes.iter().chain(cfg.issuers.iter().flat_map(|i| i.token_bin_prefixes.iter()));
    for p in all_token_prefixes {
        let mut seed = 7u8;
        let mut fill = |buf: &mut [u8]| {
            for b in buf.iter_mut() {
                seed = seed.wrapping_mul(31).wrapping_add(11);
                *b = seed;
            }
            true
        };
        let t = TokenValue::generate(p, TOKEN_LEN, &mut fill).expect("every token range can draw a token");
        assert!(t.as_str().starts_with(p.as_str()) && tsp::luhn::is_valid(t.as_str()));
    }

    // Regions, as `stored_value::wallet::seed` stores them on start and `stored_value::wallet::policy` reads them.
    for r in &cfg.regions {
        let row = tsp::config::region_row(r, cfg, 0).expect("a loaded region is valid");
        tsp::stored_value::wallet::policy(&row, cfg).expect("a stored region gives its policy");
    }

    // Token IMKs, as `Tokens::load_keys` imports them into the HSM. An error here (a label the HSM
    // refuses) stops `tsp serve` with a message, which is not this target's concern; a panic would be.
    if let Ok(hsm) = hsm_sim::Hsm::ephemeral() {
        let mut imks = vec![(tsp::issuer::PLATFORM_IMK_LABEL.to_string(), &cfg.platform.token_imk_ac)];
        imks.extend(cfg.issuers.iter().map(|i| (tsp::issuer::imk_label(&i.id), &i.token_imk_ac)));
        for (label, imk) in imks {
            let key = hex::decode(imk).expect("a loaded IMK is hex");
            let req = hsm_sim::Request::ImportClearKey {
                label,
                usage: hsm_sim::KeyUsage::EmvImkAc,
                key: hsm_sim::SecretBytes::from_slice(&key),
            };
            let _ = hsm.execute(req);
        }
    }

    // Issuer hosts (`issuer::host::connect` in `app::build`) and the deadlines the payment path
    // computes from `timeout_ms`: `Instant::now() + timeout` in issuer/host.rs and issuer/tcp.rs,
    // the duplicate wait `longest + 2 s` in payments/mod.rs, the lease `now + timeout + 5 s` in
    // payments/purchase.rs.
    let sim = Arc::new(tsp::issuer::sim::Simulator::new(tsp::issuer::sim::SimConfig::default()));
    for i in &cfg.issuers {
        let timeout = Duration::from_millis(i.timeout_ms);
        // No TLS settings: a `tls://` host is then refused without I/O (a fuzzed `tls` table's paths
        // are never opened here).
        let _ = tsp::issuer::host::connect(&i.host, timeout, None, sim.clone());
        assert!(Instant::now().checked_add(timeout).is_some(), "an issuer timeout is a reachable deadline");
        let wait = i.timeout_ms.checked_add(2000).map(Duration::from_millis);
        assert!(wait.and_then(|w| Instant::now().checked_add(w)).is_some(), "the duplicate wait is a deadline");
        let lease = i64::try_from(i.timeout_ms)
            .ok()
            .and_then(|t| t.checked_add(5_000))
            .and_then(|t| 1_767_225_600_000i64.checked_add(t));
        assert!(lease.is_some(), "a token lease ends at a representable instant");
    }

    // Limits: the REST limiters (`RestLimits::new` in `app::build`) and what each ISO 8583
    // connection builds from `[limits]` (server/connection.rs: a channel and a semaphore of
    // `iso_max_in_flight`, made at least 1 by `app::serve`, and the idle and frame timeouts).
    let _ = tsp::api::limits::RestLimits::new(&cfg.limits);
    let l = &cfg.limits;
    let in_flight = l.iso_max_in_flight.max(1);
    let _ = tokio::sync::Semaphore::new(in_flight);
    let _ = tokio::sync::mpsc::channel::<Vec<u8>>(in_flight);
    let _ = Duration::from_secs(l.iso_idle_timeout_seconds);
    let _ = Duration::from_millis(l.iso_frame_timeout_ms);
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match Config::parse(text) {
        Ok(cfg) => loaded(&cfg),
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
