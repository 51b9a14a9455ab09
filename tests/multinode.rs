//! Several `tsp serve` nodes on one database (PostgreSQL on PostgreSQL runs; the shared SQLite file
//! otherwise), sharing the data directory's key store: races between nodes, and a node killed with
//! SIGKILL under load and restarted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::iso::Terminal;
use common::{TestServer, audit_ledger};
use serde_json::{Value, json};
use tsp::iso8583::Message;

fn code(m: &Message) -> String {
    m.response_code().unwrap_or("--").to_string()
}

async fn token(s: &TestServer, ins: &str) -> String {
    let (st, t) = s.post(&s.keys.app, "/v1/tokens", json!({ "instrument_id": ins })).await;
    assert_eq!(st, 201, "{t}");
    t["token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn two_nodes_one_token_exactly_one_approval_per_round() {
    let a = TestServer::start().await;
    let b = a.another_node().await;
    assert_ne!(a.iso, b.iso);
    // The second node sees what the first registered: one database, one key store.
    let (st, card) = a
        .post(&a.keys.app, "/v1/instruments", json!({ "type": "card", "pan": "4111111111111111", "expiry": "3012" }))
        .await;
    assert_eq!(st, 201, "{card}");
    let ins = card["id"].as_str().unwrap().to_string();
    let (st, seen) = b.get(&b.keys.app, &format!("/v1/instruments/{ins}")).await;
    assert_eq!((st, seen["last4"].as_str()), (200, Some("1111")));

    a.register_terminal("NODEA001", "MERCHANT000001").await;
    a.register_terminal("NODEB001", "MERCHANT000001").await;
    let mut ta = Terminal::connect(&a.iso).await;
    let mut tb = Terminal::connect(&b.iso).await;
    ta.terminal_id = "NODEA001".into();
    tb.terminal_id = "NODEB001".into();
    let (mut wins_a, mut wins_b) = (0, 0);
    for round in 0..200 {
        // Tokens from either node, alternately.
        let tok = token(if round % 2 == 0 { &a } else { &b }, &ins).await;
        let (ra, rb) = (ta.purchase(&tok, 1_000), tb.purchase(&tok, 1_000));
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let (ba, bb) = (barrier.clone(), barrier);
        let ((ta2, ans_a), (tb2, ans_b)) = tokio::join!(
            async move {
                ba.wait().await;
                let ans = ta.call(&ra).await;
                (ta, ans)
            },
            async move {
                bb.wait().await;
                let ans = tb.call(&rb).await;
                (tb, ans)
            }
        );
        (ta, tb) = (ta2, tb2);
        let (ca, cb) = (code(&ans_a), code(&ans_b));
        let approvals = [&ca, &cb].iter().filter(|c| c.as_str() == "00").count();
        assert_eq!(approvals, 1, "round {round}: node A {ca}, node B {cb}");
        assert!(ca == "78" || cb == "78", "round {round}: the loser is told the token is used: {ca} {cb}");
        if ca == "00" {
            wins_a += 1;
        } else {
            wins_b += 1;
        }
    }
    // Both nodes won some rounds: the race was real.
    assert!(wins_a > 0 && wins_b > 0, "node A won {wins_a}, node B {wins_b}");
    let (_, txns) = a.get(&a.keys.app, &format!("/v1/transactions?instrument_id={ins}&limit=1000")).await;
    let approved = txns["items"].as_array().unwrap().iter().filter(|t| t["status"] == "approved").count();
    assert_eq!(approved, 200);
}

/// What a terminal saw for one request.
struct Seen {
    request: Message,
    code: Option<String>,
}

/// One terminal's bounded mixed load: payments with the three kinds of instrument, partial cancels,
/// reversals; on a lost answer it reverses the request through node A, as a terminal does.
async fn terminal_load(
    n: usize,
    a: Arc<TestServer>,
    b_iso: String,
    tokens: Arc<tokio::sync::Mutex<Vec<String>>>,
    progress: Arc<std::sync::atomic::AtomicUsize>,
) -> Vec<Seen> {
    let mut seen = Vec::new();
    let mut on_b = n % 2 == 1;
    let mut term = Terminal::connect(if on_b { &b_iso } else { &a.iso }).await;
    term.terminal_id = format!("LOAD{n:04}");
    term.merchant_id = format!("{:<15}", "GN-CAFE-0001");
    term.stan = 0;
    for i in 0..24 {
        let Some(tok) = tokens.lock().await.pop() else { break };
        let amount = 100 + ((n * 7 + i * 13) % 40) as u64 * 100;
        let pay = term.purchase(&tok, amount);
        let mut answer = term.try_call(&pay).await;
        if answer.is_none() && on_b {
            // Node B died: reverse the unanswered payment through node A, then carry on there.
            on_b = false;
            let stan = term.stan;
            term = Terminal::connect(&a.iso).await;
            term.terminal_id = format!("LOAD{n:04}");
            term.merchant_id = format!("{:<15}", "GN-CAFE-0001");
            term.stan = stan;
            let rev = term.reversal_of(&pay);
            let r = term.try_call(&rev).await;
            seen.push(Seen { request: pay.clone(), code: None });
            seen.push(Seen { request: rev, code: r.as_ref().map(code) });
            answer = None;
        }
        let Some(ans) = answer else { continue };
        progress.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let c = code(&ans);
        seen.push(Seen { request: pay.clone(), code: Some(c.clone()) });
        if c != "00" {
            continue;
        }
        match i % 5 {
            1 => {
                let cancel = {
                    let mut m = term.purchase(pay.pan().unwrap(), amount / 2);
                    m.set_processing_code("200000").unwrap();
                    m.set_original_data(
                        &tsp::iso8583::OriginalData::new(
                            pay.mti(),
                            pay.stan().unwrap(),
                            pay.transmission_date_time().unwrap(),
                            pay.acquirer_id().unwrap(),
                        )
                        .unwrap(),
                    )
                    .unwrap();
                    m
                };
                let r = term.try_call(&cancel).await;
                seen.push(Seen { request: cancel, code: r.as_ref().map(code) });
            }
            3 => {
                let rev = term.reversal_of(&pay);
                let r = term.try_call(&rev).await;
                seen.push(Seen { request: rev, code: r.as_ref().map(code) });
            }
            _ => {}
        }
    }
    seen
}

#[tokio::test]
async fn a_node_killed_under_load_loses_nothing_and_applies_nothing_twice() {
    let a = TestServer::start().await;
    let b = a.another_node().await;
    let app = a.keys.app.clone();
    // A card, a gift certificate and a local-currency wallet; tokens for all of them up front.
    let (_, card) =
        a.post(&app, "/v1/instruments", json!({ "type": "card", "pan": "4111111111111111", "expiry": "3012" })).await;
    let expires = (time::OffsetDateTime::now_utc() + time::Duration::days(365))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (_, g) = a
        .post(
            &a.keys.admin,
            "/v1/admin/gift-certificates",
            json!({ "face_value": "300000", "currency": "KRW", "expires_at": expires }),
        )
        .await;
    let (_, gift) = a.post(&app, "/v1/instruments", json!({ "type": "gift", "code": g["code"] })).await;
    let (_, local) = a.post(&app, "/v1/instruments", json!({ "type": "local", "region": "seoul-gangnam" })).await;
    let local_id = local["id"].as_str().unwrap().to_string();
    let (st, _) = a.post(&app, &format!("/v1/instruments/{local_id}/charge"), json!({ "amount": "300000" })).await;
    assert_eq!(st, 201);
    let mut all = Vec::new();
    for (k, ins) in [&card, &gift, &local].into_iter().enumerate() {
        for _ in 0..60 {
            all.push((k, token(&a, ins["id"].as_str().unwrap()).await));
        }
    }
    // Interleave the kinds.
    all.sort_by_key(|(k, t)| (t.as_bytes()[12], *k));
    let tokens = Arc::new(tokio::sync::Mutex::new(all.into_iter().map(|(_, t)| t).collect::<Vec<_>>()));

    let a = Arc::new(a);
    let progress = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for n in 0..6 {
        a.register_terminal(&format!("LOAD{n:04}"), "GN-CAFE-0001").await;
    }
    a.register_terminal("AFTER001", "GN-CAFE-0001").await;
    for n in 0..6 {
        tasks.push(tokio::spawn(terminal_load(n, a.clone(), b.iso.clone(), tokens.clone(), progress.clone())));
    }
    // Meanwhile a VAN detokenizes on node B, one call after another: every call B answered must be
    // in the audit trail after the kill (a row is durable before its answer goes out).
    let detok_token = token(&a, card["id"].as_str().unwrap()).await;
    let detok_answered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let detok = tokio::spawn({
        let (http, url, van) = (b.http.clone(), b.url("/v1/detokenize"), b.keys.van.clone());
        let (answered, stop) = (detok_answered.clone(), stop.clone());
        async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = http.post(&url).bearer_auth(&van).json(&json!({ "token": detok_token })).send().await;
                match r.map(|r| r.status().as_u16()) {
                    Ok(200) => {
                        answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Ok(other) => panic!("detokenize on node B answered {other}"),
                    Err(_) => {}
                }
            }
        }
    });
    // Midway (a third of the payments answered, and some detokenize calls), node B dies (SIGKILL)
    // and comes back.
    while progress.load(std::sync::atomic::Ordering::Relaxed) < 48
        || detok_answered.load(std::sync::atomic::Ordering::Relaxed) < 5
    {
        assert!(!detok.is_finished(), "the detokenize calls stopped");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut b = b;
    b.kill();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    detok.await.unwrap();

    tokio::time::sleep(Duration::from_millis(500)).await;
    let b = b.restart().await;
    let mut seen = Vec::new();
    for t in tasks {
        seen.extend(t.await.unwrap());
    }
    let lost = seen.iter().filter(|s| s.code.is_none()).count();
    let answered = seen.iter().filter(|s| s.code.is_some()).count();
    assert!(answered > 100, "the load ran: {answered} answers");
    assert!(lost > 0, "the kill hit requests in flight");

    // The restarted node serves.
    let mut tb = Terminal::connect(&b.iso).await;
    tb.terminal_id = "AFTER001".into();
    tb.merchant_id = format!("{:<15}", "GN-CAFE-0001");
    assert_eq!(code(&tb.pay(&token(&b, gift["id"].as_str().unwrap()).await, 100).await), "00");

    // Every answer given is the one stored under the request's key.
    let pool = a.database().await;
    for s in seen.iter().filter(|s| s.code.is_some()) {
        let r = &s.request;
        let class = r.mti().as_str()[..2].to_string();
        let row: Option<(String, Option<String>)> = sqlx::query_as(
            "SELECT status, response_code FROM transactions WHERE msg_class = $1 AND terminal_id = $2 AND stan = $3",
        )
        .bind(&class)
        .bind(r.terminal_id().unwrap())
        .bind(r.stan().unwrap())
        .fetch_optional(&pool)
        .await
        .unwrap();
        let (status, stored) = row.unwrap_or_else(|| panic!("an answered request is not stored"));
        assert_eq!(stored.as_deref(), s.code.as_deref(), "stored answer differs from the one sent");
        if s.code.as_deref() == Some("00") {
            assert!(status == "approved" || status == "reversed", "{status}");
        }
    }
    // Nothing applied twice: one payment entry per payment, at most one reversal entry per original.
    let twice: Vec<(String,)> = sqlx::query_as(
        "SELECT e.transaction_id FROM ledger_entries e WHERE e.transaction_id IS NOT NULL \
         GROUP BY e.transaction_id, e.kind HAVING COUNT(*) > 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(twice.is_empty(), "entries applied twice: {twice:?}");
    let reversed_twice: Vec<(String,)> = sqlx::query_as(
        "SELECT r.original_id FROM transactions r JOIN ledger_entries e ON e.transaction_id = r.id \
         WHERE r.kind = 'reversal' GROUP BY r.original_id HAVING COUNT(*) > 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(reversed_twice.is_empty(), "originals reversed twice: {reversed_twice:?}");
    // Every reversed stored-value payment that moved money and has something left was restored
    // exactly once (one reversed while still undecided, its node killed mid-flight, moved nothing:
    // its movement commits with its outcome); every reversed card payment owes its issuer exactly
    // one 0420.
    let unrestored: Vec<(String,)> = sqlx::query_as(
        "SELECT o.id FROM transactions o WHERE o.kind = 'purchase' AND o.status = 'reversed' \
         AND o.instrument_kind IN ('gift', 'local') AND o.cancelled_amount < o.amount \
         AND EXISTS (SELECT 1 FROM ledger_entries pe WHERE pe.transaction_id = o.id) \
         AND (SELECT COUNT(*) FROM transactions r JOIN ledger_entries e ON e.transaction_id = r.id \
              WHERE r.original_id = o.id AND r.kind = 'reversal') <> 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(unrestored.is_empty(), "reversed payments not restored exactly once: {unrestored:?}");
    let advices: Vec<(String,)> = sqlx::query_as(
        "SELECT o.id FROM transactions o WHERE o.kind = 'purchase' AND o.status = 'reversed' \
         AND o.instrument_kind = 'card' \
         AND (SELECT COUNT(*) FROM issuer_advices a WHERE a.transaction_id = o.id) <> 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(advices.is_empty(), "reversed card payments without exactly one 0420: {advices:?}");
    // Every payment the claim recorded names its instrument kind whatever the kind (a payment whose
    // node died must be recognisable as a card payment to be owed its 0420), and none is left
    // pending once the sweep has had time to resolve the ones cut off by the kill. (A reversal cut
    // off took no effect and stays pending for its repeat, which carries it out: `Payments::claim`.)
    let unkinded: Vec<(String,)> = sqlx::query_as(
        "SELECT id FROM transactions WHERE kind IN ('purchase', 'cancel') AND token_id IS NOT NULL \
         AND instrument_kind IS NULL",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(unkinded.is_empty(), "payments without their instrument kind: {unkinded:?}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let pending: Vec<(String, String, Option<String>)> = sqlx::query_as(
            "SELECT id, kind, instrument_kind FROM transactions WHERE status = 'pending' AND kind <> 'reversal'",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        if pending.is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still pending after 30 s: {pending:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A card payment resolved after the kill (declined 91 without its issuer's answer) owes its
    // issuer exactly one 0420, as a reversed one does.
    let unresolved: Vec<(String,)> = sqlx::query_as(
        "SELECT o.id FROM transactions o WHERE o.kind = 'purchase' AND o.instrument_kind = 'card' \
         AND o.status = 'declined' AND o.response_code = '91' AND o.issuer_response IS NULL \
         AND o.issuer_id IS NOT NULL \
         AND (SELECT COUNT(*) FROM issuer_advices a WHERE a.transaction_id = o.id) <> 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(unresolved.is_empty(), "card payments cut off by the kill without exactly one 0420: {unresolved:?}");
    // The gift certificate holds its face value less what stands approved.
    let (held,): (i64,) = sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(amount - cancelled_amount), 0) AS BIGINT) FROM transactions \
         WHERE kind = 'purchase' AND status = 'approved' AND instrument_kind = 'gift'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let (_, bal): (u16, Value) =
        a.get(&app, &format!("/v1/instruments/{}/balance", gift["id"].as_str().unwrap())).await;
    assert_eq!(bal["principal"].as_str().unwrap().parse::<i64>().unwrap(), 300_000 - held);
    audit_ledger(&a).await;

    // Every detokenize node B answered before it died is recorded, and the trail (B's chain cut off
    // by the kill, its new chain after the restart, node A's) verifies.
    let answered = detok_answered.load(std::sync::atomic::Ordering::Relaxed) as i64;
    assert!(answered > 0, "node B answered no detokenize before the kill");
    let (recorded,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM audit_log WHERE action = 'detokenize' AND outcome = 'ok'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(recorded >= answered, "{answered} detokenize calls answered, {recorded} recorded");
    let mut verify = std::process::Command::new(common::tsp_bin());
    verify.args(["audit", "verify"]).args(a.storage_args()).env("RUST_LOG", "warn");
    let out = tokio::task::spawn_blocking(move || verify.output()).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success() && text.starts_with("audit trail intact: "), "{text}");
}
