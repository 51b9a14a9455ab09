//! `tsp demo`: the story of docs/operations.md "The demo" against a fresh temporary instance, with a
//! transcript. Cards of two issuers are registered, tokens issued, payments made over ISO 8583 on
//! loopback through the real front (one chip payment with a cryptogram, one barcode payment), a
//! decline, an issuer that does not answer (91, then the 0420 it is owed), a reversal, card cancels
//! before and after the day's settlement (void, refund, 64), a gift certificate and a local-currency
//! wallet paid, cancelled partly and fully and reversed, and the final balances per instrument.

use std::io::Write;
use std::time::Duration;

use crate::app::{ServeOptions, build};
use crate::iso8583::Mti;
use crate::requestors::{self, Scope};
use crate::terminal::{Terminal, chip_data};
use crate::tokens::TokenOptions;

macro_rules! say {
    ($out:expr, $($arg:tt)*) => {
        writeln!($out, $($arg)*).map_err(|e| e.to_string())?
    };
}

fn code_words(code: &str) -> &'static str {
    match code {
        "00" => "approved",
        "05" => "do not honor",
        "12" => "invalid transaction",
        "14" => "unknown token",
        "33" => "token expired",
        "25" => "original not found",
        "51" => "insufficient funds",
        "54" => "expired",
        "57" => "not permitted here",
        "61" => "over the token's limit",
        "62" => "instrument suspended",
        "64" => "more than is left to cancel",
        "78" => "token already used",
        "82" => "cryptogram failed",
        "91" => "issuer unavailable",
        "94" => "duplicate",
        _ => "declined",
    }
}

/// `00 approved`, `51 insufficient funds`, …
fn words(m: &crate::iso8583::Message) -> String {
    let c = m.response_code().unwrap_or("--");
    format!("{c} {}", code_words(c))
}

/// The stored transaction an answer belongs to (by terminal and STAN).
async fn stored(state: &crate::api::AppState, m: &crate::iso8583::Message) -> Option<crate::store::TxnRow> {
    let rows = state.store.transactions(None, 50).await.ok()?;
    rows.into_iter().find(|r| Some(r.stan.as_str()) == m.stan() && Some(r.terminal_id.as_str()) == m.terminal_id())
}

async fn cancel_type(state: &crate::api::AppState, m: &crate::iso8583::Message) -> String {
    stored(state, m).await.and_then(|t| t.cancel_type).map_or("-", |c| c.as_str()).to_string()
}

/// `(principal 8000 + bonus 2000)` as a stored-value transaction moved it.
async fn split(state: &crate::api::AppState, m: &crate::iso8583::Message) -> String {
    let Some(t) = stored(state, m).await else { return String::new() };
    let shown = |a: Option<crate::money::Amount>| a.map_or_else(|| "0".to_string(), |a| a.to_string());
    let mut s = format!("(principal {} + bonus {}", shown(t.principal), shown(t.bonus));
    if let Some(f) = t.forfeited.filter(|f| f.is_positive()) {
        s.push_str(&format!(", forfeited {f}"));
    }
    s.push(')');
    s
}

async fn gift_balance(state: &crate::api::AppState, instrument: &str) -> Result<String, String> {
    let g = state.store.gift_by_instrument(instrument).await.map_err(|x| x.to_string())?.ok_or("no gift")?;
    let (cur, principal, refundable) =
        crate::stored_value::gift::balance(&state.store, &state.config, &g, state.clock.now_ms())
            .await
            .map_err(|x| x.to_string())?;
    Ok(format!("principal {principal} {}, refundable {refundable}", cur.code))
}

async fn local_balance(state: &crate::api::AppState, instrument: &str) -> Result<String, String> {
    let b = crate::stored_value::wallet::balance(&state.store, &state.config, instrument, state.clock.now_ms())
        .await
        .map_err(|x| x.to_string())?;
    Ok(format!("principal {} + bonus {} {}, refundable {}", b.principal, b.bonus, b.currency.code, b.refundable))
}

/// How the demo's terminals talk to its ISO 8583 front.
#[derive(Debug, Clone, Copy, Default)]
pub struct DemoOptions {
    pub dialect: crate::iso8583::Dialect,
    /// A listener with `mac = "required"`: each terminal gets a fresh TAK (retail MAC) and MACs
    /// every request; every answer's MAC is checked.
    pub mac: bool,
}

/// The demo's terminals (DE41).
const DEMO_TERMINALS: [&str; 2] = ["DEMO0001", "GNCAFE01"];

pub async fn run(out: &mut dyn Write) -> Result<(), String> {
    run_with(out, DemoOptions::default()).await
}

pub async fn run_with(out: &mut dyn Write, opts: DemoOptions) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("tsp-demo-{}", uuid::Uuid::now_v7().simple()));
    let result = story(out, &dir, opts).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn story(out: &mut dyn Write, dir: &std::path::Path, demo: DemoOptions) -> Result<(), String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    std::fs::create_dir_all(dir).map_err(|x| e(&x))?;
    // The demo configuration, with issuers that give up after 700 ms so the timeout is quick.
    let mut config = crate::config::DEFAULT_TOML.replace("[[issuers]]\n", "[[issuers]]\ntimeout_ms = 700\n");
    // With MACs, a fresh TAK per demo terminal: loaded into the instance's key store as key blocks,
    // and kept by the terminal.
    let mut taks = std::collections::HashMap::new();
    if demo.mac {
        let rng = ring::rand::SystemRandom::new();
        for t in DEMO_TERMINALS {
            let mut key = zeroize::Zeroizing::new([0u8; 16]);
            ring::rand::SecureRandom::fill(&rng, &mut key[..]).map_err(|_| "random source failed".to_string())?;
            config.push_str(&format!("\n[[iso.link_keys]]\nterminal = \"{t}\"\ntak = \"{}\"\n", hex::encode(&key[..])));
            taks.insert(t, key);
        }
    }
    let terminal_mac =
        |t: &str| taks.get(t).map(|k| crate::terminal::TerminalMac::new(crate::config::MacAlgorithm::Retail, &k[..]));
    let config_path = dir.join("tsp.toml");
    std::fs::write(&config_path, config).map_err(|x| e(&x))?;
    let opts = ServeOptions {
        data_dir: dir.join("data"),
        config: Some(config_path),
        database_url: None,
        http_addr: "127.0.0.1:0".parse().map_err(|x| e(&x))?,
        iso_addr: "127.0.0.1:0".parse().map_err(|x| e(&x))?,
        hsm: None,
        seal: Default::default(),
    };
    say!(out, "== tsp demo: a fresh instance in {}", dir.display());
    let state = build(&opts).await.map_err(|x| e(&x))?;
    let iso = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|x| e(&x))?;
    let iso_addr = iso.local_addr().map_err(|x| e(&x))?.to_string();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let wire = crate::server::Wire { dialect: demo.dialect, framing: Default::default(), mac: demo.mac };
    let server = tokio::spawn(crate::server::serve(
        iso,
        state.payments.clone(),
        Default::default(),
        wire,
        None,
        stop_rx.clone(),
    ));
    let advices = tokio::spawn(crate::payments::advice::run(state.payments.clone(), stop_rx));
    let macs = if demo.mac { ", every message MACed under its terminal's TAK" } else { "" };
    say!(
        out,
        "   ISO 8583 front on {iso_addr} ({} dialect{macs}); issuers answer from the in-process simulator\n",
        demo.dialect
    );

    let now = state.clock.now_ms();
    let wallet = requestors::create(
        &state.store,
        &state.config.platform.trid_prefix,
        "demo wallet",
        &[Scope::Instruments, Scope::Tokens],
        now,
    )
    .await
    .map_err(|x| e(&x))?
    .requestor;
    say!(out, "1. A pay app (TRID {}) registers cards of two issuers", wallet.trid);
    let (hanbit_pan, nuri_pan) = ("4111111111111111", "5555555555554444");
    let (hanbit, _) = state.payments.register_card(&wallet, hanbit_pan, "3012").await.map_err(|x| e(&x))?;
    let (nuri, _) = state.payments.register_card(&wallet, nuri_pan, "2911").await.map_err(|x| e(&x))?;
    for c in [&hanbit, &nuri] {
        say!(
            out,
            "   {}  {}******{}  issuer {}  PAR {}",
            c.id,
            c.bin.as_deref().unwrap_or(""),
            c.last4.as_deref().unwrap_or(""),
            c.issuer_id.as_deref().unwrap_or(""),
            c.par.as_deref().unwrap_or("")
        );
    }

    let mut term = Terminal::connect(&iso_addr, "DEMO0001", "DEMOMART0000001")
        .await
        .map_err(|x| e(&x))?
        .speaking(demo.dialect, terminal_mac("DEMO0001"));
    say!(out, "\n2. A chip (contactless) payment of 15,000 KRW with a Hanbit card token");
    let t = state.tokens.issue(&wallet, &hanbit.id, &TokenOptions::default()).await.map_err(|x| e(&x))?;
    say!(
        out,
        "   token {}…{} (expires {}), limited-use key delivered to the app",
        &t.row.token[..6],
        &t.row.token[12..],
        t.row.token_expiry
    );
    let mut chip = term.purchase(&t.row.token, 15_000).map_err(|x| e(&x))?;
    chip.set_pos_entry_mode("071").map_err(|x| e(&x))?;
    chip.set_card_sequence_number("000").map_err(|x| e(&x))?;
    chip.set_icc_data(&chip_data(t.icc_key.expose(), 15_000, 1, [0x1A, 0x2B, 0x3C, 0x4D]).map_err(|x| e(&x))?)
        .map_err(|x| e(&x))?;
    let ans = term.call(&chip).await.map_err(|x| e(&x))?;
    let code = ans.response_code().unwrap_or("--").to_string();
    let tag91 = ans
        .icc_data()
        .is_some_and(|d| matches!(crate::iso8583::tlv::find(&d, crate::iso8583::tlv::Tag(0x91)), Ok(Some(_))));
    say!(
        out,
        "   0210: {code} {} (auth {}), ARQC verified, tag 91 (ARPC) in DE55: {tag91}",
        code_words(&code),
        ans.authorization_code().unwrap_or("-")
    );
    let again = term.pay(&t.row.token, 1000).await.map_err(|x| e(&x))?;
    let c = again.response_code().unwrap_or("--");
    say!(out, "   the same token again: {c} {}", code_words(c));

    say!(out, "\n3. A barcode payment of 8,900 KRW with a Nuri card token");
    let t2 = state.tokens.issue(&wallet, &nuri.id, &TokenOptions::default()).await.map_err(|x| e(&x))?;
    let ans = term.pay(&t2.row.token, 8_900).await.map_err(|x| e(&x))?;
    let c = ans.response_code().unwrap_or("--");
    say!(out, "   0210: {c} {} (auth {})", code_words(c), ans.authorization_code().unwrap_or("-"));

    say!(out, "\n4. A payment over the card's credit limit (the issuer set it to 20,000 KRW)");
    state.simulator.set_limit(nuri_pan, 20_000);
    let t3 = state.tokens.issue(&wallet, &nuri.id, &TokenOptions::default()).await.map_err(|x| e(&x))?;
    let ans = term.pay(&t3.row.token, 50_000).await.map_err(|x| e(&x))?;
    let c = ans.response_code().unwrap_or("--");
    say!(out, "   0210: {c} {}", code_words(c));

    say!(out, "\n5. The issuer stops answering");
    state.simulator.set_offline(true);
    let t4 = state.tokens.issue(&wallet, &hanbit.id, &TokenOptions::default()).await.map_err(|x| e(&x))?;
    let ans = term.pay(&t4.row.token, 4_500).await.map_err(|x| e(&x))?;
    let c = ans.response_code().unwrap_or("--");
    say!(out, "   0210: {c} {}; a 0420 reversal advice is now owed to the issuer", code_words(c));
    state.simulator.set_offline(false);
    let mut delivered = 0;
    for _ in 0..60 {
        delivered = state.simulator.stats().received(Mti::REVERSAL_ADVICE);
        if delivered > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    say!(out, "   the issuer is back: 0420 advices it received: {delivered}");

    say!(out, "\n6. The terminal never saw step 2's answer: it reverses the payment (0400)");
    let rev = term.reversal(&chip).map_err(|x| e(&x))?;
    let ans = term.call(&rev).await.map_err(|x| e(&x))?;
    let c = ans.response_code().unwrap_or("--");
    say!(out, "   0410: {c} {}", code_words(c));
    for _ in 0..60 {
        if state.simulator.used(hanbit_pan) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    say!(out, "   Hanbit's open-to-buy used after the reversal reached it: {} KRW", state.simulator.used(hanbit_pan));

    say!(out, "\n7. A Hanbit payment cancelled in part, then the rest after the day is settled");
    let card_pay = term
        .purchase(
            &state.tokens.issue(&wallet, &hanbit.id, &TokenOptions::default()).await.map_err(|x| e(&x))?.row.token,
            12_000,
        )
        .map_err(|x| e(&x))?;
    let ans = term.call(&card_pay).await.map_err(|x| e(&x))?;
    say!(out, "   a payment of 12,000 KRW: {}", words(&ans));
    let ans = term.cancel(&card_pay, 2_000).await.map_err(|x| e(&x))?;
    say!(out, "   cancel 2,000 (same business day): {} — a {}", words(&ans), cancel_type(&state, &ans).await);
    let ans = term.cancel(&card_pay, 10_001).await.map_err(|x| e(&x))?;
    say!(out, "   cancel 10,001 (more than is left): {}", words(&ans));
    let (settlement, _) = crate::payments::settle(&state.store, &state.clock).await.map_err(|x| e(&x))?;
    say!(out, "   the operator closes the business day (tsp settle): {settlement}");
    let ans = term.cancel(&card_pay, 10_000).await.map_err(|x| e(&x))?;
    say!(out, "   cancel the remaining 10,000: {} — a {}", words(&ans), cancel_type(&state, &ans).await);

    say!(out, "\n8. A gift certificate (금액형 상품권) of 50,000 KRW");
    let now = state.clock.now_ms();
    let issued =
        crate::stored_value::gift::issue(&state.store, &state.config, "50000", "KRW", now + 365 * 86_400_000, now)
            .await
            .map_err(|x| e(&x))?;
    say!(out, "   the operator issues {} (its code is shown once, to the buyer)", issued.row.id);
    let (gift, _) =
        crate::stored_value::gift::register(&state.store, &wallet, &issued.code, now).await.map_err(|x| e(&x))?;
    say!(out, "   the pay app registers it by its code: instrument {}", gift.id);
    let gift_token = state.tokens.issue(&wallet, &gift.id, &TokenOptions::default()).await.map_err(|x| e(&x))?;
    say!(out, "   token {}… from the platform's own range", &gift_token.row.token[..6]);
    let gift_pay = term.purchase(&gift_token.row.token, 20_000).map_err(|x| e(&x))?;
    let ans = term.call(&gift_pay).await.map_err(|x| e(&x))?;
    say!(out, "   pay 20,000: {}; balance {}", words(&ans), gift_balance(&state, &gift.id).await?);
    let t = state.tokens.issue(&wallet, &gift.id, &TokenOptions::default()).await.map_err(|x| e(&x))?;
    let ans = term.pay(&t.row.token, 40_000).await.map_err(|x| e(&x))?;
    say!(out, "   pay 40,000: {}", words(&ans));
    let ans = term.cancel(&gift_pay, 5_000).await.map_err(|x| e(&x))?;
    say!(out, "   cancel 5,000: {}; balance {}", words(&ans), gift_balance(&state, &gift.id).await?);
    let ans = term.cancel(&gift_pay, 15_000).await.map_err(|x| e(&x))?;
    say!(out, "   cancel the other 15,000: {}; balance {}", words(&ans), gift_balance(&state, &gift.id).await?);
    let t = state.tokens.issue(&wallet, &gift.id, &TokenOptions::default()).await.map_err(|x| e(&x))?;
    let ans = term.pay(&t.row.token, 32_000).await.map_err(|x| e(&x))?;
    say!(out, "   pay 32,000: {}; balance {}", words(&ans), gift_balance(&state, &gift.id).await?);

    say!(out, "\n9. Local currency (지역화폐) in the region seoul-gangnam (10% bonus, bonus first)");
    let (local, _) =
        crate::stored_value::wallet::open(&state.store, &wallet, "seoul-gangnam", now).await.map_err(|x| e(&x))?;
    let clock = state.clock.clone();
    let c = crate::stored_value::wallet::charge(
        state.payments.wallets(),
        &state.store,
        &state.config,
        move || clock.now_ms(),
        &local,
        "100000",
    )
    .await
    .map_err(|x| e(&x))?;
    say!(out, "   wallet {} charged 100,000: principal +{}, bonus +{}", local.id, c.principal, c.bonus);
    let mut cafe = Terminal::connect(&iso_addr, "GNCAFE01", "GN-CAFE-0001")
        .await
        .map_err(|x| e(&x))?
        .speaking(demo.dialect, terminal_mac("GNCAFE01"));
    let t = state.tokens.issue(&wallet, &local.id, &TokenOptions::default()).await.map_err(|x| e(&x))?;
    let ans = term.pay(&t.row.token, 5_000).await.map_err(|x| e(&x))?;
    say!(out, "   pay 5,000 at DEMOMART (not in the region): {}", words(&ans));
    let t = state.tokens.issue(&wallet, &local.id, &TokenOptions::default()).await.map_err(|x| e(&x))?;
    let local_pay = cafe.purchase(&t.row.token, 30_000).map_err(|x| e(&x))?;
    let ans = cafe.call(&local_pay).await.map_err(|x| e(&x))?;
    say!(
        out,
        "   pay 30,000 at GN-CAFE-0001: {} {}; {}",
        words(&ans),
        split(&state, &ans).await,
        local_balance(&state, &local.id).await?
    );
    let ans = cafe.cancel(&local_pay, 12_000).await.map_err(|x| e(&x))?;
    say!(
        out,
        "   cancel 12,000: {} {}; {}",
        words(&ans),
        split(&state, &ans).await,
        local_balance(&state, &local.id).await?
    );
    let ans = cafe.cancel(&local_pay, 18_000).await.map_err(|x| e(&x))?;
    say!(
        out,
        "   cancel the other 18,000: {} {}; {}",
        words(&ans),
        split(&state, &ans).await,
        local_balance(&state, &local.id).await?
    );
    let t = state.tokens.issue(&wallet, &local.id, &TokenOptions::default()).await.map_err(|x| e(&x))?;
    let second = cafe.purchase(&t.row.token, 7_000).map_err(|x| e(&x))?;
    let ans = cafe.call(&second).await.map_err(|x| e(&x))?;
    say!(out, "   pay 7,000: {} {}", words(&ans), split(&state, &ans).await);
    let ans = cafe.reverse(&second).await.map_err(|x| e(&x))?;
    say!(
        out,
        "   the terminal reverses it (0400): {} {}; {}",
        words(&ans),
        split(&state, &ans).await,
        local_balance(&state, &local.id).await?
    );
    let t = state.tokens.issue(&wallet, &local.id, &TokenOptions::default()).await.map_err(|x| e(&x))?;
    let ans = cafe.pay(&t.row.token, 25_000).await.map_err(|x| e(&x))?;
    say!(out, "   pay 25,000: {} {}", words(&ans), split(&state, &ans).await);

    say!(out, "\n10. Final balances");
    for c in [&hanbit, &nuri] {
        say!(out, "   {} card {} ({}):", c.issuer_id.as_deref().unwrap_or(""), c.id, c.bin.as_deref().unwrap_or(""));
        let rows = state.store.transactions(Some(&c.id), 100).await.map_err(|x| e(&x))?;
        for r in rows.iter().rev() {
            say!(
                out,
                "     {:<9} {:>8} KRW  {}  {:<8} {} {}",
                r.kind,
                r.amount.map_or_else(|| "0".to_string(), |a| a.to_string()),
                r.response_code.as_deref().unwrap_or("--"),
                r.status,
                r.masked_pan.as_deref().unwrap_or(""),
                r.cancel_type.map_or("", |c| c.as_str())
            );
        }
        let pan = if c.id == hanbit.id { hanbit_pan } else { nuri_pan };
        say!(out, "     issuer open-to-buy used: {} KRW", state.simulator.used(pan));
    }
    say!(out, "   gift certificate {}: {}", gift.id, gift_balance(&state, &gift.id).await?);
    say!(out, "   local-currency wallet {}: {}", local.id, local_balance(&state, &local.id).await?);
    let _ = stop_tx.send(true);
    let _ = server.await;
    let _ = advices.await;
    state.store.close().await;
    say!(out, "\n== done");
    Ok(())
}
