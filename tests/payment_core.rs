//! The payment core's guarantees over real TCP, on both stores: no card number in any answer or
//! stored row, a keyed duplicate hash, `30` answers that a pipelining terminal can match, and
//! exactly-once payments across a SIGKILL of the node while payments wait at the issuer.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::TestServer;
use common::iso::Terminal;
use serde_json::json;
use sha2::{Digest, Sha256};
use tsp::iso8583::{Message, Mti};
use tsp::issuer::sim::Simulator;

fn code(m: &Message) -> &str {
    m.response_code().unwrap_or("--")
}

async fn card(s: &TestServer, pan: &str) -> String {
    let (st, ins) =
        s.post(&s.keys.app, "/v1/instruments", json!({ "type": "card", "pan": pan, "expiry": "3012" })).await;
    assert!(st == 201 || st == 200, "{ins}");
    ins["id"].as_str().unwrap().to_string()
}

async fn token(s: &TestServer, instrument: &str) -> String {
    let (st, t) = s.post(&s.keys.app, "/v1/tokens", json!({ "instrument_id": instrument })).await;
    assert_eq!(st, 201, "{t}");
    t["token"].as_str().unwrap().to_string()
}

/// The unkeyed SHA-256 over a request's data elements that earlier versions stored as the
/// duplicate-detection hash: with a masked PAN known, the PAN fell out of it by trying numbers.
fn unkeyed_hash(req: &Message) -> String {
    let mut h = Sha256::new();
    for (de, v) in req.fields() {
        h.update([de]);
        h.update((v.len() as u32).to_be_bytes());
        h.update(v.as_bytes());
    }
    hex::encode(h.finalize())
}

/// `req` with its amount (DE4) made non-numeric: a content error after which DE11 and DE41 are
/// still readable.
fn with_bad_amount(req: &Message) -> Vec<u8> {
    let mut bytes = req.encode().unwrap();
    let amount = req.get(4).unwrap().as_bytes().to_vec();
    let at = common::find(&bytes, &amount).expect("DE4 in the bytes");
    bytes[at + amount.len() - 1] = b'X';
    bytes
}

#[tokio::test]
async fn no_answer_and_no_stored_row_carries_a_card_number() {
    let (s, _sim) = common::with_tcp_issuer(|c| c).await;
    let pan = common::card("411111", 738_291_645, 16);
    let ins = card(&s, &pan).await;
    let mut term = Terminal::connect(&s.iso).await;

    let pay = term.purchase(&token(&s, &ins).await, 20_000);
    assert_eq!(code(&term.call(&pay).await), "00");
    // A cancel and a reversal whose DE2 carries the card's PAN (as a terminal that read the card
    // sends them): the answers do not give it back.
    let mut pay_with_pan = pay.clone();
    pay_with_pan.set_pan(&pan).unwrap();
    let cancel = term.cancel(&pay_with_pan, 5_000).await;
    assert_eq!(code(&cancel), "00");
    assert_ne!(cancel.pan(), Some(pan.as_str()), "the 0210 of a cancel echoes the PAN");
    let reversal = term.reversal_of(&pay_with_pan);
    let answer = term.call(&reversal).await;
    assert_eq!((answer.mti(), code(&answer)), (Mti::REVERSAL_RESPONSE, "00"));
    assert_ne!(answer.pan(), Some(pan.as_str()), "the 0410 echoes the PAN");

    // A malformed request with a PAN: 30, matched by DE11 and DE41, without the PAN.
    let bad = term.purchase(&pan, 1_000);
    term.send_raw(&with_bad_amount(&bad)).await;
    let answer = term.recv().await.expect("a 30");
    assert_eq!(code(&answer), "30");
    assert_eq!((answer.stan(), answer.terminal_id()), (bad.stan(), bad.terminal_id()));
    assert_ne!(answer.pan(), Some(pan.as_str()), "the 30 echoes the PAN");

    // A number outside every BIN: 14, without the number.
    let stranger = common::card("999999", 463_718_295, 16);
    let answer = term.pay(&stranger, 1_000).await;
    assert_eq!(code(&answer), "14");
    assert_ne!(answer.pan(), Some(stranger.as_str()), "the 14 echoes the number");

    // Nothing stored holds either number, and no stored hash is the unkeyed one.
    let db = s.database().await;
    let rows: Vec<(Option<Vec<u8>>, String)> =
        sqlx::query_as("SELECT response, content_hash FROM transactions").fetch_all(&db).await.unwrap();
    assert_eq!(rows.len(), 4, "the payment, cancel, reversal and 14 are stored (a 30 is not)");
    let unkeyed = [unkeyed_hash(&pay_with_pan), unkeyed_hash(&reversal), unkeyed_hash(&bad)];
    for (response, hash) in &rows {
        let response = response.as_deref().unwrap_or_default();
        for number in [&pan, &stranger] {
            assert!(common::find(response, number.as_bytes()).is_none(), "a stored answer holds a card number");
        }
        assert!(!unkeyed.contains(hash), "a stored duplicate hash is the unkeyed SHA-256 of its request");
    }
    db.close().await;
}

#[tokio::test]
async fn lower_case_bitmaps_are_read_and_their_30_can_be_matched() {
    let (s, _sim) = common::with_tcp_issuer(|c| c).await;
    let pan = common::card("411111", 738_291_646, 16);
    let ins = card(&s, &pan).await;
    let mut term = Terminal::connect(&s.iso).await;
    let lower = |bytes: &mut Vec<u8>| {
        for b in &mut bytes[4..20] {
            *b = b.to_ascii_lowercase();
        }
    };
    let good = term.purchase(&token(&s, &ins).await, 1_000);
    let mut bytes = good.encode().unwrap();
    lower(&mut bytes);
    assert!(bytes[4..20].iter().any(u8::is_ascii_lowercase), "the bitmap has letters");
    term.send_raw(&bytes).await;
    let answer = term.recv().await.expect("an answer");
    assert_eq!((code(&answer), answer.stan()), ("00", good.stan()));

    let bad = term.purchase(&token(&s, &ins).await, 1_000);
    let mut bytes = with_bad_amount(&bad);
    lower(&mut bytes);
    term.send_raw(&bytes).await;
    let answer = term.recv().await.expect("a 30");
    assert_eq!(code(&answer), "30");
    assert_eq!((answer.stan(), answer.terminal_id()), (bad.stan(), bad.terminal_id()));
}

/// Polls `f` every 100 ms for up to `secs` seconds until it is true.
async fn eventually(secs: u64, mut f: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Sends `reqs` without waiting and returns once the issuer has received `n` financial requests.
async fn park_at_issuer(term: &mut Terminal, sim: &Simulator, reqs: &[&Message], n: u64) {
    for r in reqs {
        term.send_raw(&r.encode().unwrap()).await;
    }
    let at_issuer = eventually(10, async || sim.stats().received(Mti::FINANCIAL_REQUEST) >= n).await;
    assert!(at_issuer, "the payments did not reach the issuer");
}

#[tokio::test]
async fn a_payment_cut_off_by_a_crash_is_declined_spent_and_owes_its_0420() {
    // An issuer timeout of 1.5 s, and an issuer that holds its answers for a minute.
    let (mut s, sim): (TestServer, Arc<Simulator>) =
        common::with_tcp_issuer(|c| c.replace("timeout_ms = 600", "timeout_ms = 1500")).await;
    let pan = common::card("411111", 738_291_647, 16);
    let ins = card(&s, &pan).await;
    let (tok_a, tok_b) = (token(&s, &ins).await, token(&s, &ins).await);
    sim.set_latency_ms(60_000);
    let mut term = Terminal::connect(&s.iso).await;
    let a = term.purchase(&tok_a, 11_000);
    let b = term.purchase(&tok_b, 12_000);
    park_at_issuer(&mut term, &sim, &[&a, &b], 2).await;

    // The node dies with both payments at the issuer; a new one starts on the same data.
    s.kill();
    sim.set_latency_ms(0);
    let s = s.restart().await;
    let mut term = Terminal::connect(&s.iso).await;
    term.stan = 100;

    // B is reversed by its terminal (it never got an answer): 00, and the issuer is owed a 0420.
    let rev = term.reversal_of(&b);
    let answer = term.call(&rev).await;
    assert_eq!((answer.mti(), code(&answer)), (Mti::REVERSAL_RESPONSE, "00"));

    // A is resolved by the node: declined, its token spent, a 0420 owed to the issuer.
    let db = s.database().await;
    let resolved = eventually(30, async || {
        let pending: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM transactions WHERE status = 'pending'")
            .fetch_one(&db)
            .await
            .unwrap();
        pending == 0
    })
    .await;
    assert!(resolved, "payments left pending after the crash");
    let advised = eventually(30, async || sim.stats().received(Mti::REVERSAL_ADVICE) >= 2).await;
    assert!(
        advised,
        "the issuer got {} 0420s, not one per cut-off payment",
        sim.stats().received(Mti::REVERSAL_ADVICE)
    );
    let rows: Vec<(String, String, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT stan, status, instrument_kind, issuer_id FROM transactions WHERE kind = 'purchase' ORDER BY stan",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    for (stan, status, kind, issuer) in &rows {
        assert_eq!(kind.as_deref(), Some("card"), "payment {stan} does not say it is a card payment");
        assert!(issuer.is_some(), "payment {stan} names no issuer");
        let want = if Some(stan.as_str()) == b.stan() { "reversed" } else { "declined" };
        assert_eq!(status, want, "payment {stan}");
    }
    let owed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM issuer_advices WHERE done_at IS NOT NULL")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(owed, 2, "one 0420 per cut-off payment, each delivered");

    // A's terminal repeats it: the definite answer, not a 96 after a wait.
    let again = term.call(&a).await;
    assert_eq!(again.stan(), a.stan());
    assert!(!matches!(code(&again), "00" | "96"), "a repeat of the cut-off payment got {}", code(&again));
    // Its one-time token does not pay again under a new STAN: the first attempt's fate was unknown.
    assert_eq!(code(&term.pay(&tok_a, 11_000).await), "78", "a token whose first attempt is unknown paid again");
    assert_eq!(sim.used(&pan), 0, "the issuer holds nothing once the 0420s are in");
    db.close().await;
}

#[tokio::test]
async fn rows_of_earlier_versions_are_rekeyed_and_scrubbed_at_start() {
    let (mut s, _sim) = common::with_tcp_issuer(|c| c).await;
    let pan = common::card("411111", 738_291_648, 16);
    let ins = card(&s, &pan).await;
    let mut term = Terminal::connect(&s.iso).await;
    let pay = term.purchase(&token(&s, &ins).await, 3_000);
    let first = term.call(&pay).await;
    assert_eq!(code(&first), "00");
    s.stop();

    // The row as an earlier version stored it: the bare SHA-256 and an answer that echoed DE2.
    let db = s.database().await;
    let (id, response): (String, Vec<u8>) =
        sqlx::query_as("SELECT id, response FROM transactions").fetch_one(&db).await.unwrap();
    let mut old_answer = Message::decode(&response).unwrap();
    old_answer.set_pan(&pan).unwrap();
    sqlx::query("UPDATE transactions SET content_hash = $2, response = $3 WHERE id = $1")
        .bind(&id)
        .bind(unkeyed_hash(&pay))
        .bind(old_answer.encode().unwrap())
        .execute(&db)
        .await
        .unwrap();
    db.close().await;

    let mut s = s.restart().await;
    let db = s.database().await;
    let (hash, response): (String, Vec<u8>) =
        sqlx::query_as("SELECT content_hash, response FROM transactions WHERE id = $1")
            .bind(&id)
            .fetch_one(&db)
            .await
            .unwrap();
    assert_ne!(hash, unkeyed_hash(&pay), "the bare digest is still stored");
    assert!(common::find(&response, pan.as_bytes()).is_none(), "the stored answer still holds the PAN");
    db.close().await;
    // A repeat across the upgrade still matches its first request: the first answer, not 94.
    let mut term = Terminal::connect(&s.iso).await;
    let again = term.call(&pay).await;
    assert_eq!((code(&again), again.authorization_code()), ("00", first.authorization_code()));
    s.stop();
    if !common::on_postgres() {
        for file in common::files_under(&s.data_dir()) {
            let bytes = std::fs::read(&file).unwrap();
            assert!(common::find(&bytes, pan.as_bytes()).is_none(), "{} holds the PAN", file.display());
        }
    }
}
