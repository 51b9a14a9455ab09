//! `tsp demo`: the story of SPEC §3 against a fresh temporary instance, with a transcript. Cards of
//! two issuers are registered, tokens issued, payments made over ISO 8583 on loopback through the
//! real front (one chip payment with a cryptogram, one barcode payment), a decline, an issuer that
//! does not answer (91, then the 0420 it is owed), a reversal, and the final state.

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
        "14" => "unknown token",
        "33" => "token expired",
        "51" => "insufficient funds",
        "57" => "not permitted here",
        "61" => "over the token's limit",
        "62" => "instrument suspended",
        "78" => "token already used",
        "82" => "cryptogram failed",
        "91" => "issuer unavailable",
        "94" => "duplicate",
        _ => "declined",
    }
}

pub async fn run(out: &mut dyn Write) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("tsp-demo-{}", uuid::Uuid::now_v7().simple()));
    let result = story(out, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn story(out: &mut dyn Write, dir: &std::path::Path) -> Result<(), String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    std::fs::create_dir_all(dir).map_err(|x| e(&x))?;
    // The demo configuration, with issuers that give up after 700 ms so the timeout is quick.
    let config = crate::config::DEFAULT_TOML.replace("[[issuers]]\n", "[[issuers]]\ntimeout_ms = 700\n");
    let config_path = dir.join("tsp.toml");
    std::fs::write(&config_path, config).map_err(|x| e(&x))?;
    let opts = ServeOptions {
        data_dir: dir.join("data"),
        config: Some(config_path),
        database_url: None,
        http_addr: "127.0.0.1:0".parse().map_err(|x| e(&x))?,
        iso_addr: "127.0.0.1:0".parse().map_err(|x| e(&x))?,
        hsm: None,
    };
    say!(out, "== tsp demo: a fresh instance in {}", dir.display());
    let state = build(&opts).await.map_err(|x| e(&x))?;
    let iso = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|x| e(&x))?;
    let iso_addr = iso.local_addr().map_err(|x| e(&x))?.to_string();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(crate::server::serve(iso, state.payments.clone(), Default::default(), stop_rx.clone()));
    let advices = tokio::spawn(crate::payments::advice::run(state.payments.clone(), stop_rx));
    say!(out, "   ISO 8583 front on {iso_addr}; issuers answer from the in-process simulator\n");

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
    let (hanbit, _) = state.vault.register_card(&wallet, hanbit_pan, "3012").await.map_err(|x| e(&x))?;
    let (nuri, _) = state.vault.register_card(&wallet, nuri_pan, "2911").await.map_err(|x| e(&x))?;
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

    let mut term = Terminal::connect(&iso_addr, "DEMO0001", "DEMOMART0000001").await.map_err(|x| e(&x))?;
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

    say!(out, "\n7. Final state");
    for c in [&hanbit, &nuri] {
        say!(out, "   {} ({}):", c.id, c.issuer_id.as_deref().unwrap_or(""));
        let rows = state.store.transactions(Some(&c.id), 100).await.map_err(|x| e(&x))?;
        for r in rows.iter().rev() {
            say!(
                out,
                "     {:<9} {:>8} KRW  {}  {:<8} {}",
                r.kind,
                r.amount.unwrap_or(0),
                r.response_code.as_deref().unwrap_or("--"),
                r.status,
                r.masked_pan.as_deref().unwrap_or("")
            );
        }
        let pan = if c.id == hanbit.id { hanbit_pan } else { nuri_pan };
        say!(out, "     issuer open-to-buy used: {} KRW", state.simulator.used(pan));
    }
    let _ = stop_tx.send(true);
    let _ = server.await;
    let _ = advices.await;
    state.store.close().await;
    say!(out, "\n== done");
    Ok(())
}
