//! The op table of the vector files (format: docs/hsm-and-vectors.md "Vector file format"; ops listed
//! in `vectors/README.md`): each op's `in` object turned into a call of the service's own code.

use hsm_sim::{ErrorKind, HsmError, KeyRef, Request, Response, SecretBytes};
use serde_json::{Map, Value, json};

use super::Failure;
use crate::hsm::Hsm;

type In = Map<String, Value>;
type Out = Result<Map<String, Value>, Failure>;

fn kind(k: ErrorKind) -> Failure {
    Failure::Kind(k.as_str().to_string())
}

impl From<HsmError> for Failure {
    fn from(e: HsmError) -> Self {
        kind(e.kind)
    }
}

// Inputs that are missing or of the wrong shape are `format` errors, as the operation itself would
// report them.
fn s<'a>(i: &'a In, k: &str) -> Result<&'a str, Failure> {
    i.get(k).and_then(Value::as_str).ok_or_else(|| kind(ErrorKind::Format))
}
fn hex(i: &In, k: &str) -> Result<Vec<u8>, Failure> {
    hex::decode(s(i, k)?).map_err(|_| kind(ErrorKind::Format))
}
fn key(i: &In, k: &str) -> Result<KeyRef, Failure> {
    Ok(KeyRef::clear(&hex(i, k)?))
}
fn secret(i: &In, k: &str) -> Result<SecretBytes, Failure> {
    Ok(SecretBytes::new(hex(i, k)?))
}
fn num(i: &In, k: &str) -> Result<u64, Failure> {
    let v = i.get(k).ok_or_else(|| kind(ErrorKind::Format))?;
    match v.as_u64() {
        Some(n) => Ok(n),
        None if v.is_number() => Err(kind(ErrorKind::Range)),
        None => Err(kind(ErrorKind::Format)),
    }
}
fn small<T: TryFrom<u64>>(i: &In, k: &str) -> Result<T, Failure> {
    T::try_from(num(i, k)?).map_err(|_| kind(ErrorKind::Range))
}

fn out(v: Value) -> Out {
    Ok(v.as_object().cloned().unwrap_or_default())
}
fn up(b: &[u8]) -> Value {
    Value::String(hex::encode_upper(b))
}
fn text(b: &SecretBytes) -> Value {
    Value::String(String::from_utf8_lossy(b.expose()).into_owned())
}

async fn call(hsm: &Hsm, req: Request) -> Result<Response, Failure> {
    Ok(hsm.call(req).await?)
}

/// A deterministic byte source for `token.generate`: HMAC-SHA256(seed, counter) blocks.
fn seeded(seed: Vec<u8>) -> impl FnMut(&mut [u8]) -> bool {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &seed);
    let mut counter = 0u64;
    move |buf: &mut [u8]| {
        for chunk in buf.chunks_mut(32) {
            let block = ring::hmac::sign(&key, &counter.to_be_bytes());
            chunk.copy_from_slice(&block.as_ref()[..chunk.len()]);
            counter += 1;
        }
        true
    }
}

/// Runs one op.
pub async fn run(hsm: &Hsm, op: &str, i: &In) -> Out {
    match op {
        "luhn.check" => out(json!({ "valid": crate::luhn::is_valid(s(i, "number")?) })),
        "luhn.complete" => {
            let n = crate::luhn::complete(s(i, "partial")?).ok_or_else(|| kind(ErrorKind::Format))?;
            out(json!({ "number": n }))
        }
        "token.generate" => {
            let bin = s(i, "bin")?;
            let len: usize = small(i, "length")?;
            let t =
                crate::tokens::TokenValue::generate(bin, len, &mut seeded(hex(i, "seed")?)).map_err(|e| match e {
                    crate::tokens::GenerateError::Format => kind(ErrorKind::Format),
                    crate::tokens::GenerateError::Range => kind(ErrorKind::Range),
                    crate::tokens::GenerateError::Random => kind(ErrorKind::Internal),
                })?;
            let n = t.as_str();
            out(json!({ "valid": n.len() == len && n.starts_with(bin) && crate::luhn::is_valid(n) }))
        }

        "hmac.sha256" => match call(hsm, Request::Hmac { key: key(i, "key")?, data: secret(i, "data")? }).await? {
            Response::Mac { mac } => out(json!({ "mac": up(&mac.0) })),
            r => unexpected(r),
        },
        "hkdf.sha256" => {
            let req = Request::Hkdf {
                ikm: secret(i, "ikm")?,
                salt: hex(i, "salt")?.into(),
                info: hex(i, "info")?.into(),
                len: small(i, "len")?,
            };
            derived(call(hsm, req).await?, "okm")
        }
        "aes_gcm.encrypt" => {
            let req = Request::AeadEncrypt {
                key: key(i, "key")?,
                iv: Some(hex(i, "iv")?.into()),
                aad: hex(i, "aad")?.into(),
                plaintext: secret(i, "pt")?,
            };
            match call(hsm, req).await? {
                Response::Sealed { ciphertext, tag, .. } => out(json!({ "ct": up(&ciphertext.0), "tag": up(&tag.0) })),
                r => unexpected(r),
            }
        }
        "aes_gcm.decrypt" => {
            let req = Request::AeadDecrypt {
                key: key(i, "key")?,
                iv: hex(i, "iv")?.into(),
                aad: hex(i, "aad")?.into(),
                ciphertext: hex(i, "ct")?.into(),
                tag: hex(i, "tag")?.into(),
            };
            match call(hsm, req).await? {
                Response::Opened { plaintext } => out(json!({ "pt": up(plaintext.expose()) })),
                r => unexpected(r),
            }
        }
        "aes_kw.wrap" => match call(hsm, Request::WrapKey { kek: key(i, "kek")?, key: secret(i, "key")? }).await? {
            Response::Wrapped { wrapped } => out(json!({ "wrapped": up(&wrapped.0) })),
            r => unexpected(r),
        },
        "aes_kw.unwrap" => derived(
            call(hsm, Request::UnwrapKey { kek: key(i, "kek")?, wrapped: hex(i, "wrapped")?.into() }).await?,
            "key",
        ),
        "ff1.encrypt" | "ff1.decrypt" => {
            let (field, result) = if op == "ff1.encrypt" { ("pt", "ct") } else { ("ct", "pt") };
            let (k, tweak, radix, t) = (
                key(i, "key")?,
                hex(i, "tweak")?.into(),
                small(i, "radix")?,
                SecretBytes::from_slice(s(i, field)?.as_bytes()),
            );
            let req = if op == "ff1.encrypt" {
                Request::Ff1Encrypt { key: k, tweak, radix, text: t }
            } else {
                Request::Ff1Decrypt { key: k, tweak, radix, text: t }
            };
            match call(hsm, req).await? {
                Response::Text { text: t } => out(json!({ result: text(&t) })),
                r => unexpected(r),
            }
        }
        "tr31.unwrap" => {
            match call(hsm, Request::Tr31Unwrap { kbpk: key(i, "kbpk")?, block: s(i, "block")?.to_string() }).await? {
                Response::KeyBlockContents { key, version, usage, algorithm, mode, key_version, exportability } => {
                    out(json!({
                        "key": up(key.expose()), "version": version, "usage": usage, "algorithm": algorithm,
                        "mode": mode, "key_version": key_version, "exportability": exportability,
                    }))
                }
                r => unexpected(r),
            }
        }

        "pin.iso0.encode" => {
            let req = Request::PinIso0Encode {
                pin: SecretBytes::from_slice(s(i, "pin")?.as_bytes()),
                pan: s(i, "pan")?.into(),
            };
            pin_block(call(hsm, req).await?)
        }
        "pin.iso0.decode" => {
            pin_text(call(hsm, Request::PinIso0Decode { block: secret(i, "block")?, pan: s(i, "pan")?.into() }).await?)
        }
        "pin.iso3.decode" => {
            pin_text(call(hsm, Request::PinIso3Decode { block: secret(i, "block")?, pan: s(i, "pan")?.into() }).await?)
        }
        "pin.iso4.decipher" => {
            let req = Request::PinDecipher {
                key: key(i, "key")?,
                format: 4,
                block: hex(i, "block")?.into(),
                pan: s(i, "pan")?.into(),
            };
            pin_text(call(hsm, req).await?)
        }
        "cvv.generate" => {
            let req = Request::CvvGenerate {
                cvk: key(i, "cvk")?,
                pan: s(i, "pan")?.into(),
                expiry: s(i, "expiry")?.into(),
                service_code: s(i, "service_code")?.into(),
            };
            match call(hsm, req).await? {
                Response::Text { text: t } => out(json!({ "cvv": text(&t) })),
                r => unexpected(r),
            }
        }

        "emv.icc_mk" => {
            let req = Request::DeriveIccMk {
                imk: key(i, "imk")?,
                pan: s(i, "pan")?.into(),
                psn: s(i, "psn")?.into(),
                method: s(i, "method")?.into(),
            };
            derived(call(hsm, req).await?, "icc_mk")
        }
        "emv.session_key" => derived(
            call(hsm, Request::EmvSessionKey { icc_mk: key(i, "icc_mk")?, r: hex(i, "r")?.into() }).await?,
            "sk",
        ),
        "emv.ac" => {
            let req = Request::EmvAc { sk: key(i, "sk")?, data: hex(i, "data")?.into(), padding: small(i, "padding")? };
            crypt(call(hsm, req).await?, "ac")
        }
        "emv.arpc1" => {
            let req = Request::EmvArpc1 { sk: key(i, "sk")?, arqc: hex(i, "arqc")?.into(), arc: hex(i, "arc")?.into() };
            crypt(call(hsm, req).await?, "arpc")
        }
        "emv.arpc2" => {
            let req = Request::EmvArpc2 {
                sk: key(i, "sk")?,
                arqc: hex(i, "arqc")?.into(),
                csu: hex(i, "csu")?.into(),
                pad: hex(i, "pad")?.into(),
            };
            crypt(call(hsm, req).await?, "arpc")
        }
        "emv.verify_arqc" => {
            let req = Request::EmvVerifyArqc {
                imk: key(i, "imk")?,
                pan: s(i, "pan")?.into(),
                psn: s(i, "psn")?.into(),
                atc: hex(i, "atc")?.into(),
                data: hex(i, "data")?.into(),
                arqc: hex(i, "arqc")?.into(),
            };
            match call(hsm, req).await? {
                Response::Valid { valid } => out(json!({ "valid": valid })),
                r => unexpected(r),
            }
        }

        "dukpt.tdes.ipek" => derived(
            call(hsm, Request::DukptTdesIpek { bdk: key(i, "bdk")?, ksn: hex(i, "ksn")?.into() }).await?,
            "ipek",
        ),
        "dukpt.tdes.key" => {
            derived(call(hsm, Request::DukptTdesKey { bdk: key(i, "bdk")?, ksn: hex(i, "ksn")?.into() }).await?, "key")
        }
        "dukpt.aes.ik" => {
            derived(call(hsm, Request::DukptAesIk { bdk: key(i, "bdk")?, ikid: hex(i, "ikid")?.into() }).await?, "ik")
        }
        "dukpt.aes.key" => {
            let req =
                Request::DukptAesKey { bdk: key(i, "bdk")?, ksn: hex(i, "ksn")?.into(), usage: s(i, "usage")?.into() };
            derived(call(hsm, req).await?, "key")
        }

        "iso8583.decode" => {
            let msg = crate::iso8583::Message::decode(&hex(i, "message")?).map_err(|_| kind(ErrorKind::Format))?;
            let mut fields = Map::new();
            fields.insert("t".into(), Value::String(msg.mti().as_str().to_string()));
            for (de, v) in msg.fields() {
                fields.insert(de.to_string(), Value::String(v.to_string()));
            }
            out(json!({ "fields": fields }))
        }
        "iso8583.encode" => {
            let fields = i.get("fields").and_then(Value::as_object).ok_or_else(|| kind(ErrorKind::Format))?;
            let pairs: Option<Vec<(&str, &str)>> =
                fields.iter().map(|(k, v)| v.as_str().map(|v| (k.as_str(), v))).collect();
            let pairs = pairs.ok_or_else(|| kind(ErrorKind::Format))?;
            let bytes = crate::iso8583::Message::from_fields(pairs)
                .and_then(|m| m.encode())
                .map_err(|_| kind(ErrorKind::Format))?;
            out(json!({ "message": up(&bytes) }))
        }

        other => Err(Failure::UnknownOp(other.to_string())),
    }
}

fn unexpected(r: Response) -> Out {
    Err(Failure::Kind(format!("unexpected HSM response {}", r.kind())))
}
fn derived(r: Response, name: &str) -> Out {
    match r {
        Response::Derived { key } => out(json!({ name: up(key.expose()) })),
        r => unexpected(r),
    }
}
fn crypt(r: Response, name: &str) -> Out {
    match r {
        Response::Cryptogram { value } => out(json!({ name: up(&value.0) })),
        r => unexpected(r),
    }
}
fn pin_block(r: Response) -> Out {
    match r {
        Response::PinBlock { block } => out(json!({ "block": up(&block.0) })),
        r => unexpected(r),
    }
}
fn pin_text(r: Response) -> Out {
    match r {
        Response::Text { text: t } => out(json!({ "pin": text(&t) })),
        r => unexpected(r),
    }
}
