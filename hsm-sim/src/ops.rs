//! [`Hsm::execute`]: each request checked and handed to its primitive in `crypto/`.

use zeroize::Zeroizing;

use crate::crypto::{aead::IV_LEN, cvv, dukpt_aes, dukpt_tdes, emv, ff1, kcv, mac, pin, tr31, wrap};
use crate::error::HsmError;
use crate::hsm::{Hsm, Material};
use crate::keys::{Algorithm, Attributes, KeyRef, KeyUsage, Use, mode_allows};
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

/// The header of an ISO 8583 link key block: a MAC key (`M3` TDES, `M6` AES; mode `C`) or a zone
/// key block protection key (`K1` AES; mode `B`), version D, not exportable.
fn link_header(usage: &str, algorithm: &str) -> Result<tr31::Header, HsmError> {
    let usage = tr31::KeyUsage::new(usage)?;
    let algorithm = tr31::Algorithm::new(algorithm)?;
    let mode = match (usage, algorithm) {
        (tr31::KeyUsage::MAC_ISO9797_3, tr31::Algorithm::TDES) | (tr31::KeyUsage::MAC_CMAC, tr31::Algorithm::AES) => {
            tr31::ModeOfUse::GEN_VER
        }
        (tr31::KeyUsage::KBPK, tr31::Algorithm::AES) => tr31::ModeOfUse::ENC_DEC,
        _ => return Err(HsmError::key("a link key is M3/T, M6/A or K1/A")),
    };
    Ok(tr31::Header::new(tr31::Version::D, usage, algorithm, mode, tr31::KeyVersion::UNUSED, tr31::Exportability::NONE))
}

fn check_link_key(header: &tr31::Header, len: usize) -> Result<(), HsmError> {
    let ok = if header.algorithm == tr31::Algorithm::TDES { len == 16 } else { matches!(len, 16 | 24 | 32) };
    if ok {
        Ok(())
    } else {
        Err(HsmError::key(format!("a link key of algorithm {} cannot be {len} bytes", header.algorithm)))
    }
}

/// A link key's check value: TDES-ECB or AES-CMAC over zeros, 6 hex digits.
fn link_kcv(header: &tr31::Header, key: &[u8]) -> Result<String, HsmError> {
    if header.algorithm == tr31::Algorithm::TDES { kcv::tdes(key) } else { kcv::aes(key) }
}

/// The 8-byte MAC under a MAC key block's key, if the block's usage and mode allow `u`.
fn block_mac(header: &tr31::Header, key: &[u8], data: &[u8], u: Use) -> Result<[u8; 8], HsmError> {
    if !mode_allows(header.mode, u) {
        return Err(HsmError::key(format!("a key of mode {} may not be used to {u:?}", header.mode)));
    }
    match (header.usage, header.algorithm) {
        (tr31::KeyUsage::MAC_ISO9797_3, tr31::Algorithm::TDES) => mac::retail_mac(key, data, 1),
        (tr31::KeyUsage::MAC_CMAC, tr31::Algorithm::AES) => {
            let tag = mac::aes_cmac(key, data)?;
            let mut out = [0u8; 8];
            out.copy_from_slice(&tag[..8]);
            Ok(out)
        }
        _ => Err(HsmError::key("not a MAC key (M3 TDES or M6 AES)")),
    }
}

impl Hsm {
    /// A key block under `kbpk`, opened inside the HSM.
    fn open_block(&self, kbpk: &KeyRef, block: &str) -> Result<(tr31::Header, Zeroizing<Vec<u8>>), HsmError> {
        let k = self.material(kbpk, KeyUsage::Kbpk, Use::Decrypt)?;
        tr31::unwrap(k.bytes(), block)
    }

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

            Request::KeyBlockFromClear { kbpk, usage, algorithm, key } => {
                let header = link_header(&usage, &algorithm)?;
                check_link_key(&header, key.len())?;
                let kbpk = self.material(&kbpk, KeyUsage::Kbpk, Use::Encrypt)?;
                let block = tr31::wrap(kbpk.bytes(), &header, key.expose(), &self.rng)?;
                Ok(Response::LinkKey { block, kcv: link_kcv(&header, key.expose())? })
            }
            Request::BlockMacGenerate { kbpk, block, data } => {
                let (header, key) = self.open_block(&kbpk, &block)?;
                Ok(Response::Mac { mac: Bytes(block_mac(&header, &key, data.expose(), Use::Generate)?.to_vec()) })
            }
            Request::BlockMacVerify { kbpk, block, data, mac: given } => {
                let (header, key) = self.open_block(&kbpk, &block)?;
                let mac = block_mac(&header, &key, data.expose(), Use::Verify)?;
                Ok(Response::Valid { valid: bool::from(subtle::ConstantTimeEq::ct_eq(&mac[..], &given.0[..])) })
            }
            Request::NewWorkingKey { kbpk, zone_block, usage, algorithm } => {
                let header = link_header(&usage, &algorithm)?;
                let (zone_header, zone) = self.open_block(&kbpk, &zone_block)?;
                if zone_header.usage != tr31::KeyUsage::KBPK
                    || zone_header.algorithm != tr31::Algorithm::AES
                    || !mode_allows(zone_header.mode, Use::Encrypt)
                {
                    return Err(HsmError::key("the zone key must be an AES key block protection key (K1)"));
                }
                // A double-length TDES key or an AES-128 key.
                let mut key = self.random(16)?;
                if header.algorithm == tr31::Algorithm::TDES {
                    emv::adjust_odd_parity(&mut key);
                }
                check_link_key(&header, key.len())?;
                let storage = self.material(&kbpk, KeyUsage::Kbpk, Use::Encrypt)?;
                let block = tr31::wrap(storage.bytes(), &header, &key, &self.rng)?;
                let zone_block = tr31::wrap(&zone, &header, &key, &self.rng)?;
                let kcv = link_kcv(&header, &key)?;
                Ok(Response::WorkingKey { block, zone_block, kcv })
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
