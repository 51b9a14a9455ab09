//! ISO 8583 unpack + pack of a typical contactless `0200` with DE55 (318 bytes, the pyiso8583-built
//! vector `0200-contactless-arqc-decode`), and BER-TLV parsing of its DE55.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tsp::iso8583::{Message, tlv};

fn message() -> Vec<u8> {
    let doc: serde_json::Value = serde_json::from_str(include_str!("../vectors/iso8583.json")).expect("vector file");
    let case = doc["cases"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["id"] == "0200-contactless-arqc-decode"))
        .expect("the 0200 vector");
    hex::decode(case["in"]["message"].as_str().expect("hex")).expect("hex")
}

fn bench(c: &mut Criterion) {
    let bytes = message();
    let msg = Message::decode(&bytes).unwrap();
    c.bench_function("iso8583_unpack_0200_de55", |b| b.iter(|| black_box(Message::decode(black_box(&bytes)).unwrap())));
    let mut out = Vec::with_capacity(512);
    c.bench_function("iso8583_pack_0200_de55", |b| {
        b.iter(|| {
            out.clear();
            black_box(&msg).encode_into(&mut out).unwrap();
            black_box(out.len())
        })
    });
    c.bench_function("iso8583_unpack_plus_pack_0200_de55", |b| {
        b.iter(|| {
            let m = Message::decode(black_box(&bytes)).unwrap();
            out.clear();
            m.encode_into(&mut out).unwrap();
            black_box(out.len())
        })
    });
    let de55 = msg.icc_data().unwrap();
    c.bench_function("tlv_parse_de55", |b| {
        b.iter(|| {
            let mut n = 0;
            for t in tlv::parse(black_box(&de55)) {
                n += t.unwrap().value().len();
            }
            black_box(n)
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
