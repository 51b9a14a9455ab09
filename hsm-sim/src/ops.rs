//! [`Hsm::execute`]: each request checked and handed to its primitive in `crypto/`.

use crate::crypto::{aead::IV_LEN, cvv, dukpt_aes, dukpt_tdes, emv, ff1, mac, pin, tr31, wrap};
use crate::error::HsmError;
use crate::hsm::{Hsm, Material};
use crate::keys::{Algorithm, Attributes, KeyRef, KeyUsage, Use};
use crate::protocol::{Request, Response};
use crate::secret::{Bytes, SecretBytes};

fn text(b: &SecretBytes, what: &str) -> Result<String, HsmError> {
    std::str::from_utf8(b.expose()).map(str::to_string).map_err(|_| HsmError::format(format!("{what} must be text")))
}

fn clear_only(m: &Material<'_>, what: &str) -> Result<(), HsmError> {
    if m.is_clear() {
        Ok(())
    } else {
        Err(HsmError::key(format!("{what} under a stored key never leaves the HSM in clear")))
    }
}

fn derived(bytes: &[u8]) -> Response {
    Response::Derived { key: SecretBytes::from_slice(bytes) }
}

fn cryptogram(bytes: &[u8]) -> Response {
    Response::Cryptogram { value: Bytes(bytes.to_vec()) }
}

fn pin_format(n: u8) -> Result<pin::PinFormat, HsmError> {
    pin::PinFormat::from_number(n)
}

impl Hsm {
    /// Runs one request.
    pub fn execute(&self, req: Request) -> Result<Response, HsmError> {
        match req {
            Request::KeyInfo { label } => Ok(Response::Keys { keys: self.key_versions(&label)? }),
            Request::EnsureKey { label, usage } => match self.entry(&label, None) {
                Ok(e) if e.attrs.usage == usage => Ok(Response::Key { key: e.info.clone() }),
                Ok(_) => Err(HsmError::key(format!("key {label} exists with another usage"))),
                Err(_) => self.generate(&label, Attributes::new(usage)).map(|key| Response::Key { key }),
            },
            Request::GenerateKey { label, usage, algorithm, mode, exportable } => {
                let mut attrs = Attributes::new(usage);
                if let Some(a) = algorithm {
                    attrs.algorithm = a;
                }
                if let Some(m) = mode {
                    attrs.mode = tr31::ModeOfUse::new(&m)?;
                }
                attrs.exportable = exportable;
                self.generate(&label, attrs).map(|key| Response::Key { key })
            }
            Request::DestroyKey { label, version } => self.destroy(&label, version).map(|keys| Response::Keys { keys }),
            Request::ImportClearKey { label, usage, key } => {
                self.import_clear(&label, usage, key).map(|key| Response::Key { key })
            }
            Request::ImportKeyBlock { label, kbpk, block } => {
                let kbpk = self.material(&kbpk, KeyUsage::Kbpk, Use::Decrypt)?;
                let (header, key) = tr31::unwrap(kbpk.bytes(), &block)?;
                let usage = KeyUsage::from_tr31(header.usage)
                    .ok_or_else(|| HsmError::key(format!("key usage {} is not one this HSM stores", header.usage)))?;
                let algorithm = Algorithm::from_tr31(header.algorithm).ok_or_else(|| {
                    HsmError::key(format!("algorithm {} is not one this HSM stores", header.algorithm))
                })?;
                let attrs = Attributes {
                    usage,
                    algorithm,
                    mode: header.mode,
                    exportable: header.exportability != tr31::Exportability::NONE,
                };
                self.add(&label, attrs, SecretBytes::new(key.to_vec()), false).map(|key| Response::Key { key })
            }
            Request::ExportKeyBlock { key, kbpk } => {
                let KeyRef::Stored { label, version } = &key else {
                    return Err(HsmError::key("only a stored key can be exported"));
                };
                let entry = self.entry(label, *version)?;
                if !entry.attrs.exportable {
                    return Err(HsmError::key(format!("key {} is not exportable", entry.info.id)));
                }
                let kbpk = self.material(&kbpk, KeyUsage::Kbpk, Use::Encrypt)?;
                let header = tr31::Header::new(
                    tr31::Version::D,
                    entry.attrs.usage.tr31(),
                    entry.attrs.algorithm.tr31(),
                    entry.attrs.mode,
                    tr31::KeyVersion::UNUSED,
                    tr31::Exportability::TRUSTED,
                );
                let block = tr31::wrap(kbpk.bytes(), &header, entry.material.expose(), &self.rng)?;
                Ok(Response::KeyBlock { block })
            }
            Request::Tr31Unwrap { kbpk, block } => {
                let kbpk = self.material(&kbpk, KeyUsage::Kbpk, Use::Decrypt)?;
                clear_only(&kbpk, "a key from a key block")?;
                let (h, key) = tr31::unwrap(kbpk.bytes(), &block)?;
                Ok(Response::KeyBlockContents {
                    key: SecretBytes::new(key.to_vec()),
                    version: h.version.as_str().to_string(),
                    usage: h.usage.as_str().to_string(),
                    algorithm: h.algorithm.as_str().to_string(),
                    mode: h.mode.as_str().to_string(),
                    key_version: h.key_version.as_str().to_string(),
                    exportability: h.exportability.as_str().to_string(),
                })
            }

            Request::GenerateDataKey { kek } => {
                let kek_ref = KeyRef::stored(kek);
                let kek = self.material(&kek_ref, KeyUsage::Kek, Use::Encrypt)?;
                let Material::Stored(entry) = &kek else { return Err(HsmError::key("the KEK must be stored")) };
                let dek = self.random(32)?;
                let blob = wrap::wrap(kek.bytes(), &dek)?;
                Ok(Response::WrappedKey { kek: entry.info.id.clone(), blob: Bytes(blob) })
            }
            Request::AeadEncrypt { key, iv, aad, plaintext } => {
                let iv = match iv {
                    Some(iv) => iv.0,
                    None => self.random(IV_LEN)?.to_vec(),
                };
                let mut buf = plaintext.expose().to_vec();
                let tag = self.with_gcm(&key, Use::Encrypt, |k| k.seal(&iv, &aad.0, &mut buf))?;
                Ok(Response::Sealed { iv: Bytes(iv), ciphertext: Bytes(buf), tag: Bytes(tag.to_vec()) })
            }
            Request::AeadDecrypt { key, iv, aad, ciphertext, tag } => {
                let mut clear = SecretBytes::new(ciphertext.0);
                let mut buf = clear.expose().to_vec();
                self.with_gcm(&key, Use::Decrypt, |k| k.open(&iv.0, &aad.0, &mut buf, &tag.0))?;
                clear = SecretBytes::new(buf);
                Ok(Response::Opened { plaintext: clear })
            }
            Request::Hmac { key, data } => {
                let k = self.material(&key, KeyUsage::Hmac, Use::Generate)?;
                Ok(Response::Mac { mac: Bytes(mac::hmac_sha256(k.bytes(), data.expose()).to_vec()) })
            }
            Request::Hkdf { ikm, salt, info, len } => {
                Ok(derived(&mac::hkdf_sha256(ikm.expose(), &salt.0, &info.0, len)?))
            }
            Request::WrapKey { kek, key } => {
                let k = self.material(&kek, KeyUsage::Kek, Use::Encrypt)?;
                Ok(Response::Wrapped { wrapped: Bytes(wrap::wrap(k.bytes(), key.expose())?) })
            }
            Request::UnwrapKey { kek, wrapped } => {
                let k = self.material(&kek, KeyUsage::Kek, Use::Decrypt)?;
                clear_only(&k, "a key unwrapped")?;
                Ok(derived(&wrap::unwrap(k.bytes(), &wrapped.0)?))
            }
            Request::Ff1Encrypt { key, tweak, radix, text: t } => {
                let k = self.material(&key, KeyUsage::DataEncryption, Use::Encrypt)?;
                let out = ff1::encrypt(k.bytes(), &tweak.0, radix, &text(&t, "FF1 input")?)?;
                Ok(Response::Text { text: SecretBytes::new(out.into_bytes()) })
            }
            Request::Ff1Decrypt { key, tweak, radix, text: t } => {
                let k = self.material(&key, KeyUsage::DataEncryption, Use::Decrypt)?;
                let out = ff1::decrypt(k.bytes(), &tweak.0, radix, &text(&t, "FF1 input")?)?;
                Ok(Response::Text { text: SecretBytes::new(out.into_bytes()) })
            }

            Request::DeriveIccMk { imk, pan, psn, method } => {
                let k = self.material(&imk, KeyUsage::EmvImkAc, Use::Derive)?;
                let method = match method.as_str() {
                    "A" => 'A',
                    "B" => 'B',
                    _ => return Err(HsmError::format("method must be A or B")),
                };
                Ok(derived(&emv::icc_mk(k.bytes(), &pan, &psn, method)?[..]))
            }
            Request::EmvSessionKey { icc_mk, r } => {
                let k = self.material(&icc_mk, KeyUsage::EmvImkAc, Use::Derive)?;
                clear_only(&k, "a session key")?;
                Ok(derived(&emv::session_key(k.bytes(), &r.0)?[..]))
            }
            Request::EmvAc { sk, data, padding } => {
                let k = self.material(&sk, KeyUsage::EmvImkAc, Use::Generate)?;
                Ok(cryptogram(&emv::ac(k.bytes(), &data.0, padding)?))
            }
            Request::EmvArpc1 { sk, arqc, arc } => {
                let k = self.material(&sk, KeyUsage::EmvImkAc, Use::Generate)?;
                Ok(cryptogram(&emv::arpc1(k.bytes(), &arqc.0, &arc.0)?))
            }
            Request::EmvArpc2 { sk, arqc, csu, pad } => {
                let k = self.material(&sk, KeyUsage::EmvImkAc, Use::Generate)?;
                Ok(cryptogram(&emv::arpc2(k.bytes(), &arqc.0, &csu.0, &pad.0)?))
            }
            Request::EmvVerifyArqc { imk, pan, psn, atc, data, arqc } => {
                let k = self.material(&imk, KeyUsage::EmvImkAc, Use::Derive)?;
                Ok(Response::Valid { valid: emv::verify_arqc(k.bytes(), &pan, &psn, &atc.0, &data.0, &arqc.0)? })
            }
            Request::EmvCvn18Arpc { imk, pan, psn, atc, arqc, csu, pad } => {
                let k = self.material(&imk, KeyUsage::EmvImkAc, Use::Derive)?;
                Ok(cryptogram(&emv::cvn18_arpc(k.bytes(), &pan, &psn, &atc.0, &arqc.0, &csu.0, &pad.0)?))
            }

            Request::CvvGenerate { cvk, pan, expiry, service_code } => {
                let k = self.material(&cvk, KeyUsage::Cvk, Use::Generate)?;
                let v = cvv::generate(k.bytes(), &pan, &expiry, &service_code)?;
                Ok(Response::Text { text: SecretBytes::from_slice(v.as_bytes()) })
            }
            Request::CvvVerify { cvk, pan, expiry, service_code, cvv: given } => {
                let k = self.material(&cvk, KeyUsage::Cvk, Use::Verify)?;
                Ok(Response::Valid {
                    valid: cvv::verify(k.bytes(), &pan, &expiry, &service_code, &text(&given, "CVV")?)?,
                })
            }

            Request::PinIso0Encode { pin: p, pan } => {
                let block = pin::iso0_encode(&text(&p, "PIN")?, &pan)?;
                Ok(Response::PinBlock { block: Bytes(block.to_vec()) })
            }
            Request::PinIso0Decode { block, pan } => {
                let p = pin::iso0_decode(block.expose(), &pan)?;
                Ok(Response::Text { text: SecretBytes::from_slice(p.as_bytes()) })
            }
            Request::PinIso3Decode { block, pan } => {
                let p = pin::iso3_decode(block.expose(), &pan)?;
                Ok(Response::Text { text: SecretBytes::from_slice(p.as_bytes()) })
            }
            Request::PinEncipher { key, format, pin: p, pan } => {
                let k = self.material(&key, KeyUsage::PinEncryption, Use::Encrypt)?;
                let block = pin::encipher(pin_format(format)?, k.bytes(), &text(&p, "PIN")?, &pan, &self.rng)?;
                Ok(Response::PinBlock { block: Bytes(block) })
            }
            Request::PinDecipher { key, format, block, pan } => {
                let k = self.material(&key, KeyUsage::PinEncryption, Use::Decrypt)?;
                clear_only(&k, "a PIN")?;
                let p = pin::decipher(pin_format(format)?, k.bytes(), &block.0, &pan)?;
                Ok(Response::Text { text: SecretBytes::from_slice(p.as_bytes()) })
            }
            Request::PinTranslate { block, from_key, from_format, to_key, to_format, pan } => {
                let kin = self.material(&from_key, KeyUsage::PinEncryption, Use::Decrypt)?;
                let kout = self.material(&to_key, KeyUsage::PinEncryption, Use::Encrypt)?;
                let out = pin::translate(
                    &block.0,
                    pin_format(from_format)?,
                    kin.bytes(),
                    pin_format(to_format)?,
                    kout.bytes(),
                    &pan,
                    &self.rng,
                )?;
                Ok(Response::PinBlock { block: Bytes(out) })
            }

            Request::DukptTdesIpek { bdk, ksn } => {
                let k = self.material(&bdk, KeyUsage::Bdk, Use::Derive)?;
                clear_only(&k, "a DUKPT key")?;
                Ok(derived(&dukpt_tdes::ipek(k.bytes(), &ksn.0)?[..]))
            }
            Request::DukptTdesKey { bdk, ksn } => {
                let k = self.material(&bdk, KeyUsage::Bdk, Use::Derive)?;
                clear_only(&k, "a DUKPT key")?;
                Ok(derived(&dukpt_tdes::transaction_key(k.bytes(), &ksn.0)?[..]))
            }
            Request::DukptAesIk { bdk, ikid } => {
                let k = self.material(&bdk, KeyUsage::Bdk, Use::Derive)?;
                clear_only(&k, "a DUKPT key")?;
                Ok(derived(&dukpt_aes::initial_key(k.bytes(), &ikid.0)?))
            }
            Request::DukptAesKey { bdk, ksn, usage } => {
                let k = self.material(&bdk, KeyUsage::Bdk, Use::Derive)?;
                clear_only(&k, "a DUKPT key")?;
                let usage = dukpt_aes::Usage::parse(&usage)?;
                Ok(derived(&dukpt_aes::working_key(k.bytes(), &ksn.0, usage)?[..]))
            }
        }
    }
}
