//! Key blocks, usage and mode enforcement, and the rule that no clear key leaves the HSM unless it
//! was made for export.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

use hsm_sim::{ErrorKind, Hsm, KeyRef, KeyUsage, Request, Response, SecretBytes};

fn hsm() -> Hsm {
    Hsm::ephemeral().unwrap()
}

fn generate(h: &Hsm, label: &str, usage: KeyUsage, mode: Option<&str>, exportable: bool) {
    let req =
        Request::GenerateKey { label: label.into(), usage, algorithm: None, mode: mode.map(Into::into), exportable };
    assert!(matches!(h.execute(req).unwrap(), Response::Key { .. }));
}

fn kind(r: Result<Response, hsm_sim::HsmError>) -> ErrorKind {
    match r {
        Err(e) => e.kind,
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}

fn export(h: &Hsm, label: &str, kbpk: &str) -> String {
    match h.execute(Request::ExportKeyBlock { key: KeyRef::stored(label), kbpk: KeyRef::stored(kbpk) }).unwrap() {
        Response::KeyBlock { block } => block,
        r => panic!("{r:?}"),
    }
}

#[test]
fn exported_key_block_imports_with_its_usage_and_refuses_other_uses() {
    let h = hsm();
    generate(&h, "kbpk", KeyUsage::Kbpk, None, false);
    generate(&h, "pin-key", KeyUsage::PinEncryption, None, true);
    let block = export(&h, "pin-key", "kbpk");
    assert!(block.starts_with('D'), "{block}");
    assert_eq!(&block[5..7], "P0");

    let imported = match h
        .execute(Request::ImportKeyBlock {
            label: "pin-copy".into(),
            kbpk: KeyRef::stored("kbpk"),
            block: block.clone(),
        })
        .unwrap()
    {
        Response::Key { key } => key,
        r => panic!("{r:?}"),
    };
    assert_eq!(imported.usage, KeyUsage::PinEncryption);
    assert_eq!(imported.mode, "B");
    let original = match h.execute(Request::KeyInfo { label: "pin-key".into() }).unwrap() {
        Response::Keys { keys } => keys[0].clone(),
        r => panic!("{r:?}"),
    };
    assert_eq!(imported.kcv, original.kcv, "the imported key is the exported key");

    // Used for its purpose it works; for any other it is refused with `key`.
    let pin = SecretBytes::from_slice(b"1234");
    let enc = Request::PinEncipher { key: KeyRef::stored("pin-copy"), format: 0, pin, pan: "4111111111111111".into() };
    assert!(matches!(h.execute(enc).unwrap(), Response::PinBlock { .. }));
    let cvv = Request::CvvGenerate {
        cvk: KeyRef::stored("pin-copy"),
        pan: "4111111111111111".into(),
        expiry: "2912".into(),
        service_code: "101".into(),
    };
    assert_eq!(kind(h.execute(cvv)), ErrorKind::Key);
    let mac = Request::Hmac { key: KeyRef::stored("pin-copy"), data: SecretBytes::from_slice(b"x") };
    assert_eq!(kind(h.execute(mac)), ErrorKind::Key);
    let ac = Request::EmvVerifyArqc {
        imk: KeyRef::stored("pin-copy"),
        pan: "4111111111111111".into(),
        psn: "00".into(),
        atc: vec![0, 1].into(),
        data: vec![0; 34].into(),
        arqc: vec![0; 8].into(),
    };
    assert_eq!(kind(h.execute(ac)), ErrorKind::Key);
    // A KBPK is not a KEK, and the reverse.
    let wrap = Request::WrapKey { kek: KeyRef::stored("kbpk"), key: SecretBytes::from_slice(&[7; 16]) };
    assert_eq!(kind(h.execute(wrap)), ErrorKind::Key);
}

#[test]
fn a_key_block_with_one_flipped_bit_is_refused() {
    let h = hsm();
    generate(&h, "kbpk", KeyUsage::Kbpk, None, false);
    generate(&h, "cvk", KeyUsage::Cvk, None, true);
    let block = export(&h, "cvk", "kbpk");
    let mut refused = 0;
    for pos in 0..block.len() {
        let mut bytes = block.clone().into_bytes();
        bytes[pos] ^= 0x01;
        let Ok(tampered) = String::from_utf8(bytes) else { continue };
        let r = h.execute(Request::ImportKeyBlock {
            label: format!("t{pos}"),
            kbpk: KeyRef::stored("kbpk"),
            block: tampered,
        });
        let k = kind(r);
        // A flip that keeps the text well-formed must fail the MAC; one that breaks the syntax
        // (a length digit, a non-hex character) is a format error.
        assert!(matches!(k, ErrorKind::Auth | ErrorKind::Format), "position {pos}: {k:?}");
        refused += 1;
    }
    assert_eq!(refused, block.len());
    // The key data and MAC are hex after the 16-character header: flipping bit 0 of '0'..'9' keeps hex.
    let mut bytes = block.clone().into_bytes();
    let pos = bytes.iter().rposition(|b| b.is_ascii_digit()).unwrap();
    bytes[pos] ^= 0x01;
    let r = h.execute(Request::ImportKeyBlock {
        label: "x".into(),
        kbpk: KeyRef::stored("kbpk"),
        block: String::from_utf8(bytes).unwrap(),
    });
    assert_eq!(kind(r), ErrorKind::Auth);
    // The wrong KBPK fails the MAC too.
    generate(&h, "other-kbpk", KeyUsage::Kbpk, None, false);
    let r = h.execute(Request::ImportKeyBlock { label: "y".into(), kbpk: KeyRef::stored("other-kbpk"), block });
    assert_eq!(kind(r), ErrorKind::Auth);
}

#[test]
fn mode_of_use_is_enforced() {
    let h = hsm();
    generate(&h, "verify-only", KeyUsage::Cvk, Some("V"), false);
    let generate_req = Request::CvvGenerate {
        cvk: KeyRef::stored("verify-only"),
        pan: "4111111111111111".into(),
        expiry: "2912".into(),
        service_code: "101".into(),
    };
    assert_eq!(kind(h.execute(generate_req)), ErrorKind::Key);
    let ver = Request::CvvVerify {
        cvk: KeyRef::stored("verify-only"),
        pan: "4111111111111111".into(),
        expiry: "2912".into(),
        service_code: "101".into(),
        cvv: SecretBytes::from_slice(b"123"),
    };
    assert!(matches!(h.execute(ver).unwrap(), Response::Valid { .. }));
    generate(&h, "enc-only", KeyUsage::PinEncryption, Some("E"), false);
    let enc = Request::PinEncipher {
        key: KeyRef::stored("enc-only"),
        format: 3,
        pin: SecretBytes::from_slice(b"0000"),
        pan: "4111111111111111".into(),
    };
    let block = match h.execute(enc).unwrap() {
        Response::PinBlock { block } => block,
        r => panic!("{r:?}"),
    };
    let tr = Request::PinTranslate {
        block,
        from_key: KeyRef::stored("enc-only"),
        from_format: 3,
        to_key: KeyRef::stored("enc-only"),
        to_format: 0,
        pan: "4111111111111111".into(),
    };
    assert_eq!(kind(h.execute(tr)), ErrorKind::Key, "an encrypt-only key cannot decrypt a PIN block");
}

#[test]
fn no_operation_returns_a_stored_key_not_made_for_export() {
    let h = hsm();
    generate(&h, "kek", KeyUsage::Kek, None, false);
    generate(&h, "kbpk", KeyUsage::Kbpk, None, false);
    generate(&h, "pin", KeyUsage::PinEncryption, None, false);
    generate(&h, "bdk", KeyUsage::Bdk, None, false);
    generate(&h, "imk", KeyUsage::EmvImkAc, None, false);
    generate(&h, "secret-cvk", KeyUsage::Cvk, None, false);
    let pan = || "4111111111111111".to_string();
    let wrapped = match h
        .execute(Request::WrapKey { kek: KeyRef::stored("kek"), key: SecretBytes::from_slice(&[9; 16]) })
        .unwrap()
    {
        Response::Wrapped { wrapped } => wrapped,
        r => panic!("{r:?}"),
    };
    let pin_block = match h
        .execute(Request::PinEncipher {
            key: KeyRef::stored("pin"),
            format: 0,
            pin: SecretBytes::from_slice(b"1234"),
            pan: pan(),
        })
        .unwrap()
    {
        Response::PinBlock { block } => block,
        r => panic!("{r:?}"),
    };
    let attempts = vec![
        Request::ExportKeyBlock { key: KeyRef::stored("secret-cvk"), kbpk: KeyRef::stored("kbpk") },
        Request::UnwrapKey { kek: KeyRef::stored("kek"), wrapped },
        Request::PinDecipher { key: KeyRef::stored("pin"), format: 0, block: pin_block, pan: pan() },
        Request::DukptTdesIpek {
            bdk: KeyRef::stored("bdk"),
            ksn: vec![0xFF, 0xFF, 0x98, 0x76, 0x54, 0x32, 0x10, 0xE0, 0, 1].into(),
        },
        Request::DukptTdesKey {
            bdk: KeyRef::stored("bdk"),
            ksn: vec![0xFF, 0xFF, 0x98, 0x76, 0x54, 0x32, 0x10, 0xE0, 0, 1].into(),
        },
        Request::EmvSessionKey { icc_mk: KeyRef::stored("imk"), r: vec![0; 8].into() },
    ];
    for req in attempts {
        let what = format!("{req:?}");
        assert_eq!(kind(h.execute(req)), ErrorKind::Key, "{what}");
    }
    // A Tr31Unwrap under a stored KBPK never yields the clear key, even of an exportable key.
    generate(&h, "exportable", KeyUsage::Cvk, None, true);
    let block = export(&h, "exportable", "kbpk");
    assert_eq!(kind(h.execute(Request::Tr31Unwrap { kbpk: KeyRef::stored("kbpk"), block })), ErrorKind::Key);
    // The ICC master key is derived for export (personalisation) by design.
    let icc = Request::DeriveIccMk { imk: KeyRef::stored("imk"), pan: pan(), psn: "00".into(), method: "A".into() };
    assert!(matches!(h.execute(icc).unwrap(), Response::Derived { .. }));
}

#[test]
fn key_store_file_keeps_keys_and_detects_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ks.json");
    let (h, created) = Hsm::open(&path).unwrap();
    assert!(created);
    generate(&h, "fp", KeyUsage::Hmac, None, false);
    generate(&h, "fp", KeyUsage::Hmac, None, false);
    let mac = |h: &Hsm, v: u32| match h
        .execute(Request::Hmac { key: KeyRef::stored_version("fp", v), data: SecretBytes::from_slice(b"pan") })
        .unwrap()
    {
        Response::Mac { mac } => mac.0,
        r => panic!("{r:?}"),
    };
    let (m1, m2) = (mac(&h, 1), mac(&h, 2));
    assert_ne!(m1, m2, "versions are different keys");
    drop(h);
    let (h, created) = Hsm::open(&path).unwrap();
    assert!(!created);
    assert_eq!((mac(&h, 1), mac(&h, 2)), (m1, m2), "reopened store has the same keys");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    // Corrupt one stored key's wrapped material: opening fails with an integrity error.
    let text = std::fs::read_to_string(&path).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let w = v["keys"][0]["wrapped"].as_str().unwrap().to_string();
    let flipped = format!("{}{}", if w.starts_with('0') { "1" } else { "0" }, &w[1..]);
    v["keys"][0]["wrapped"] = serde_json::Value::String(flipped);
    std::fs::write(&path, serde_json::to_string(&v).unwrap()).unwrap();
    assert_eq!(Hsm::open(&path).unwrap_err().kind, ErrorKind::Auth);
}

#[test]
fn a_version_another_process_added_is_found_and_a_destroyed_one_is_gone_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ks.json");
    let (server, _) = Hsm::open(&path).unwrap();
    generate(&server, "fp", KeyUsage::Hmac, None, false);
    let mac = |h: &Hsm, v: u32| {
        h.execute(Request::Hmac { key: KeyRef::stored_version("fp", v), data: SecretBytes::from_slice(b"pan") })
    };
    let v1 = mac(&server, 1).unwrap();

    // A second process sharing the file (the rotation command) adds version 2: the first finds it.
    let (cli, _) = Hsm::open(&path).unwrap();
    generate(&cli, "fp", KeyUsage::Hmac, None, false);
    let v2 = mac(&cli, 2).unwrap();
    let seen = mac(&server, 2).expect("version 2 is read from the file on first use");
    assert_eq!(format!("{seen:?}"), format!("{v2:?}"));
    assert_ne!(format!("{v1:?}"), format!("{v2:?}"));

    // The newest version cannot be destroyed; an older one can, once, and is then gone from the
    // file too.
    let destroy = |h: &Hsm, v: u32| h.execute(Request::DestroyKey { label: "fp".into(), version: v });
    assert_eq!(kind(destroy(&server, 2)), ErrorKind::Key);
    match destroy(&server, 1).unwrap() {
        Response::Keys { keys } => {
            assert_eq!(keys.iter().map(|k| k.id.version).collect::<Vec<_>>(), vec![2]);
        }
        r => panic!("{r:?}"),
    }
    assert_eq!(kind(mac(&server, 1)), ErrorKind::Key);
    assert!(destroy(&server, 1).is_ok(), "destroying it again is not an error");
    // The other process learns it from the file the next time it lists the key.
    match cli.execute(Request::KeyInfo { label: "fp".into() }).unwrap() {
        Response::Keys { keys } => assert_eq!(keys.iter().map(|k| k.id.version).collect::<Vec<_>>(), vec![2]),
        r => panic!("{r:?}"),
    }
    assert_eq!(kind(mac(&cli, 1)), ErrorKind::Key);
    let (reopened, _) = Hsm::open(&path).unwrap();
    assert_eq!(kind(mac(&reopened, 1)), ErrorKind::Key, "version 1 is not in the file");
    assert!(mac(&reopened, 2).is_ok());
    assert!(!std::fs::read_to_string(&path).unwrap().contains("\"version\": 1"));
}
