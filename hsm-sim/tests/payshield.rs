//! payShield host commands, in process, against values from outside hsm-sim: psec 1.3.0 docstring
//! examples, values psec computes (`tests/payshield_vectors.py` prints them), FIPS 180-2 hash examples
//! and the external-tool LMK vector of `payshield::lmk`. Keys under the LMK are formed with `form_key`
//! from the clear keys below; they are inputs here, never expected values.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

use hsm_sim::payshield::Front;
use hsm_sim::payshield::commands::form_key;

/// psec's example key, and its halves swapped; both odd parity.
const K1: &str = "0123456789ABCDEFFEDCBA9876543210";
const K2: &str = "FEDCBA98765432100123456789ABCDEF";

fn under_lmk(key_type: &str, clear: &str) -> String {
    form_key(key_type, b'U', &[clear]).unwrap().0
}

fn ask(front: &Front, cmd: &str) -> String {
    let answer = front.handle(format!("0000{cmd}").as_bytes());
    assert_eq!(&answer[..4], b"0000", "header echoed");
    String::from_utf8(answer[4..].to_vec()).unwrap()
}

#[test]
fn nc_reports_the_test_lmk_check_value() {
    // TDES(LMK pair 00-01, zeros) by psec.des.encrypt_tdes_ecb.
    assert_eq!(ask(&Front::new(4), "NC"), "ND007D22274C5745C5A10001-HSIM");
}

#[test]
fn key_management() {
    let f = Front::new(4);
    let zmk = under_lmk("000", K2);
    // psec docstring: generate_kcv(K1) = 08D7; psec: TDES(K1, zeros) = 08D7B4FB629D0885; the external
    // tool's check value of K1 is 08D7B4.
    let (zpk, kcv) =
        form_key("001", b'U', &["0123456789ABCDEF0000000000000000", "0000000000000000FEDCBA9876543210"]).unwrap();
    assert_eq!(kcv, "08D7B4");
    assert_eq!(ask(&f, &format!("BU011{zpk}")), "BV0008D7B4FB629D0885");
    assert_eq!(ask(&f, &format!("BUFF1{zpk};001")), "BV0008D7B4FB629D0885");
    // K1 under ZMK K2, X9.17: psec encrypt_tdes_ecb(K2, K1).
    let imported = ask(&f, &format!("A6001{zmk}XE02E4FD4DC850651E5B298D235934CCAU"));
    assert_eq!(imported, format!("A700{zpk}08D7B4"));
    assert_eq!(ask(&f, &format!("A8001{zmk}{zpk}X")), "A900XE02E4FD4DC850651E5B298D235934CCA08D7B4");
    // A generated key exported under the ZMK imports back to itself.
    let generated = ask(&f, &format!("A01001U;0{zmk}X"));
    assert_eq!(&generated[..4], "A100");
    let (lmk_part, rest) = generated[4..].split_at(33);
    let (zmk_part, kcv) = rest.split_at(33);
    assert_eq!(ask(&f, &format!("A6001{zmk}{zmk_part}U")), format!("A700{lmk_part}{kcv}"));
    // A clear component of even parity is refused.
    assert!(form_key("001", b'U', &["00000000000000000000000000000000"]).is_err());
}

#[test]
fn cvv() {
    let f = Front::new(4);
    let cvk = under_lmk("402", K1);
    // psec docstring: generate_cvv(K1, "1234567890123456", "9912", "220") = 170.
    assert_eq!(ask(&f, &format!("CW{cvk}1234567890123456;9912220")), "CX00170");
    assert_eq!(ask(&f, &format!("CY{cvk}1701234567890123456;9912220")), "CZ00");
    assert_eq!(ask(&f, &format!("CY{cvk}1711234567890123456;9912220")), "CZ01");
    // The CVK under the wrong key type deciphers to another key: parity fails (10).
    let wrong = under_lmk("001", K1);
    assert_eq!(ask(&f, &format!("CW{wrong}1234567890123456;9912220")), "CX10");
}

#[test]
fn pin_verification_by_pvv() {
    let f = Front::new(4);
    let tpk = under_lmk("002", K2);
    let zpk = under_lmk("001", K2);
    let pvk = under_lmk("002", K1);
    // psec docstring: generate_visa_pvv(K1, "3", "4524", "1122334455667788") = 4021; the PIN block is
    // psec's ISO 0 block of 4524 for that PAN under K2.
    let tail = "ECC40DFB8632CD7001233445566778";
    assert_eq!(ask(&f, &format!("DC{tpk}{pvk}{tail}34021")), "DD00");
    assert_eq!(ask(&f, &format!("DC{tpk}{pvk}{tail}34022")), "DD01");
    assert_eq!(ask(&f, &format!("EC{zpk}{pvk}{tail}34021")), "ED00");
    assert_eq!(ask(&f, &format!("EC{zpk}{pvk}{tail}24021")), "ED01");
    // Unknown PIN block format.
    assert_eq!(ask(&f, &format!("EC{zpk}{pvk}ECC40DFB8632CD7002233445566778334021")), "ED23");
}

#[test]
fn pin_translation() {
    let f = Front::new(4);
    let tpk = under_lmk("002", K2);
    let zpk_src = under_lmk("001", K2);
    let zpk_dst = under_lmk("001", K1);
    // psec docstring: ISO 0 block of 1234 for 5544332211009966 is 041277CDDEEFF669; under K2 and K1 by
    // psec encrypt_tdes_ecb.
    let fields = "12C880AFA543562BE60101433221100996";
    assert_eq!(ask(&f, &format!("CA{tpk}{zpk_dst}{fields}")), "CB000424B5254F5321BBC201");
    assert_eq!(ask(&f, &format!("CC{zpk_src}{zpk_dst}{fields}")), "CD000424B5254F5321BBC201");
    assert_eq!(ask(&f, &format!("CC{zpk_src}{zpk_dst}03C880AFA543562BE60101433221100996")), "CD24");
}

#[test]
fn mac_and_data() {
    let f = Front::new(4);
    let tak = under_lmk("003", K1);
    let zek = under_lmk("00A", K1);
    // psec docstring: generate_cbc_mac(K1, 1234567890ABCDEF, padding=2) = 925B1737EF681AD3.
    assert_eq!(ask(&f, &format!("M601112003{tak}00101234567890ABCDEF")), "M700925B1737EF681AD3");
    assert_eq!(ask(&f, &format!("M801112003{tak}00101234567890ABCDEF925B1737EF681AD3")), "M900");
    assert_eq!(ask(&f, &format!("M801112003{tak}00101234567890ABCDEF925B1737EF681AD4")), "M901");
    // psec generate_retail_mac(K1[:8], K1[8:], 1234567890ABCDEF12, padding=1) = 3CA348D293875C25.
    assert_eq!(ask(&f, &format!("M601131003{tak}00121234567890ABCDEF12")), "M7003CA348D293875C25");
    // MAC size 0: the leftmost 8 hex digits.
    assert_eq!(ask(&f, &format!("M601031003{tak}00121234567890ABCDEF12")), "M7003CA348D2");
    // psec docstring: encrypt_tdes_ecb(K1, b"12345678") = 41D2FFBA3CDC15FE.
    assert_eq!(ask(&f, &format!("M0000100A{zek}000812345678")), "M100001041D2FFBA3CDC15FE");
    let back = ask(&f, &format!("M2001000A{zek}001041D2FFBA3CDC15FE"));
    assert_eq!(back, "M300000812345678");
    // psec encrypt_tdes_cbc(K1, 0102030405060708, b"0123456789abcdef").
    assert_eq!(
        ask(&f, &format!("M0010100A{zek}01020304050607080010{}", "0123456789abcdef")),
        "M1000AA0DED0EFA98DD400205624AB704981D5320AA0DED0EFA98DD4"
    );
}

#[test]
fn hash() {
    let f = Front::new(4);
    // FIPS 180-2 appendix examples for "abc".
    let sha1 = f.handle(b"0000GM0100003abc");
    assert_eq!(hex::encode_upper(&sha1[8..]), "A9993E364706816ABA3E25717850C26C9CD0D89D");
    let sha256 = f.handle(b"0000GM0600003abc");
    assert_eq!(&sha256[..8], b"0000GN00");
    assert_eq!(hex::encode_upper(&sha256[8..]), "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD");
}

#[test]
fn unknown_and_malformed() {
    let f = Front::new(4);
    assert_eq!(ask(&f, "QQ"), "ZZ00");
    assert_eq!(ask(&f, "CW"), "CX15");
    assert_eq!(ask(&f, "A0"), "A115");
    assert_eq!(f.handle(b"00"), b"00ZZ15");
    assert_eq!(Front::new(0).handle(b"NC")[..4], *b"ND00");
    // Binary in, hex out, 32 KiB: the answer would not fit the length prefix, so 15 and no data.
    let zek = under_lmk("00A", K1);
    let mut m = format!("0000M0000100A{zek}8000").into_bytes();
    m.extend(vec![0u8; 0x8000]);
    assert_eq!(f.handle(&m), b"0000M115");
}

fn kq_message(mk_ac: &str, mode: u8, scheme: u8, arqc: &str) -> Vec<u8> {
    let data = hex::decode("00000000100000000000000008400000000000084026120400A1B2C3D41800004203A00000").unwrap();
    let mut m = b"0000KQ".to_vec();
    m.extend([mode, scheme]);
    m.extend_from_slice(mk_ac.as_bytes());
    m.extend(hex::decode("6173900101001000").unwrap()); // rightmost 16 digits of PAN ‖ PSN
    m.extend(hex::decode("0042A1B2C3D4").unwrap()); // ATC, UN
    m.extend_from_slice(format!("{:02X}", data.len()).as_bytes());
    m.extend(data);
    m.push(b';');
    m.extend(hex::decode(arqc).unwrap());
    if mode != b'0' {
        m.extend_from_slice(b"00"); // ARC
    }
    m
}

#[test]
fn arqc_and_arpc() {
    let f = Front::new(4);
    let mk_ac = under_lmk("109", K1);
    // pyemv 1.5.0: VisaCVN10 and MasterCardCVN16 with IMK K1, PAN 4761739001010010, PSN 00, ARC "00"
    // (tests/payshield_vectors.py).
    for (scheme, arqc, arpc) in
        [(b'0', "9D9EE6DE489FD784", "E115098F3F659B09"), (b'1', "73AF3F3D2AB8E228", "41F5E125E802A378")]
    {
        assert_eq!(f.handle(&kq_message(&mk_ac, b'0', scheme, arqc)), b"0000KR00");
        let answer = f.handle(&kq_message(&mk_ac, b'1', scheme, arqc));
        assert_eq!(&answer[..8], b"0000KR00");
        assert_eq!(hex::encode_upper(&answer[8..]), arpc);
        let mut bad = arqc.to_string();
        bad.replace_range(..1, if arqc.starts_with('0') { "1" } else { "0" });
        assert_eq!(f.handle(&kq_message(&mk_ac, b'1', scheme, &bad)), b"0000KR01");
        let answer = f.handle(&kq_message(&mk_ac, b'2', scheme, &bad));
        assert_eq!(&answer[..8], b"0000KR00", "mode 2 generates without verifying");
    }
}

#[test]
fn dukpt_pin_translation() {
    let f = Front::new(4);
    let bdk = under_lmk("009", K1);
    let zpk = under_lmk("001", K1);
    // ANSI X9.24-1 (2009) annex A: BDK 0123…3210, KSN FFFF9876543210E00001, PIN 1234, PAN 4012345678909
    // gives the PIN block 1B9C1845EB993A7A; under ZPK K1 by psec: C03D21CDBCB0C58B.
    let answer = ask(&f, &format!("G0{bdk}{zpk}605FFFF9876543210E000011B9C1845EB993A7A0101401234567890"));
    assert_eq!(answer, "G10004C03D21CDBCB0C58B01");
}

#[test]
fn key_block_lmk() {
    let f = Front::new(4);
    let kb = |kt: &str, clear: &str| form_key(kt, b'S', &[clear]).unwrap().0;
    let zpk = kb("001", K1);
    assert!(zpk.starts_with("SD"), "{zpk}");
    // The same values as the variant form: psec's TDES(K1, zeros), CVV and PIN blocks as above.
    assert_eq!(ask(&f, &format!("BU011{zpk}")), "BV0008D7B4FB629D0885");
    assert_eq!(ask(&f, &format!("CW{}1234567890123456;9912220", kb("402", K1))), "CX00170");
    let fields = "12C880AFA543562BE60101433221100996";
    assert_eq!(ask(&f, &format!("CA{}{zpk}{fields}", kb("002", K2))), "CB000424B5254F5321BBC201");
    // A key block of another usage is refused where a ZPK is expected (04).
    assert_eq!(ask(&f, &format!("CA{}{}{fields}", kb("002", K2), kb("402", K1))), "CB04");
    // Import into key block form, with named attributes (a PVK: V2), then use it in EC.
    let zmk = under_lmk("000", K2);
    let imported = ask(&f, &format!("A6002{zmk}XE02E4FD4DC850651E5B298D235934CCAS%00#V2C00N"));
    assert!(imported.starts_with("A700SD") && imported.ends_with("08D7B4"), "{imported}");
    let pvk = &imported[4..imported.len() - 6];
    assert_eq!(&pvk[6..12], "V2TC00", "usage, algorithm, mode, version");
    let tail = "ECC40DFB8632CD7001233445566778";
    assert_eq!(ask(&f, &format!("EC{}{pvk}{tail}34021", kb("001", K2))), "ED00");
    // A usage that does not fit the key type is refused.
    assert_eq!(ask(&f, &format!("A6001{zmk}XE02E4FD4DC850651E5B298D235934CCAS#V2C00N")), "A704");
    // A generated key block exported under the ZMK imports back to the same check value.
    let generated = ask(&f, &format!("A01001S;0{zmk}X"));
    assert!(generated.starts_with("A100S"), "{generated}");
    let kcv = &generated[generated.len() - 6..];
    let under_zmk = &generated[generated.len() - 39..generated.len() - 6];
    assert_eq!(&ask(&f, &format!("A6001{zmk}{under_zmk}U"))[37..], kcv);
}

/// The binary's TCP front: 2-byte length framing, a header of `--header-length`, the connection alive
/// after an empty and a malformed message.
#[test]
fn binary_serves_payshield_over_tcp() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::process::{Command, Stdio};

    let mut child = Command::new(env!("CARGO_BIN_EXE_hsm-sim"))
        .args(["serve", "--protocol", "payshield", "--listen", "127.0.0.1:0", "--header-length", "6"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.split("listening on ").nth(1).unwrap().split(' ').next().unwrap().to_string();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let mut ask = |msg: &[u8]| {
        s.write_all(&u16::try_from(msg.len()).unwrap().to_be_bytes()).unwrap();
        s.write_all(msg).unwrap();
        let mut len = [0u8; 2];
        s.read_exact(&mut len).unwrap();
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        s.read_exact(&mut buf).unwrap();
        buf
    };
    assert_eq!(ask(b""), b"ZZ15");
    assert_eq!(ask(b"ABCDEFCW"), b"ABCDEFCX15");
    assert_eq!(ask(b"ABCDEFNC"), b"ABCDEFND007D22274C5745C5A10001-HSIM");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn fa_and_hc() {
    let f = Front::new(4);
    let zmk = under_lmk("000", K2);
    // K1 under ZMK K2 (psec, as in key_management); check value 16H by psec, 6H by the external tool.
    let zpk = under_lmk("001", K1);
    assert_eq!(ask(&f, &format!("FA{zmk}XE02E4FD4DC850651E5B298D235934CCA")), format!("FB00{zpk}08D7B4FB629D0885"));
    assert_eq!(ask(&f, &format!("FA{zmk}XE02E4FD4DC850651E5B298D235934CCA;XU1")), format!("FB00{zpk}08D7B4"));
    // HC: a new key under the current key (X9.17) and under the LMK; exporting the LMK copy under a
    // ZMK equal to the current key gives the same cryptogram back.
    let current = under_lmk("002", K2);
    let answer = ask(&f, &format!("HC{current};XU"));
    assert_eq!(&answer[..4], "HD00");
    let (under_current, under_lmk_) = answer[4..].split_at(33);
    assert!(under_current.starts_with('X') && under_lmk_.starts_with('U'));
    let exported = ask(&f, &format!("A8002{zmk_k2}{under_lmk_}X", zmk_k2 = zmk));
    assert_eq!(&exported[4..37], under_current);
}

fn ask_bytes(front: &Front, cmd: &[u8]) -> Vec<u8> {
    let mut msg = b"0000".to_vec();
    msg.extend_from_slice(cmd);
    let answer = front.handle(&msg);
    assert_eq!(&answer[..4], b"0000", "header echoed");
    answer[4..].to_vec()
}

/// An `S` key field holding `clear` with the attributes `attrs` (`#` usage, mode, version,
/// exportability, `&` algorithm): an input, made the way a key ceremony would load it.
fn key_block(attrs: &str, clear: &str) -> String {
    use hsm_sim::payshield::{keyblock, wire::Reader};
    let a = keyblock::read_attributes(&mut Reader::new(attrs.as_bytes())).unwrap().unwrap();
    let field = keyblock::wrap_any(&a, &hex::decode(clear).unwrap(), &ring::rand::SystemRandom::new()).unwrap();
    String::from_utf8(field).unwrap()
}

/// `LQ`/`LS`: HMAC-SHA-256 under an `M7` key block; expected value by Python's hmac module
/// (tests/payshield_vectors.py).
#[test]
fn hmac_generate_and_verify() {
    let f = Front::new(4);
    let key = key_block("#M7C00N&H2", "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F");
    let data = "tsp payShield LQ vector";
    let mac = hex::decode("C4A228F2ED75DE1B2A8889B0352893F6458EBEF6711E374AA27628E57D9AB5CB").unwrap();
    let fields = |len: usize| format!("06{len:04}00{:04}{key};{:05}{data}", key.len(), data.len()).into_bytes();
    let mut want = b"LR000032".to_vec();
    want.extend_from_slice(&mac);
    assert_eq!(ask_bytes(&f, &[b"LQ".as_slice(), &fields(32)].concat()), want);
    let mut want16 = b"LR000016".to_vec();
    want16.extend_from_slice(&mac[..16]);
    assert_eq!(ask_bytes(&f, &[b"LQ".as_slice(), &fields(16)].concat()), want16);
    assert_eq!(ask_bytes(&f, &[b"LS".as_slice(), &fields(32), &mac].concat()), b"LT00");
    let mut wrong = mac.clone();
    wrong[31] ^= 1;
    assert_eq!(ask_bytes(&f, &[b"LS".as_slice(), &fields(32), &wrong].concat()), b"LT01");
    // Too short an HMAC (04), another hash (05), a key of another usage (04).
    assert_eq!(ask_bytes(&f, &[b"LQ".as_slice(), &fields(8)].concat()), b"LR04");
    assert_eq!(ask_bytes(&f, format!("LQ01003200{:04}{key};00001x", key.len()).as_bytes()), b"LR05");
    let aes = key_block("#D0B00N&A3", "603DEB1015CA71BE2B73AEF0857D77811F352C073B6108D72D9810A30914DFF4");
    assert_eq!(ask_bytes(&f, format!("LQ06003200{:04}{aes};00001x", aes.len()).as_bytes()), b"LR04");
}

/// `M0`/`M2` with an AES-256 key block, CBC: NIST SP 800-38A F.2.5 (CBC-AES256), two blocks.
#[test]
fn aes_data_encryption() {
    let f = Front::new(4);
    let key = key_block("#D0B00N&A3", "603DEB1015CA71BE2B73AEF0857D77811F352C073B6108D72D9810A30914DFF4");
    let iv = "000102030405060708090A0B0C0D0E0F";
    let pt = "6BC1BEE22E409F96E93D7E117393172AAE2D8A571E03AC9C9EB76FAC45AF8E51";
    let ct = "F58C4C04D6E5F1BA779EABFB5F7BFBD69CFC4E967EDB808D679F777BC6702C7D";
    assert_eq!(ask(&f, &format!("M0011100B{key}{iv}0040{pt}")), format!("M100{}0040{ct}", &ct[32..]));
    assert_eq!(ask(&f, &format!("M2011100B{key}{iv}0040{ct}")), format!("M300{}0040{pt}", &ct[32..]));
    // A partial block (15), ECB with an AES key (68).
    assert_eq!(ask(&f, &format!("M0011100B{key}{iv}0020{}", &pt[..32 - 2])), "M115");
    assert_eq!(ask(&f, &format!("M0001100B{key}0020{}", &pt[..32])), "M168");
}

/// `A0` of key blocks named by their attributes (`FFF`): AES-256 and HMAC keys that then serve `M0`
/// and `LQ`.
#[test]
fn generated_aes_and_hmac_key_blocks() {
    let f = Front::new(4);
    let aes = ask(&f, "A0000BS#D0B00N&A3");
    assert!(aes.starts_with("A100SD") && &aes[10..12] == "D0" && &aes[12..13] == "A", "{aes}");
    let key = &aes[4..aes.len() - 6];
    let out = ask(&f, &format!("M0011100B{key}000102030405060708090A0B0C0D0E0F0020{}", "00".repeat(16)));
    assert!(out.starts_with("M100"), "{out}");
    let hmac = ask(&f, "A00FFFS#M7C00N&H2");
    assert!(hmac.starts_with("A100SD") && &hmac[10..13] == "M7H", "{hmac}");
    let key = &hmac[4..hmac.len() - 6];
    assert!(ask_bytes(&f, format!("LQ06003200{:04}{key};00001x", key.len()).as_bytes()).starts_with(b"LR000032"));
    // Not as a variant key, not without attributes, not exported under a TDES ZMK.
    assert_eq!(ask(&f, "A0000BU#D0B00N&A3"), "A126");
    assert_eq!(ask(&f, "A00FFFS"), "A104");
    let zmk = under_lmk("000", K2);
    assert_eq!(ask(&f, &format!("A0100BS;0{zmk}X#D0B00N&A3")), "A126");
}

/// `KW` scheme 2 (EMV common session key, the CVN 18 layout) and `9A`: pyemv 1.5.0's VisaCVN18 and
/// derive_icc_mk_a (tests/payshield_vectors.py); check value of the ICC MK by psec.
#[test]
fn kw_and_the_icc_master_key() {
    let f = Front::new(4);
    let mk = under_lmk("109", K1);
    let pan_psn = hex::decode("6173900101001000").unwrap();
    let atc = [0x00, 0x42];
    let mut data =
        hex::decode("00000000100000000000000008400000000000084026120400A1B2C3D41800004206011203A00000").unwrap();
    // The host's EMV padding (method 2): 80 then zeros to a whole block.
    data.push(0x80);
    while !data.len().is_multiple_of(8) {
        data.push(0);
    }
    let arqc = hex::decode("C3EF68C04F5AFE24").unwrap();
    let kw = |mode: u8, with_data: bool, arqc: &[u8], arpc: bool| {
        let mut m = vec![b'K', b'W', mode, b'2'];
        m.extend_from_slice(mk.as_bytes());
        m.extend_from_slice(&pan_psn);
        m.extend_from_slice(&atc);
        if with_data {
            m.extend_from_slice(format!("{:02X}", data.len()).as_bytes());
            m.extend_from_slice(&data);
            m.push(b';');
        }
        m.extend_from_slice(arqc);
        if arpc {
            m.extend_from_slice(&[0x00, 0x80, 0x00, 0x00]);
            m.push(b'0');
        }
        ask_bytes(&f, &m)
    };
    let arpc = hex::decode("01352C50").unwrap();
    assert_eq!(kw(b'0', true, &arqc, false), b"KX00");
    assert_eq!(kw(b'3', true, &arqc, true), [b"KX00".as_slice(), &arpc].concat());
    assert_eq!(kw(b'4', false, &arqc, true), [b"KX00".as_slice(), &arpc].concat());
    let mut bad = arqc.clone();
    bad[7] ^= 1;
    assert_eq!(kw(b'0', true, &bad, false), b"KX01");
    // Another scheme or mode is not offered.
    assert_eq!(ask(&f, &format!("KW01{mk}")), "KX68");
    assert_eq!(ask(&f, &format!("KW92{mk}")), "KX68");

    assert_eq!(ask(&f, &format!("9A{mk}4761739001010010;00")), "9B007C89E3641F4FE9CDFD8989B02FF149CB1324AC");
    assert_eq!(ask(&f, &format!("9A{mk}47617390;00")), "9B15");
}

/// `JE`/`JG`: a PIN from a TPK to the LMK and from the LMK to a ZPK. The PIN under the LMK is
/// hsm-sim's own encoding (ISO 0 block under LMK pair 02-03; payShield's is unpublished), computed by
/// psec in tests/payshield_vectors.py; the ZPK block is psec's, as in `pin_translation`.
#[test]
fn pin_to_and_from_the_lmk() {
    let f = Front::new(4);
    let (tpk, zpk) = (under_lmk("002", K2), under_lmk("001", K1));
    assert_eq!(ask(&f, &format!("JE{tpk}C880AFA543562BE601433221100996")), "JF00B3059039F391B4A7");
    assert_eq!(ask(&f, &format!("JG{zpk}01433221100996B3059039F391B4A7")), "JH0024B5254F5321BBC2");
    // The PIN under the LMK of another account is not a valid block for this one.
    assert_eq!(ask(&f, &format!("JG{zpk}01433221100997B3059039F391B4A7")), "JH20");
    // A malformed PIN block field.
    assert_eq!(ask(&f, &format!("JE{tpk}C880AFA5435G2BE601433221100996")), "JF15");
}

/// psec 1.3.0's docstring example of an ISO 9564-1 format 4 block: PIN 1234, PAN 1234567890123456,
/// AES-128 key 00112233…EEFF.
const ISO4_KEY: &str = "00112233445566778899AABBCCDDEEFF";
const ISO4_BLOCK: &str = "E4BE5B623AF7E006AC319E5B93544564";
/// NIST SP 800-38A's AES-256 key, as a second AES PIN key.
const AES256: &str = "603DEB1015CA71BE2B73AEF0857D77811F352C073B6108D72D9810A30914DFF4";

/// `CA`/`CC` with AES PIN keys (key blocks of algorithm `A`) and format 4 (`48`), and between format
/// 4 and formats 0/3 under TDES keys. Expected blocks: psec 1.3.0 (tests/payshield_vectors.py). A
/// format 4 answer has a random pad, so it is checked by translating it on to format 0 under a TDES
/// key, whose block psec computes.
#[test]
fn aes_pin_translation() {
    let f = Front::new(4);
    let zpk_aes = key_block("#P0B00N&A1", ISO4_KEY);
    let zpk_aes256 = key_block("#P0B00N&A3", AES256);
    let tpk_aes256 = key_block("#P0B00N&A3", AES256);
    let zpk_k1 = under_lmk("001", K1);
    let zpk_k2 = under_lmk("001", K2);
    let pan = "161234567890123456";
    // psec: encode_pinblock_iso_0("1234", "1234567890123456") under K1 / K2 (encrypt_tdes_ecb).
    let want_k1 = "CD0004E5639CBC7EC0B4CA01";
    let k2_block = "7D7EB80C9A83202D";

    // AES (format 4) → TDES (format 0).
    assert_eq!(ask(&f, &format!("CC{zpk_aes}{zpk_k1}12{ISO4_BLOCK}4801{pan}")), want_k1);
    // CA from an AES-256 TPK: psec encipher_pinblock_iso_4(AES256, "987654", "4761739001010010") gave
    // the source block; the destination is psec's format 0 block of that PIN and PAN under K1.
    let tail = "1231A9D5EF14939401295F7C8AC776FFBB4801164761739001010010";
    assert_eq!(ask(&f, &format!("CA{tpk_aes256}{zpk_k1}{tail}")), "CB00063456D92743E69E5E01");

    // TDES (format 0) → AES (format 4), then back to format 0 under K1.
    let out = ask(&f, &format!("CC{zpk_k2}{zpk_aes}12{k2_block}0148{pan}"));
    assert!(out.starts_with("CD0004") && out.ends_with("48") && out.len() == 6 + 32 + 2, "{out}");
    let iso4 = &out[6..38];
    assert_eq!(ask(&f, &format!("CC{zpk_aes}{zpk_k1}12{iso4}4801{pan}")), want_k1);
    // Format 3 → format 4 too.
    let out3 = ask(&f, &format!("CC{zpk_k2}{zpk_k1}12{k2_block}0147{}", &pan[5..17]));
    assert!(out3.starts_with("CD0004") && out3.ends_with("47"), "{out3}");
    let out = ask(&f, &format!("CC{zpk_k1}{zpk_aes}12{}4748{pan}", &out3[6..22]));
    assert!(out.starts_with("CD0004") && out.ends_with("48"), "{out}");
    assert_eq!(ask(&f, &format!("CC{zpk_aes}{zpk_k1}12{}4801{pan}", &out[6..38])), want_k1);

    // AES-128 → AES-256 (format 4 → 4), then to format 0 under K1.
    let out = ask(&f, &format!("CC{zpk_aes}{zpk_aes256}12{ISO4_BLOCK}4848{pan}"));
    assert!(out.starts_with("CD0004") && out.ends_with("48") && out.len() == 40, "{out}");
    assert_ne!(&out[6..38], ISO4_BLOCK);
    assert_eq!(ask(&f, &format!("CC{zpk_aes256}{zpk_k1}12{}4801{pan}", &out[6..38])), want_k1);

    // An AES-128 ZPK generated by `A0` (`&A1`) serves the same round trip.
    let generated = ask(&f, "A00001S#P0B00N&A1");
    assert!(generated.starts_with("A100SD") && &generated[10..13] == "P0A", "{generated}");
    let zpk_gen = &generated[4..generated.len() - 6];
    let out = ask(&f, &format!("CC{zpk_k2}{zpk_gen}12{k2_block}0148{pan}"));
    assert!(out.starts_with("CD0004") && out.ends_with("48"), "{out}");
    assert_eq!(ask(&f, &format!("CC{zpk_gen}{zpk_k1}12{}4801{pan}", &out[6..38])), want_k1);
}

/// Malformed and mismatched AES `CA`/`CC` requests: an error code each, never a panic.
#[test]
fn aes_pin_translation_errors() {
    let f = Front::new(4);
    let zpk_aes = key_block("#P0B00N&A1", ISO4_KEY);
    let zpk_k1 = under_lmk("001", K1);
    let pan = "161234567890123456";
    // Format 4 under a TDES key, formats 0/3 under an AES key: 23.
    assert_eq!(ask(&f, &format!("CC{zpk_k1}{zpk_aes}127D7EB80C9A83202D4848{pan}")), "CD23");
    assert_eq!(ask(&f, &format!("CC{zpk_aes}{zpk_k1}12{ISO4_BLOCK}0101123456789012")), "CD23");
    assert_eq!(ask(&f, &format!("CC{zpk_aes}{zpk_k1}12{ISO4_BLOCK}4848{pan}")), "CD23");
    assert_eq!(ask(&f, &format!("CC{zpk_aes}{zpk_k1}12{ISO4_BLOCK}4802{pan}")), "CD23");
    // Another PAN: the block does not decode (20).
    assert_eq!(ask(&f, &format!("CC{zpk_aes}{zpk_k1}12{ISO4_BLOCK}4801161234567890123457")), "CD20");
    // PIN longer than the maximum (24).
    assert_eq!(ask(&f, &format!("CC{zpk_aes}{zpk_k1}03{ISO4_BLOCK}4801{pan}")), "CD24");
    // PAN length out of 08–19, short PAN, non-digits, a short block (15).
    for bad in ["0712345678", "201234567890123456789", "1612345678", "16123456789012345X", "1"] {
        assert_eq!(ask(&f, &format!("CC{zpk_aes}{zpk_k1}12{ISO4_BLOCK}4801{bad}")), "CD15", "{bad}");
    }
    assert_eq!(ask(&f, &format!("CC{zpk_aes}{zpk_k1}12{}", &ISO4_BLOCK[..20])), "CD15");
    // An AES key block of another usage where a ZPK is expected (04).
    let bdk = key_block("#B0X00N&A1", ISO4_KEY);
    assert_eq!(ask(&f, &format!("CC{bdk}{zpk_k1}12{ISO4_BLOCK}4801{pan}")), "CD04");
    // The TDES-only PIN commands refuse format 48 (23).
    let pvk = under_lmk("002", K1);
    assert_eq!(ask(&f, &format!("EC{zpk_k1}{pvk}7D7EB80C9A83202D4812345678901234021")), "ED23");
}

/// `G0` with an AES BDK: ANSI X9.24-3-2017 AES DUKPT. The supplementary test vectors' format 4 PIN
/// blocks (BDK FEDCBA9876543210F1F1F1F1F1F1F1F1, KSN 1234567890123456 ‖ counter 1 and 2, PIN 1234,
/// PAN 4111111111111111) translated to format 0 under ZPK K1: psec's encode_pinblock_iso_0 and
/// encrypt_tdes_ecb give 2A3D408A1977DDE9.
#[test]
fn aes_dukpt_pin_translation() {
    let f = Front::new(4);
    let bdk = key_block("#B0X00N&A1", "FEDCBA9876543210F1F1F1F1F1F1F1F1");
    let zpk_k1 = under_lmk("001", K1);
    let zpk_aes = key_block("#P0B00N&A1", ISO4_KEY);
    let pan = "164111111111111111";
    let c1 = "123456789012345600000001A912150391AB65A67E52883D81CE2D15";
    let c2 = "12345678901234560000000252A00503BD34BA1383F6A7EE9FE2547F";
    assert_eq!(ask(&f, &format!("G0{bdk}{zpk_k1}A05{c1}4801{pan}")), "G100042A3D408A1977DDE901");
    assert_eq!(ask(&f, &format!("G0{bdk}{zpk_k1}A05{c2}4801{pan}")), "G100042A3D408A1977DDE901");
    // To an AES ZPK (format 4), then on to format 0 under K1.
    let out = ask(&f, &format!("G0{bdk}{zpk_aes}A05{c2}4848{pan}"));
    assert!(out.starts_with("G10004") && out.ends_with("48") && out.len() == 40, "{out}");
    assert_eq!(ask(&f, &format!("CC{zpk_aes}{zpk_k1}12{}4801{pan}", &out[6..38])), "CD00042A3D408A1977DDE901");
    // The other counter's block under this KSN does not decode (20); counter 0 is no transaction KSN
    // (15); a TDES format under the AES DUKPT key (23); a 20H KSN leaves the fields short (15); a BDK
    // key block of another usage (04).
    let ksn1 = "123456789012345600000001";
    assert_eq!(ask(&f, &format!("G0{bdk}{zpk_k1}A05{ksn1}{}4801{pan}", &c2[24..])), "G120");
    assert_eq!(ask(&f, &format!("G0{bdk}{zpk_k1}A05123456789012345600000000{}4801{pan}", &c2[24..])), "G115");
    assert_eq!(ask(&f, &format!("G0{bdk}{zpk_k1}A05{c2}0101{}", &pan[5..17])), "G123");
    assert_eq!(ask(&f, &format!("G0{bdk}{zpk_k1}A05{}", &c2[..20])), "G115");
    assert_eq!(ask(&f, &format!("G0{zpk_aes}{zpk_k1}A05{c2}4801{pan}")), "G104");
    // The TDES path is unchanged: a TDES DUKPT block with format 48 is refused (23).
    let tdes_bdk = under_lmk("009", K1);
    let zpk = under_lmk("001", K1);
    assert_eq!(ask(&f, &format!("G0{tdes_bdk}{zpk}605FFFF9876543210E000011B9C1845EB993A7A4801{pan}")), "G123");
}
