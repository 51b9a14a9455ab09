//! HSM operations on the payment path, through the in-process simulator as the service calls them:
//! ARQC verification (CVN 18) with the ARPC for tag 91, and HMAC-SHA256.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use hsm_sim::crypto::emv;
use hsm_sim::{Hsm, KeyRef, KeyUsage, Request, Response, SecretBytes};

fn bench(c: &mut Criterion) {
    let hsm = Hsm::ephemeral().unwrap();
    let imk = hex::decode("0123456789ABCDEFFEDCBA9876543210").unwrap();
    hsm.execute(Request::ImportClearKey {
        label: "imk".into(),
        usage: KeyUsage::EmvImkAc,
        key: SecretBytes::from_slice(&imk),
    })
    .unwrap();
    hsm.execute(Request::EnsureKey { label: "fp".into(), usage: KeyUsage::Hmac }).unwrap();
    let pan = "4610001234567893";
    let atc = [0x00, 0x2A];
    // 9F02 9F03 9F1A 95 5F2A 9A 9C 9F37 82 9F36 9F10 of a typical contactless purchase.
    let data = hex::decode("000000015000000000000000041000000000000410261123005A4B3C2D1980002A06011203A00000").unwrap();
    let arqc = emv::cvn18_arqc(&imk, pan, "00", &atc, &data).unwrap();
    let verify = || Request::EmvVerifyArqc {
        imk: KeyRef::stored("imk"),
        pan: pan.into(),
        psn: "00".into(),
        atc: atc.to_vec().into(),
        data: data.clone().into(),
        arqc: arqc.to_vec().into(),
    };
    assert!(matches!(hsm.execute(verify()).unwrap(), Response::Valid { valid: true }));
    c.bench_function("arqc_verify_cvn18", |b| b.iter(|| black_box(hsm.execute(black_box(verify())).unwrap())));
    c.bench_function("arqc_verify_plus_arpc2", |b| {
        b.iter(|| {
            black_box(hsm.execute(verify()).unwrap());
            let req = Request::EmvCvn18Arpc {
                imk: KeyRef::stored("imk"),
                pan: pan.into(),
                psn: "00".into(),
                atc: atc.to_vec().into(),
                arqc: arqc.to_vec().into(),
                csu: vec![0, 0, 0, 0].into(),
                pad: Vec::new().into(),
            };
            black_box(hsm.execute(req).unwrap())
        })
    });
    let pan_bytes = SecretBytes::from_slice(b"4111111111111111");
    c.bench_function("hmac_sha256_pan", |b| {
        b.iter(|| black_box(hsm.execute(Request::Hmac { key: KeyRef::stored("fp"), data: pan_bytes.clone() }).unwrap()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
