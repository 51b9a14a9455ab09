//! Token issuance and consumption against the store, in process (so the clock can move).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

mod common;

use std::sync::Arc;

use tsp::app::{ServeOptions, build};
use tsp::money::Amount;
use tsp::requestors::{self, Requestor, Scope};
use tsp::store::{Claim, ClaimHold, Consume, InsertCard, InsertToken, Store, StoreError, TxnRow};
use tsp::tokens::TokenOptions;

async fn setup() -> (tempfile::TempDir, tsp::api::AppState, Requestor, Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let database_url = common::fresh_database().await;
    let opts = ServeOptions {
        data_dir: dir.path().join("data"),
        config: None,
        database_url: database_url.clone(),
        http_addr: "127.0.0.1:0".parse().unwrap(),
        iso_addr: "127.0.0.1:0".parse().unwrap(),
        hsm: None,
        seal: Default::default(),
    };
    let state = build(&opts).await.unwrap();
    let created = requestors::create(
        &state.store,
        "401",
        "test wallet",
        &[Scope::Instruments, Scope::Tokens],
        state.clock.now_ms(),
    )
    .await
    .unwrap();
    (dir, state, created.requestor, database_url)
}

#[tokio::test]
async fn sixty_four_tasks_race_one_token_and_exactly_one_wins() {
    let (dir, state, req, url) = setup().await;
    let (card, _) = state.vault.register_card(&req, "4111111111111111", "2912").await.unwrap();
    let db = dir.path().join("data").join("tsp.db");
    let db_url = url.unwrap_or_else(|| format!("sqlite://{}", db.display()));
    // Four independent connections to the same database file, so the race is decided by the
    // database's own locking, not by one process-wide pool.
    let mut stores = vec![state.store.clone()];
    for _ in 0..3 {
        stores.push(Store::open_url(&db_url).await.unwrap());
    }
    for round in 0..5 {
        let issued = state.tokens.issue(&req, &card.id, &TokenOptions::default()).await.unwrap();
        let number = Arc::new(issued.row.token.clone());
        let barrier = Arc::new(tokio::sync::Barrier::new(64));
        let now = state.clock.now_ms();
        let mut tasks = Vec::new();
        for i in 0..64 {
            let (store, number, barrier) = (stores[i % stores.len()].clone(), number.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                matches!(store.consume_token(&number, now).await.unwrap(), Consume::Consumed(_))
            }));
        }
        let mut wins = 0;
        for t in tasks {
            wins += usize::from(t.await.unwrap());
        }
        assert_eq!(wins, 1, "round {round}: {wins} winners");
        let row = state.store.token(&issued.row.id).await.unwrap().unwrap();
        assert_eq!(row.state, "consumed");
    }
}

#[tokio::test]
async fn ttl_expiry_and_consumption_rules() {
    let (_dir, state, req, _) = setup().await;
    let (card, _) = state.vault.register_card(&req, "5555555555554444", "2912").await.unwrap();
    let opts = TokenOptions { ttl_seconds: Some(60), ..Default::default() };
    let t = state.tokens.issue(&req, &card.id, &opts).await.unwrap();
    assert!(t.row.token.starts_with("522000"));
    assert_eq!(t.row.expires_at - t.row.created_at, 60_000);

    // A VAN detokenizes the tokens of the requestors it serves, and to any other VAN the token is
    // unknown.
    let now = state.clock.now_ms();
    let van = requestors::create(&state.store, "401", "van", &[Scope::Detokenize], now).await.unwrap().requestor;
    let stranger =
        requestors::create(&state.store, "401", "other van", &[Scope::Detokenize], now).await.unwrap().requestor;
    state.store.serve_requestors(&van.id, std::slice::from_ref(&req.id), now).await.unwrap();
    assert!(matches!(state.tokens.detokenize(&stranger, &t.row.token).await, Err(tsp::Error::TokenUnknown)));

    // Reads do not consume; the first consume does; the second is refused as used.
    let (pan, expiry) = state.tokens.detokenize(&van, &t.row.token).await.unwrap();
    assert_eq!((pan.expose(), expiry.as_str()), ("5555555555554444", "2912"));
    state.tokens.consume(&t.row.token).await.unwrap();
    assert!(matches!(state.tokens.consume(&t.row.token).await, Err(tsp::Error::TokenUsed)));
    assert!(matches!(state.tokens.detokenize(&van, &t.row.token).await, Err(tsp::Error::TokenUsed)));

    // Past its TTL a token is expired for every use.
    let t2 = state.tokens.issue(&req, &card.id, &opts).await.unwrap();
    state.clock.advance(61_000);
    assert!(matches!(state.tokens.detokenize(&van, &t2.row.token).await, Err(tsp::Error::TokenExpired)));
    assert!(matches!(state.tokens.consume(&t2.row.token).await, Err(tsp::Error::TokenExpired)));
    assert!(matches!(state.tokens.consume("4610000000000009").await, Err(tsp::Error::TokenUnknown)));
}

#[tokio::test]
async fn a_token_number_is_unique_among_live_tokens_and_never_a_registered_pan() {
    let (_dir, state, req, _) = setup().await;
    let (card, _) = state.vault.register_card(&req, "4111111111111111", "2912").await.unwrap();
    let t = state
        .tokens
        .issue(&req, &card.id, &TokenOptions { ttl_seconds: Some(30), ..Default::default() })
        .await
        .unwrap();

    // Same number again while the first is live: refused by the database.
    let mut dup = t.row.clone();
    dup.id = "tok_dup".into();
    let fp = state.vault.fingerprint(1, &dup.token).await.unwrap();
    assert_eq!(state.store.insert_token(&dup, [&fp, &fp]).await.unwrap(), InsertToken::NumberTaken);

    // Once the first is past its TTL the number may be drawn again.
    state.clock.advance(31_000);
    assert!(state.store.expire_token_number(&dup.token, state.clock.now_ms()).await.unwrap());
    assert_eq!(state.store.insert_token(&dup, [&fp, &fp]).await.unwrap(), InsertToken::Inserted);
    // The number now names two tokens: a lookup finds the live one.
    let (found, _) = state.store.token_with_instrument(&dup.token).await.unwrap().unwrap();
    assert_eq!((found.id.as_str(), found.state.as_str()), ("tok_dup", "active"));
    // Dead tokens never collide with each other: a third one with the number is live beside two
    // dead ones, and once it is dead too, the newest of the three is the one found.
    state.clock.advance(31_000);
    assert!(state.store.expire_token_number(&dup.token, state.clock.now_ms()).await.unwrap());
    let mut third = dup.clone();
    third.id = "tok_third".into();
    third.created_at = state.clock.now_ms();
    third.expires_at = third.created_at + 30_000;
    assert_eq!(state.store.insert_token(&third, [&fp, &fp]).await.unwrap(), InsertToken::Inserted);
    state.clock.advance(31_000);
    assert!(state.store.expire_token_number(&dup.token, state.clock.now_ms()).await.unwrap());
    let (found, _) = state.store.token_with_instrument(&dup.token).await.unwrap().unwrap();
    assert_eq!((found.id.as_str(), found.state.as_str()), ("tok_third", "expired"));

    // A number equal to a registered PAN is refused, whoever registered it.
    let mut as_pan = t.row.clone();
    as_pan.id = "tok_pan".into();
    as_pan.token = "4111111111111111".into();
    let pan_fp = state.vault.fingerprint(1, "4111111111111111").await.unwrap();
    assert_eq!(state.store.insert_token(&as_pan, [&pan_fp, &pan_fp]).await.unwrap(), InsertToken::NumberIsPan);
    // While a rotation is under way the card may still be under the older fingerprint key: either
    // of the two fingerprints finds it.
    let other = "0".repeat(64);
    assert_eq!(state.store.insert_token(&as_pan, [&other, &pan_fp]).await.unwrap(), InsertToken::NumberIsPan);

    // A suspended instrument gets no token, and its live tokens are revoked in the same step.
    let live = state.tokens.issue(&req, &card.id, &TokenOptions::default()).await.unwrap();
    state.vault.suspend(&req, &card.id).await.unwrap();
    let mut late = live.row.clone();
    late.id = "tok_late".into();
    late.token = "4610001234567891".into();
    let late_fp = state.vault.fingerprint(1, &late.token).await.unwrap();
    assert_eq!(state.store.insert_token(&late, [&late_fp, &late_fp]).await.unwrap(), InsertToken::InstrumentNotActive);
    assert_eq!(state.store.token(&live.row.id).await.unwrap().unwrap().state, "revoked");
}

/// Amounts come back at the scale of the row's own currency (DE49 `840` in cents, `410` in won, none
/// in the platform's, one nobody configured as its bare count), and a store not given the currencies
/// refuses to read money rather than guess a scale.
#[tokio::test]
async fn stored_amounts_read_back_at_their_rows_currency() {
    let (dir, state, _, url) = setup().await;
    let cur = |c: &str| state.config.currency(c).unwrap().clone();
    let (usd, krw) = (cur("USD"), cur("KRW"));
    let cases = [
        ("000001", Some("840"), Amount::from_minor(1_250, &usd), "12.50"),
        ("000002", Some("410"), Amount::from_minor(11_000, &krw), "11000"),
        ("000003", None, Amount::from_minor(11_000, &krw), "11000"),
        ("000004", Some("999"), Amount::from_de4(1_234, None), "1234"),
    ];
    for (stan, de49, amount, shown) in cases {
        let row = TxnRow {
            id: format!("txn_amount_{stan}"),
            mti: "0200".into(),
            msg_class: "02".into(),
            terminal_id: "TERM0001".into(),
            stan: stan.into(),
            transmitted: "1123103000".into(),
            acquirer_id: "00000012345".into(),
            amount: Some(amount),
            principal: Some(amount),
            currency: de49.map(Into::into),
            created_at: 1,
            updated_at: 1,
            ..Default::default()
        };
        assert!(matches!(state.store.claim_transaction(&row).await.unwrap(), Claim::New));
        let back = state.store.transaction(&row.id).await.unwrap().unwrap();
        assert_eq!(back.amount.map(|a| a.to_string()).as_deref(), Some(shown), "DE49 {de49:?}");
        assert_eq!((back.amount, back.principal), (Some(amount), Some(amount)));
        assert_eq!(back.amount.unwrap().scale(), amount.scale(), "DE49 {de49:?}");
        assert!(back.cancelled_amount.is_zero() && back.cancelled_amount.scale() == amount.scale());
        assert_eq!(back.amount.unwrap().stored_minor(), amount.stored_minor());
    }
    let db = dir.path().join("data").join("tsp.db");
    let bare = Store::open_url(&url.unwrap_or_else(|| format!("sqlite://{}", db.display()))).await.unwrap();
    assert!(matches!(bare.transaction("txn_amount_000001").await, Err(StoreError::Corrupt(_))));
}

/// A card payment's approval writes its outcome over the row its claim wrote, and only over that
/// row: one whose instrument or original key disagree with the claim's is not approved, and its
/// token is not consumed.
#[tokio::test]
async fn an_approval_requires_the_instrument_its_claim_wrote() {
    let (_dir, state, req, _) = setup().await;
    let (card, _) = state.vault.register_card(&req, "4111111111111111", "2912").await.unwrap();
    let t = state.tokens.issue(&req, &card.id, &TokenOptions::default()).await.unwrap();
    let now = state.clock.now_ms();
    let row = TxnRow {
        id: "txn_approve".into(),
        kind: "purchase".parse().unwrap(),
        status: "pending".parse().unwrap(),
        mti: "0200".into(),
        msg_class: "02".into(),
        terminal_id: "TERM0001".into(),
        stan: "000001".into(),
        transmitted: "1123103000".into(),
        acquirer_id: "00000012345".into(),
        token_id: Some(t.row.id.clone()),
        instrument_id: Some(card.id.clone()),
        created_at: now,
        updated_at: now,
        ..Default::default()
    };
    let held = state.store.claim_holding(&row, "02TERM0001000001", &t.row.id, now).await.unwrap();
    assert!(matches!(held, ClaimHold::Held));
    let mut outcome = row.clone();
    outcome.status = "approved".parse().unwrap();
    outcome.response_code = Some("00".into());
    for (instrument, original_key) in [(Some("ins_other"), None), (Some(card.id.as_str()), Some("02TERM0001000000"))] {
        let mut other = outcome.clone();
        other.instrument_id = instrument.map(Into::into);
        other.original_key = original_key.map(Into::into);
        assert!(!state.store.approve_with_token(&other, &t.row.id, &row.id, now).await.unwrap());
        assert_eq!(state.store.transaction(&row.id).await.unwrap().unwrap().status.as_str(), "pending");
        assert_eq!(state.store.token(&t.row.id).await.unwrap().unwrap().state, "active");
    }
    assert!(state.store.approve_with_token(&outcome, &t.row.id, &row.id, now).await.unwrap());
    let stored = state.store.transaction(&row.id).await.unwrap().unwrap();
    assert_eq!((stored.status.as_str(), stored.instrument_id.as_deref()), ("approved", Some(card.id.as_str())));
    assert_eq!(state.store.token(&t.row.id).await.unwrap().unwrap().state, "consumed");
}

/// A card's insert writes a new card; meets the requestor's own card with the same fingerprint
/// (answering with that one, not writing); and refuses a card sealed under a data key that is no
/// longer the newest.
#[tokio::test]
async fn a_card_insert_meets_a_duplicate_or_a_stale_key() {
    let (_dir, state, req, _) = setup().await;
    let (first, _) = state.vault.register_card(&req, "4111111111111111", "2912").await.unwrap();
    let mut again = first.clone();
    again.id = "ins_again".into();
    match state.store.insert_card(&again, None).await.unwrap() {
        InsertCard::Duplicate(existing) => assert_eq!(existing.id, first.id),
        other => panic!("not a duplicate: {other:?}"),
    }
    assert!(state.store.instrument("ins_again").await.unwrap().is_none());

    let mut other = first.clone();
    other.id = "ins_other".into();
    other.fingerprint = Some("f".repeat(64));
    other.dek_version = Some(first.dek_version.unwrap() - 1);
    assert!(matches!(state.store.insert_card(&other, None).await.unwrap(), InsertCard::StaleKey));
    assert!(state.store.instrument("ins_other").await.unwrap().is_none());

    other.dek_version = first.dek_version;
    assert!(matches!(state.store.insert_card(&other, None).await.unwrap(), InsertCard::Inserted));
    let stored = state.store.instrument("ins_other").await.unwrap().unwrap();
    assert_eq!((stored.requestor_id, stored.fingerprint), (first.requestor_id, other.fingerprint));
}
