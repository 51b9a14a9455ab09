//! A full payment in process, without network: the ISO 8583 `0200` goes through the same handler the
//! TCP front calls (duplicate claim, token checks, lease, detokenize, issuer simulator, approval with
//! the token's consumption committed durably to SQLite with `synchronous=FULL`). The one-time token is
//! issued outside the timed part. One payment at a time: this measures latency, not throughput (group
//! commit across concurrent payments is what `tsp load` measures).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

use std::hint::black_box;
use std::sync::atomic::{AtomicU32, Ordering};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use tsp::app::{ServeOptions, build};
use tsp::iso8583::{Message, Mti};
use tsp::payments::Answer;
use tsp::requestors::{self, Scope};
use tsp::tokens::TokenOptions;

fn purchase(token: &str, stan: u32, merchant: &str) -> Message {
    let mut m = Message::new(Mti::FINANCIAL_REQUEST);
    let stan = format!("{:06}", stan % 1_000_000);
    m.set_pan(token).unwrap();
    m.set_processing_code("000000").unwrap();
    m.set_amount(100).unwrap();
    m.set_transmission_date_time("1123103000").unwrap();
    m.set_stan(&stan).unwrap();
    m.set_local_time("193000").unwrap();
    m.set_local_date("1123").unwrap();
    m.set_pos_entry_mode("031").unwrap();
    m.set_pos_condition_code("00").unwrap();
    m.set_acquirer_id("12345").unwrap();
    m.set_rrn(&format!("{stan:0>12}")).unwrap();
    m.set_terminal_id("BENCH001").unwrap();
    m.set_merchant_id(&format!("{merchant:<15}")).unwrap();
    m.set_currency_code("410").unwrap();
    m
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let opts = ServeOptions {
        data_dir: dir.path().join("data"),
        config: None,
        database_url: None,
        http_addr: "127.0.0.1:0".parse().unwrap(),
        iso_addr: "127.0.0.1:0".parse().unwrap(),
        hsm: None,
        seal: Default::default(),
    };
    let (state, wallet, card, gift) = rt.block_on(async {
        let state = build(&opts).await.unwrap();
        let now = state.clock.now_ms();
        let wallet =
            requestors::create(&state.store, "401", "bench", &[Scope::Instruments, Scope::Tokens], now).await.unwrap();
        let (card, _) = state.vault.register_card(&wallet.requestor, "4111111111111111", "3012").await.unwrap();
        let g = tsp::stored_value::gift::issue(&state.store, &state.config, "900000000", "KRW", now + 86_400_000, now)
            .await
            .unwrap();
        let (gift, _) = tsp::stored_value::gift::register(&state.store, &wallet.requestor, &g.code, now).await.unwrap();
        // Only registered terminals may pay.
        let spec = tsp::config::TerminalSpec { id: "BENCH001".into(), merchant_id: "BENCH-SHOP".into(), van: None };
        state.terminals.register(&spec, now).await.unwrap();
        (state, wallet.requestor, card.id, gift.id)
    });
    let stan = AtomicU32::new(0);
    let mut group = c.benchmark_group("payment");
    group.sample_size(30);
    for (name, instrument) in [("card_in_process", &card), ("gift_in_process", &gift)] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let t = rt.block_on(state.tokens.issue(&wallet, instrument, &TokenOptions::default())).unwrap();
                    purchase(&t.row.token, stan.fetch_add(1, Ordering::Relaxed) + 1, "BENCH-SHOP")
                },
                |req| {
                    let answer = rt.block_on(state.payments.handle(req, None));
                    match answer {
                        Answer::Send(bytes) => {
                            let m = Message::decode(&bytes).unwrap();
                            assert_eq!(m.response_code(), Some("00"));
                            black_box(m);
                        }
                        Answer::Nothing => panic!("no answer"),
                    }
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
