//! Unit tests of `sim.rs`.

use super::*;

pub(crate) const PAN: &str = "4111111111111111";

/// A next-year expiry, so tests do not age.
pub(crate) fn future_expiry() -> String {
    let (y, _) = clock::year_month(Clock::system().now_ms());
    format!("{:02}12", (y + 1) % 100)
}

pub(crate) fn purchase(stan: &str, amount: u64) -> Message {
    let mut m = Message::new(Mti::FINANCIAL_REQUEST);
    m.set_pan(PAN).unwrap();
    m.set_processing_code("000000").unwrap();
    m.set_amount(amount).unwrap();
    m.set_transmission_date_time("0612143015").unwrap();
    m.set_stan(stan).unwrap();
    m.set_expiry(&future_expiry()).unwrap();
    m.set_acquirer_id("12345").unwrap();
    m.set_rrn("000000000001").unwrap();
    m.set_terminal_id("TERM0001").unwrap();
    m.set_merchant_id("MERCHANT0000001").unwrap();
    m.set_currency_code("410").unwrap();
    m
}

fn referring(mti: Mti, stan: &str, original: &Message) -> Message {
    let mut m = Message::new(mti);
    m.set_pan(original.pan().unwrap()).unwrap();
    m.set_processing_code(if mti == Mti::FINANCIAL_REQUEST { "200000" } else { "000000" }).unwrap();
    m.set_amount(original.amount().unwrap()).unwrap();
    m.set_transmission_date_time("0612143100").unwrap();
    m.set_stan(stan).unwrap();
    m.set_acquirer_id("12345").unwrap();
    m.set_terminal_id(original.terminal_id().unwrap()).unwrap();
    let od = OriginalData::new(
        original.mti(),
        original.stan().unwrap(),
        original.transmission_date_time().unwrap(),
        original.acquirer_id().unwrap(),
    )
    .unwrap();
    m.set_original_data(&od).unwrap();
    m
}

fn reversal(mti: Mti, stan: &str, original: &Message) -> Message {
    referring(mti, stan, original)
}

fn refund(stan: &str, original: &Message, amount: u64) -> Message {
    let mut m = referring(Mti::FINANCIAL_REQUEST, stan, original);
    m.set_amount(amount).unwrap();
    m
}

fn sim() -> Simulator {
    Simulator::new(SimConfig::default())
}

async fn code(sim: &Simulator, req: &Message) -> String {
    sim.handle(req.clone()).await.unwrap().response_code().unwrap().to_string()
}

#[tokio::test]
async fn approval_echoes_fields() {
    let s = sim();
    let req = purchase("000001", 12_500);
    let resp = s.handle(req.clone()).await.unwrap();
    assert_eq!(resp.mti(), Mti::FINANCIAL_RESPONSE);
    assert_eq!(resp.response_code(), Some("00"));
    assert_eq!(resp.authorization_code().map(str::len), Some(6));
    for de in ECHO {
        assert_eq!(resp.get(de), req.get(de), "DE{de}");
    }
    assert!(!resp.contains(14));
    assert_eq!(s.used(PAN), 12_500);
}

#[tokio::test]
async fn limit_then_reversal_restores() {
    let s = sim();
    s.set_limit(PAN, 10_000);
    let p1 = purchase("000001", 8_000);
    assert_eq!(code(&s, &p1).await, "00");
    let p2 = purchase("000002", 3_000);
    let declined = s.handle(p2.clone()).await.unwrap();
    assert_eq!(declined.response_code(), Some("51"));
    assert!(!declined.contains(38));
    assert_eq!(s.used(PAN), 8_000);
    let rev = s.handle(reversal(Mti::REVERSAL_REQUEST, "000003", &p1)).await.unwrap();
    assert_eq!(rev.mti(), Mti::REVERSAL_RESPONSE);
    assert_eq!(rev.response_code(), Some("00"));
    assert_eq!(s.used(PAN), 0);
    assert_eq!(code(&s, &purchase("000004", 10_000)).await, "00");
    let st = s.stats();
    assert_eq!(st.received(Mti::FINANCIAL_REQUEST), 3);
    assert_eq!(st.received(Mti::REVERSAL_REQUEST), 1);
    assert_eq!((st.approved, st.declined), (3, 1));
}

#[tokio::test]
async fn repeats_are_idempotent() {
    let s = sim();
    let p = purchase("000001", 1_000);
    let a = s.handle(p.clone()).await.unwrap();
    let b = s.handle(p.clone()).await.unwrap();
    assert_eq!(a, b);
    assert_eq!(s.used(PAN), 1_000);
    assert_eq!(s.stats().repeats, 1);
    // Same key, different content.
    let mut other = p.clone();
    other.set_amount(2_000).unwrap();
    assert_eq!(code(&s, &other).await, "94");
    assert_eq!(s.used(PAN), 1_000);
    // A declined request repeats as declined.
    s.set_limit(PAN, 1_500);
    let big = purchase("000002", 1_000);
    assert_eq!(code(&s, &big).await, "51");
    s.set_limit(PAN, 1_000_000);
    assert_eq!(code(&s, &big).await, "51");
}

#[tokio::test]
async fn duplicate_reversal_changes_nothing() {
    let s = sim();
    let p = purchase("000001", 4_000);
    assert_eq!(code(&s, &p).await, "00");
    let r1 = reversal(Mti::REVERSAL_ADVICE, "000002", &p);
    assert_eq!(code(&s, &r1).await, "00");
    assert_eq!(code(&s, &r1).await, "00"); // the same advice again
    let r2 = reversal(Mti::REVERSAL_REQUEST, "000003", &p);
    assert_eq!(code(&s, &r2).await, "00"); // another reversal of the same original
    assert_eq!(s.used(PAN), 0);
    assert_eq!(code(&s, &purchase("000004", 1_000)).await, "00");
    assert_eq!(code(&s, &r2).await, "00");
    assert_eq!(s.used(PAN), 1_000);
}

#[tokio::test]
async fn reversal_of_declined_original() {
    let s = sim();
    s.set_limit(PAN, 100);
    let p = purchase("000001", 4_000);
    assert_eq!(code(&s, &p).await, "51");
    assert_eq!(code(&s, &reversal(Mti::REVERSAL_ADVICE, "000002", &p)).await, "00");
    assert_eq!(s.used(PAN), 0);
}

#[tokio::test]
async fn unknown_original_then_late_original() {
    let s = sim();
    let p = purchase("000001", 4_000);
    let r = reversal(Mti::REVERSAL_ADVICE, "000002", &p);
    let resp = s.handle(r).await.unwrap();
    assert_eq!(resp.mti(), Mti::REVERSAL_ADVICE_RESPONSE);
    assert_eq!(resp.response_code(), Some("25"));
    // The original arrives late: nothing must stay taken.
    assert_eq!(code(&s, &p).await, "05");
    assert_eq!(s.used(PAN), 0);
    assert_eq!(code(&s, &reversal(Mti::REVERSAL_ADVICE, "000003", &p)).await, "00");
    assert_eq!(s.used(PAN), 0);
    // A refund of an unknown purchase.
    assert_eq!(code(&s, &refund("000004", &purchase("000099", 10), 10)).await, "25");
}

#[tokio::test]
async fn refunds_bounded_by_original() {
    let s = sim();
    let p = purchase("000001", 10_000);
    assert_eq!(code(&s, &p).await, "00");
    let r1 = refund("000002", &p, 4_000);
    assert_eq!(code(&s, &r1).await, "00");
    assert_eq!(s.used(PAN), 6_000);
    assert_eq!(code(&s, &r1).await, "00"); // repeat: no second effect
    assert_eq!(s.used(PAN), 6_000);
    assert_eq!(code(&s, &refund("000003", &p, 6_001)).await, "64");
    assert_eq!(code(&s, &refund("000004", &p, 0)).await, "13");
    assert_eq!(code(&s, &refund("000005", &p, 6_000)).await, "00");
    assert_eq!(s.used(PAN), 0);
    assert_eq!(code(&s, &refund("000006", &p, 1)).await, "64");
    // Reversing a refund takes the money again, and makes room to refund it again.
    assert_eq!(code(&s, &reversal(Mti::REVERSAL_REQUEST, "000007", &r1)).await, "00");
    assert_eq!(s.used(PAN), 4_000);
    // Reversing the purchase gives back only what is still taken.
    assert_eq!(code(&s, &reversal(Mti::REVERSAL_REQUEST, "000008", &p)).await, "00");
    assert_eq!(s.used(PAN), 0);
    assert_eq!(code(&s, &refund("000009", &p, 1)).await, "64");
}

#[tokio::test]
async fn advice_always_answered() {
    let s = Simulator::new(SimConfig { failure_rate: 1.0, ..SimConfig::default() });
    let p = purchase("000001", 1_000);
    assert!(s.handle(p.clone()).await.is_none()); // answer lost, effect kept
    assert_eq!(s.used(PAN), 1_000);
    let resp = s.handle(reversal(Mti::REVERSAL_ADVICE, "000002", &p)).await.unwrap();
    assert_eq!((resp.mti(), resp.response_code()), (Mti::REVERSAL_ADVICE_RESPONSE, Some("00")));
    assert_eq!(s.used(PAN), 0);
    let mut bad = reversal(Mti::REVERSAL_ADVICE, "000003", &p);
    bad.remove(90);
    assert_eq!(s.handle(bad).await.unwrap().response_code(), Some("30"));
    assert_eq!(s.stats().unanswered, 1);
}

#[tokio::test]
async fn expiry_luhn_amount_and_others() {
    let s = sim();
    let mut p = purchase("000001", 1_000);
    p.set_expiry("2001").unwrap();
    assert_eq!(code(&s, &p).await, "54");
    let mut p = purchase("000002", 1_000);
    p.set_expiry("3013").unwrap();
    assert_eq!(code(&s, &p).await, "54");
    let mut p = purchase("000003", 0);
    assert_eq!(code(&s, &p).await, "13");
    p.set_stan("000004").unwrap();
    p.remove(4);
    assert_eq!(code(&s, &p).await, "13");
    let mut p = purchase("000005", 1_000);
    p.set_pan("4111111111111112").unwrap();
    assert_eq!(code(&s, &p).await, "14");
    let mut p = purchase("000006", 1_000);
    p.set_processing_code("310000").unwrap();
    assert_eq!(code(&s, &p).await, "12");
    assert_eq!(s.used(PAN), 0);

    // 0100 account verification.
    let mut v = Message::new(Mti::AUTHORIZATION_REQUEST);
    v.set_pan(PAN).unwrap().set_processing_code("900000").unwrap().set_expiry(&future_expiry()).unwrap();
    v.set_stan("000007").unwrap().set_terminal_id("TERM0001").unwrap();
    let r = s.handle(v.clone()).await.unwrap();
    assert_eq!((r.mti(), r.response_code()), (Mti::AUTHORIZATION_RESPONSE, Some("00")));
    v.set_expiry("2001").unwrap();
    assert_eq!(code(&s, &v).await, "54");
    v.set_pan("4111111111111112").unwrap();
    assert_eq!(code(&s, &v).await, "14");
    v.set_pan(PAN).unwrap().set_expiry(&future_expiry()).unwrap().set_amount(1).unwrap();
    assert_eq!(code(&s, &v).await, "12");

    // Echo, unknown request MTIs, responses.
    let mut e = Message::new(Mti::NETWORK_REQUEST);
    e.set_transmission_date_time("0612143015").unwrap().set_stan("000008").unwrap();
    e.set_network_management_code("301").unwrap();
    let r = s.handle(e).await.unwrap();
    assert_eq!(
        (r.mti(), r.response_code(), r.network_management_code()),
        (Mti::NETWORK_RESPONSE, Some("00"), Some("301"))
    );
    let mut odd = Message::new("0300".parse().unwrap());
    odd.set_stan("000009").unwrap();
    let r = s.handle(odd).await.unwrap();
    assert_eq!((r.mti().as_str(), r.response_code()), ("0310", Some("12")));
    assert!(s.handle(Message::new(Mti::FINANCIAL_RESPONSE)).await.is_none());
}

#[tokio::test]
async fn offline_and_latency() {
    let s = sim();
    s.set_offline(true);
    let p = purchase("000001", 1_000);
    assert!(s.handle(p.clone()).await.is_none());
    assert_eq!(s.used(PAN), 0);
    s.set_offline(false);
    s.set_latency_ms(30);
    let t = std::time::Instant::now();
    assert_eq!(code(&s, &p).await, "00");
    assert!(t.elapsed() >= Duration::from_millis(30));
    assert_eq!(s.stats().received(Mti::FINANCIAL_REQUEST), 2);
    assert_eq!(s.stats().unanswered, 1);
    assert!(!format!("{s:?}").contains(PAN));
}

#[test]
fn the_oldest_requests_are_forgotten_beyond_the_bound() {
    let key = |i: usize| TxKey {
        mti: Mti::FINANCIAL_REQUEST,
        stan: format!("{i:06}"),
        terminal: "TERM0001".into(),
        sent_at: "0612143015".into(),
        acquirer: "00000012345".into(),
    };
    let mut txns = Txns::default();
    for i in 0..REMEMBERED + 10 {
        txns.insert(key(i), Entry::ReversedBeforeArrival);
    }
    // A key seen again is not counted twice.
    txns.insert(key(REMEMBERED + 9), Entry::ReversedBeforeArrival);
    assert_eq!((txns.by_key.len(), txns.order.len()), (REMEMBERED, REMEMBERED));
    assert!((0..10).all(|i| txns.get(&key(i)).is_none()));
    assert!((10..REMEMBERED + 10).all(|i| txns.get(&key(i)).is_some()));
}
