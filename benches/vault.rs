//! The vault's hot primitives through the in-process HSM, the way the service calls them:
//! sealing and opening a PAN under a wrapped data key, the keyed fingerprint, token numbers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use hsm_sim::{Hsm, KeyRef, KeyUsage, Request, Response, SecretBytes};
use tsp::tokens::TokenValue;

fn setup() -> (Arc<Hsm>, KeyRef) {
    let hsm = Arc::new(Hsm::ephemeral().unwrap());
    hsm.execute(Request::EnsureKey { label: "kek".into(), usage: KeyUsage::Kek }).unwrap();
    hsm.execute(Request::EnsureKey { label: "fp".into(), usage: KeyUsage::Hmac }).unwrap();
    let dek = match hsm.execute(Request::GenerateDataKey { kek: "kek".into() }).unwrap() {
        Response::WrappedKey { kek, blob } => KeyRef::Wrapped { kek, blob },
        _ => unreachable!(),
    };
    (hsm, dek)
}

fn seal(hsm: &Hsm, dek: &KeyRef, pan: &[u8]) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let req = Request::AeadEncrypt {
        key: dek.clone(),
        iv: None,
        aad: b"tsp/card-pan/ins_x/dek1".as_slice().into(),
        plaintext: SecretBytes::from_slice(pan),
    };
    match hsm.execute(req).unwrap() {
        Response::Sealed { iv, ciphertext, tag } => (iv.0, ciphertext.0, tag.0),
        _ => unreachable!(),
    }
}

fn bench(c: &mut Criterion) {
    let (hsm, dek) = setup();
    let pan = b"4111111111111111";
    c.bench_function("pan_seal", |b| b.iter(|| black_box(seal(&hsm, &dek, black_box(pan)))));
    let (iv, ct, tag) = seal(&hsm, &dek, pan);
    c.bench_function("pan_open", |b| {
        b.iter(|| {
            let req = Request::AeadDecrypt {
                key: dek.clone(),
                iv: iv.clone().into(),
                aad: b"tsp/card-pan/ins_x/dek1".as_slice().into(),
                ciphertext: ct.clone().into(),
                tag: tag.clone().into(),
            };
            black_box(hsm.execute(req).unwrap())
        })
    });
    c.bench_function("pan_fingerprint_hmac", |b| {
        b.iter(|| {
            black_box(
                hsm.execute(Request::Hmac { key: KeyRef::stored("fp"), data: SecretBytes::from_slice(pan) }).unwrap(),
            )
        })
    });
    c.bench_function("pan_seal_plus_fingerprint", |b| {
        b.iter(|| {
            black_box(seal(&hsm, &dek, pan));
            black_box(
                hsm.execute(Request::Hmac { key: KeyRef::stored("fp"), data: SecretBytes::from_slice(pan) }).unwrap(),
            )
        })
    });
    let rng = ring::rand::SystemRandom::new();
    c.bench_function("token_number_generate", |b| {
        b.iter(|| black_box(TokenValue::generate_system("461000", 16, &rng)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
