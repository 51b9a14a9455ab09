#!/usr/bin/env python3
"""Generates the conformance vectors for the standard primitives of tsp / hsm-sim.

Published values (RFC 4231, RFC 5869, RFC 3394, McGrew & Viega's GCM paper, the widely
published Luhn examples and test card numbers) are copied here verbatim, and the script
ASSERTS that `cryptography` (or Python's standard library, or the independent Luhn below)
reproduces every one of them before anything is written: a transcription error stops the
script. Every other expected value comes from `cryptography` / the standard library, never
from the project's Rust code. Error cases encode the input rules of docs/hsm-and-vectors.md
"Vector file format" (kinds: auth, format, key, range).

Run from anywhere: `python3 vectors/gen_standard.py`. The random seed is fixed, so the
output is byte-for-byte reproducible with the same package versions (named in `source`).

Files written next to this script:
  hmac-sha256.json   hmac.sha256                       (RFC 4231 section 4)
  hkdf-sha256.json   hkdf.sha256                       (RFC 5869 appendix A.1-A.3)
  aes-gcm.json       aes_gcm.encrypt / aes_gcm.decrypt (McGrew & Viega, GCM spec, test cases 1-4, 13-16)
  aes-kw.json        aes_kw.wrap / aes_kw.unwrap       (RFC 3394 section 4.1-4.6)
  luhn.json          luhn.check / luhn.complete        (Luhn mod 10, ISO/IEC 7812-1)
  token.json         token.generate                    (BIN prefix + random digits + Luhn digit)
"""

import hashlib
import hmac as py_hmac
import importlib.metadata as md
import json
import os
import random
import sys

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as c_hmac
from cryptography.hazmat.primitives import keywrap
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SEED = 20240611
OUT = os.path.dirname(os.path.abspath(__file__))
PY = "Python {}.{}".format(*sys.version_info[:2])
CRYPTO = "cryptography {}".format(md.version("cryptography"))
VERSIONS = f"{CRYPTO}, {PY}"
GEN = f"vectors/gen_standard.py, seed {SEED}"

rng = random.Random(SEED)


def rbytes(n: int) -> bytes:
    return bytes(rng.getrandbits(8) for _ in range(n))


def rdigits(n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def h(b: bytes) -> str:
    return b.hex().upper()


def ub(s: str) -> bytes:
    """Published hex (any case, whitespace allowed) to bytes."""
    return bytes.fromhex("".join(s.split()))


def flip(b: bytes, byte: int, bit: int = 0) -> bytes:
    x = bytearray(b)
    x[byte] ^= 1 << bit
    return bytes(x)


def write(name: str, suite: str, source: str, cases: list) -> None:
    ids = [c["id"] for c in cases]
    assert len(ids) == len(set(ids)), f"duplicate ids in {name}"
    for c in cases:
        for k, v in c["out"].items():
            if isinstance(v, str) and k not in ("error", "number"):
                assert v == v.upper(), f"{name} {c['id']}: lower-case hex in out.{k}"
    doc = {"suite": suite, "source": source, "cases": cases}
    with open(os.path.join(OUT, name), "w", encoding="ascii") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    per_op = {}
    for c in cases:
        per_op[c["op"]] = per_op.get(c["op"], 0) + 1
    print(f"{name}: {len(cases)} cases " + ", ".join(f"{k}={v}" for k, v in per_op.items()))


def case(cid: str, op: str, inp: dict, out: dict) -> dict:
    return {"id": cid, "op": op, "in": inp, "out": out}


# ---------------------------------------------------------------- hmac.sha256

def hmac_sha256(key: bytes, data: bytes) -> bytes:
    c = c_hmac.HMAC(key, hashes.SHA256())
    c.update(data)
    mac = c.finalize()
    assert mac == py_hmac.new(key, data, hashlib.sha256).digest()
    return mac


# RFC 4231 section 4.2-4.8: (case, key, data, HMAC-SHA-256). Case 5's published value is
# truncated to 128 bits.
RFC4231 = [
    (1, "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
     "4869205468657265",
     "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (2, "4a656665",
     "7768617420646f2079612077616e7420666f72206e6f7468696e673f",
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    (3, "aa" * 20,
     "dd" * 50,
     "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
    (4, "0102030405060708090a0b0c0d0e0f10111213141516171819",
     "cd" * 50,
     "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
    (5, "0c" * 20,
     "546573742057697468205472756e636174696f6e",
     "a3b6167473100ee06e0c796c2955552b"),
    (6, "aa" * 131,
     "54657374205573696e67204c6172676572205468616e20426c6f636b2d53697a"
     "65204b6579202d2048617368204b6579204669727374",
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
    (7, "aa" * 131,
     "5468697320697320612074657374207573696e672061206c6172676572207468"
     "616e20626c6f636b2d73697a65206b657920616e642061206c61726765722074"
     "68616e20626c6f636b2d73697a6520646174612e20546865206b6579206e6565"
     "647320746f20626520686173686564206265666f7265206265696e6720757365"
     "642062792074686520484d414320616c676f726974686d2e",
     "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
]

# The RFC prints the data of cases 2, 5, 6 and 7 as text too; check the hex against it.
assert ub(RFC4231[1][2]) == b"what do ya want for nothing?"
assert ub(RFC4231[4][2]) == b"Test With Truncation"
assert ub(RFC4231[5][2]) == b"Test Using Larger Than Block-Size Key - Hash Key First"
assert ub(RFC4231[6][2]) == (
    b"This is a test using a larger than block-size key and a larger than block-size data."
    b" The key needs to be hashed before being used by the HMAC algorithm."
)


def gen_hmac() -> list:
    cases = []
    for n, key, data, mac in RFC4231:
        k, d, m = ub(key), ub(data), ub(mac)
        full = hmac_sha256(k, d)
        if n == 5:
            assert len(m) == 16 and full[:16] == m, "RFC 4231 case 5 (truncated)"
            cid = "rfc4231-5-full256"
        else:
            assert full == m, f"RFC 4231 case {n}"
            cid = f"rfc4231-{n}"
        cases.append(case(cid, "hmac.sha256", {"key": h(k), "data": h(d)}, {"mac": h(full)}))
    # (key length, data length): 1-byte keys, empty data, keys around and above the 64-byte
    # SHA-256 block size, data around the padding boundaries (55/56/64 bytes).
    shapes = [(1, 0), (1, 1), (1, 64), (16, 0), (20, 8), (32, 32), (32, 55), (32, 56),
              (63, 100), (64, 64), (65, 0), (65, 65), (100, 200), (131, 1), (200, 1024)]
    for i, (kl, dl) in enumerate(shapes, 1):
        k, d = rbytes(kl), rbytes(dl)
        cases.append(case(f"gen-{i:02d}", "hmac.sha256", {"key": h(k), "data": h(d)},
                          {"mac": h(hmac_sha256(k, d))}))
    return cases


# ---------------------------------------------------------------- hkdf.sha256

def hkdf(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


# RFC 5869 appendix A.1-A.3 (SHA-256): (case, IKM, salt, info, L, PRK, OKM)
RFC5869 = [
    (1, "0b" * 22, "000102030405060708090a0b0c", "f0f1f2f3f4f5f6f7f8f9", 42,
     "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
     "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
     "34007208d5b887185865"),
    (2, bytes(range(0x00, 0x50)).hex(), bytes(range(0x60, 0xb0)).hex(),
     bytes(range(0xb0, 0x100)).hex(), 82,
     "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
     "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
     "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
     "cc30c58179ec3e87c14c01d5c1f3434f1d87"),
    (3, "0b" * 22, "", "", 42,
     "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
     "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
     "9d201395faa4b61a96c8"),
]


def gen_hkdf() -> list:
    cases = []
    for n, ikm, salt, info, length, prk, okm in RFC5869:
        i_, s_, f_ = ub(ikm), ub(salt), ub(info)
        # PRK = HMAC-Hash(salt, IKM), salt defaulting to HashLen zeros (RFC 5869 2.2)
        assert hmac_sha256(s_ or bytes(32), i_) == ub(prk), f"RFC 5869 A.{n} PRK"
        got = hkdf(i_, s_, f_, length)
        assert got == ub(okm) and len(got) == length, f"RFC 5869 A.{n} OKM"
        cases.append(case(f"rfc5869-{n}", "hkdf.sha256",
                          {"ikm": h(i_), "salt": h(s_), "info": h(f_), "len": length},
                          {"okm": h(got)}))
    # (ikm length, salt length, info length, L): empty salt/info, salts above the block
    # size, L on both sides of HashLen multiples, up to the maximum 255*32 = 8160.
    shapes = [(1, 0, 0, 1), (16, 16, 0, 16), (22, 13, 10, 31), (32, 0, 5, 32),
              (32, 32, 32, 33), (80, 80, 80, 64), (64, 64, 0, 65), (65, 65, 1, 100),
              (16, 1, 255, 255), (200, 100, 100, 256), (32, 32, 16, 1000),
              (48, 0, 0, 4096), (20, 7, 3, 8159), (32, 32, 32, 8160), (13, 200, 64, 42)]
    for i, (il, sl, fl, length) in enumerate(shapes, 1):
        i_, s_, f_ = rbytes(il), rbytes(sl), rbytes(fl)
        cases.append(case(f"gen-{i:02d}", "hkdf.sha256",
                          {"ikm": h(i_), "salt": h(s_), "info": h(f_), "len": length},
                          {"okm": h(hkdf(i_, s_, f_, length))}))
    # L above 255 * HashLen is out of range (RFC 5869 2.3); cryptography refuses it too.
    i_, s_, f_ = ub(RFC5869[0][1]), ub(RFC5869[0][2]), ub(RFC5869[0][3])
    for cid, length in [("err-len-8161", 255 * 32 + 1), ("err-len-65536", 65536)]:
        try:
            hkdf(i_, s_, f_, length)
            raise AssertionError(f"cryptography accepted L={length}")
        except ValueError:
            pass
        cases.append(case(cid, "hkdf.sha256",
                          {"ikm": h(i_), "salt": h(s_), "info": h(f_), "len": length},
                          {"error": "range"}))
    return cases


# ---------------------------------------------------------------- aes_gcm

# McGrew & Viega, "The Galois/Counter Mode of Operation (GCM)", appendix B, test cases with
# 96-bit IVs: (case, K, P, A, IV, C, T)
GCM_P = ("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
         "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255")
GCM_P60 = GCM_P[:120]
GCM_A = "feedfacedeadbeeffeedfacedeadbeefabaddad2"
GCM_K3 = "feffe9928665731c6d6a8f9467308308"
GCM_IV3 = "cafebabefacedbaddecaf888"
GCM = [
    (1, "00" * 16, "", "", "00" * 12, "", "58e2fccefa7e3061367f1d57a4e7455a"),
    (2, "00" * 16, "00" * 16, "", "00" * 12,
     "0388dace60b6a392f328c2b971b2fe78", "ab6e47d42cec13bdf53a67b21257bddf"),
    (3, GCM_K3, GCM_P, "", GCM_IV3,
     "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
     "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985",
     "4d5c2af327cd64a62cf35abd2ba6fab4"),
    (4, GCM_K3, GCM_P60, GCM_A, GCM_IV3,
     "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
     "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
     "5bc94fbc3221a5db94fae95ae7121a47"),
    (13, "00" * 32, "", "", "00" * 12, "", "530f8afbc74536b9a963b4f1c4cb738b"),
    (14, "00" * 32, "00" * 16, "", "00" * 12,
     "cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919"),
    (15, GCM_K3 * 2, GCM_P, "", GCM_IV3,
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
     "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
     "b094dac5d93471bdec1a502270e3cc6c"),
    (16, GCM_K3 * 2, GCM_P60, GCM_A, GCM_IV3,
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
     "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
     "76fc6ece0f4e1768cddf8853bb2d551b"),
]


def gcm_encrypt(key: bytes, iv: bytes, aad: bytes, pt: bytes) -> tuple:
    out = AESGCM(key).encrypt(iv, pt, aad)
    return out[:-16], out[-16:]


def gcm_decrypt(key: bytes, iv: bytes, aad: bytes, ct: bytes, tag: bytes) -> bytes:
    return AESGCM(key).decrypt(iv, ct + tag, aad)


def gcm_pair(cid: str, key: bytes, iv: bytes, aad: bytes, pt: bytes, ct: bytes, tag: bytes) -> list:
    return [
        case(f"{cid}-enc", "aes_gcm.encrypt",
             {"key": h(key), "iv": h(iv), "aad": h(aad), "pt": h(pt)},
             {"ct": h(ct), "tag": h(tag)}),
        case(f"{cid}-dec", "aes_gcm.decrypt",
             {"key": h(key), "iv": h(iv), "aad": h(aad), "ct": h(ct), "tag": h(tag)},
             {"pt": h(pt)}),
    ]


def gen_gcm() -> list:
    cases = []
    for n, k, p, a, iv, c, t in GCM:
        k_, p_, a_, iv_, c_, t_ = map(ub, (k, p, a, iv, c, t))
        assert len(iv_) == 12 and len(t_) == 16
        assert gcm_encrypt(k_, iv_, a_, p_) == (c_, t_), f"GCM test case {n} encrypt"
        assert gcm_decrypt(k_, iv_, a_, c_, t_) == p_, f"GCM test case {n} decrypt"
        cases += gcm_pair(f"gcm-tc{n}", k_, iv_, a_, p_, c_, t_)
    # (key length, aad length, pt length): AES-128 and AES-256, empty and non-empty
    # AAD and plaintext, partial and whole blocks.
    shapes = [(16, 0, 0), (32, 0, 0), (16, 16, 0), (32, 20, 0), (16, 0, 1), (32, 0, 15),
              (16, 0, 16), (32, 0, 17), (16, 13, 31), (32, 1, 32), (16, 16, 33),
              (32, 17, 48), (16, 64, 64), (32, 100, 100), (16, 7, 255), (32, 32, 256),
              (16, 0, 1024), (32, 0, 1023), (16, 200, 5), (32, 12, 60)]
    for i, (kl, al, pl) in enumerate(shapes, 1):
        k_, iv_, a_, p_ = rbytes(kl), rbytes(12), rbytes(al), rbytes(pl)
        c_, t_ = gcm_encrypt(k_, iv_, a_, p_)
        assert gcm_decrypt(k_, iv_, a_, c_, t_) == p_
        cases += gcm_pair(f"gen-{i:02d}", k_, iv_, a_, p_, c_, t_)

    # Error cases built on test cases 4 (AES-128) and 16 (AES-256) and 1 (empty everything).
    def tc(n):
        row = next(r for r in GCM if r[0] == n)
        return tuple(map(ub, row[1:]))

    def dec_err(cid, key, iv, aad, ct, tag, kind, check_cryptography=True):
        if check_cryptography:
            try:
                gcm_decrypt(key, iv, aad, ct, tag)
                raise AssertionError(f"cryptography accepted {cid}")
            except InvalidTag:
                pass
        cases.append(case(cid, "aes_gcm.decrypt",
                          {"key": h(key), "iv": h(iv), "aad": h(aad), "ct": h(ct), "tag": h(tag)},
                          {"error": kind}))

    def enc_err(cid, key, iv, aad, pt, kind):
        cases.append(case(cid, "aes_gcm.encrypt",
                          {"key": h(key), "iv": h(iv), "aad": h(aad), "pt": h(pt)},
                          {"error": kind}))

    k4, p4, a4, iv4, c4, t4 = tc(4)
    k16, p16, a16, iv16, c16, t16 = tc(16)
    k1, p1, a1, iv1, c1, t1 = tc(1)
    dec_err("err-tag-flip", k4, iv4, a4, c4, flip(t4, 0, 0), "auth")
    dec_err("err-tag-flip-last", k16, iv16, a16, c16, flip(t16, 15, 7), "auth")
    dec_err("err-tag-flip-empty", k1, iv1, a1, c1, flip(t1, 8, 3), "auth")
    dec_err("err-ct-flip", k4, iv4, a4, flip(c4, 0, 0), t4, "auth")
    dec_err("err-ct-flip-last", k16, iv16, a16, flip(c16, len(c16) - 1, 7), t16, "auth")
    dec_err("err-aad-flip", k4, iv4, flip(a4, 5, 1), c4, t4, "auth")
    dec_err("err-aad-dropped", k4, iv4, b"", c4, t4, "auth")
    dec_err("err-iv-flip", k16, flip(iv16, 11, 0), a16, c16, t16, "auth")
    dec_err("err-wrong-key", flip(k4, 0, 0), iv4, a4, c4, t4, "auth")
    # A 12-byte IV is required (cryptography itself accepts 8..128-byte nonces, so these are
    # the project's rule, not cryptography's).
    enc_err("err-iv-8-enc", k4, iv4[:8], a4, p4, "format")
    dec_err("err-iv-8-dec", k4, iv4[:8], a4, c4, t4, "format", check_cryptography=False)
    enc_err("err-iv-16-enc", k4, iv4 + iv4[:4], a4, p4, "format")
    enc_err("err-iv-empty-enc", k4, b"", a4, p4, "format")
    # A 20-byte key is no AES key (cryptography: "AESGCM key must be 128, 192, or 256 bits").
    for key in (k4 + k4[:4],):
        try:
            AESGCM(key)
            raise AssertionError("cryptography accepted a 20-byte AES-GCM key")
        except ValueError:
            pass
    enc_err("err-key-20-enc", k4 + k4[:4], iv4, a4, p4, "key")
    dec_err("err-key-20-dec", k4 + k4[:4], iv4, a4, c4, t4, "key", check_cryptography=False)
    return cases


# ---------------------------------------------------------------- aes_kw

# RFC 3394 section 4.1-4.6: (section, KEK, key data, wrapped)
KW_KEK128 = "000102030405060708090A0B0C0D0E0F"
KW_KEK192 = "000102030405060708090A0B0C0D0E0F1011121314151617"
KW_KEK256 = "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F"
KW_KEY128 = "00112233445566778899AABBCCDDEEFF"
KW_KEY192 = "00112233445566778899AABBCCDDEEFF0001020304050607"
KW_KEY256 = "00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F"
RFC3394 = [
    ("4.1", KW_KEK128, KW_KEY128, "1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5"),
    ("4.2", KW_KEK192, KW_KEY128, "96778B25AE6CA435F92B5B97C050AED2468AB8A17AD84E5D"),
    ("4.3", KW_KEK256, KW_KEY128, "64E8C3F9CE0F5BA263E9777905818A2A93C8191E7D6E8AE7"),
    ("4.4", KW_KEK192, KW_KEY192,
     "031D33264E15D33268F24EC260743EDCE1C6C7DDEE725A936BA814915C6762D2"),
    ("4.5", KW_KEK256, KW_KEY192,
     "A8F9BC1612C68B3FF6E6F4FBE30E71E4769C8B80A32CB8958CD5D17D6B254DA1"),
    ("4.6", KW_KEK256, KW_KEY256,
     "28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21"),
]


def kw_pair(cid: str, kek: bytes, key: bytes, wrapped: bytes) -> list:
    return [
        case(f"{cid}-wrap", "aes_kw.wrap", {"kek": h(kek), "key": h(key)}, {"wrapped": h(wrapped)}),
        case(f"{cid}-unwrap", "aes_kw.unwrap", {"kek": h(kek), "wrapped": h(wrapped)}, {"key": h(key)}),
    ]


def gen_kw() -> list:
    cases = []
    for sec, kek, key, wrapped in RFC3394:
        kek_, key_, w_ = ub(kek), ub(key), ub(wrapped)
        assert keywrap.aes_key_wrap(kek_, key_) == w_, f"RFC 3394 {sec} wrap"
        assert keywrap.aes_key_unwrap(kek_, w_) == key_, f"RFC 3394 {sec} unwrap"
        cases += kw_pair(f"rfc3394-{sec.replace('.', '')}", kek_, key_, w_)
    # (KEK length, key length): every AES KEK size, keys of 2..8 semiblocks.
    shapes = [(16, 16), (16, 24), (16, 32), (16, 64), (24, 16), (24, 32), (24, 40),
              (32, 16), (32, 24), (32, 32), (32, 48), (32, 56)]
    for i, (kl, ll) in enumerate(shapes, 1):
        kek_, key_ = rbytes(kl), rbytes(ll)
        w_ = keywrap.aes_key_wrap(kek_, key_)
        assert keywrap.aes_key_unwrap(kek_, w_) == key_
        cases += kw_pair(f"gen-{i:02d}", kek_, key_, w_)

    def unwrap_err(cid, kek_, w_, kind, check_cryptography=True):
        if check_cryptography:
            try:
                keywrap.aes_key_unwrap(kek_, w_)
                raise AssertionError(f"cryptography accepted {cid}")
            except keywrap.InvalidUnwrap:
                pass
        cases.append(case(cid, "aes_kw.unwrap", {"kek": h(kek_), "wrapped": h(w_)}, {"error": kind}))

    def wrap_err(cid, kek_, key_, kind):
        try:
            keywrap.aes_key_wrap(kek_, key_)
            raise AssertionError(f"cryptography accepted {cid}")
        except ValueError:
            pass
        cases.append(case(cid, "aes_kw.wrap", {"kek": h(kek_), "key": h(key_)}, {"error": kind}))

    kek1, key1, w1 = ub(KW_KEK128), ub(KW_KEY128), ub(RFC3394[0][3])
    kek6, key6, w6 = ub(KW_KEK256), ub(KW_KEY256), ub(RFC3394[5][3])
    unwrap_err("err-tamper-first", kek1, flip(w1, 0, 0), "auth")
    unwrap_err("err-tamper-last", kek6, flip(w6, len(w6) - 1, 7), "auth")
    unwrap_err("err-tamper-middle", kek6, flip(w6, 17, 4), "auth")
    unwrap_err("err-wrong-kek", ub(KW_KEK256)[:16][::-1], w1, "auth")
    wrap_err("err-key-20", kek1, ub(KW_KEY192)[:20], "format")
    wrap_err("err-key-15", kek1, key1[:15], "format")
    wrap_err("err-key-8", kek1, key1[:8], "format")
    wrap_err("err-key-empty", kek1, b"", "format")
    wrap_err("err-key-33", kek6, key6 + b"\x00", "format")
    kek20 = ub(KW_KEK256)[:20]
    wrap_err("err-kek-20-wrap", kek20, key1, "key")
    unwrap_err("err-kek-20-unwrap", kek20, w1, "key", check_cryptography=False)
    return cases


# ---------------------------------------------------------------- luhn

DIGITS = "0123456789"


def luhn_sum_ok(number: str) -> bool:
    """Independent Luhn check (ISO/IEC 7812-1 Annex B): ASCII digits only, non-empty."""
    if not number or any(ch not in DIGITS for ch in number):
        return False
    total = 0
    for pos, ch in enumerate(reversed(number)):
        d = ord(ch) - 48
        if pos % 2 == 1:
            d = d * 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def luhn_check_digit(partial: str) -> str:
    """Check digit by the 'double every second digit from the right of the payload' rule."""
    if not partial or any(ch not in DIGITS for ch in partial):
        raise ValueError("format")
    s = 0
    for pos, ch in enumerate(reversed(partial)):
        d = int(ch) * (2 if pos % 2 == 0 else 1)
        s += d // 10 + d % 10
    return str((10 - s % 10) % 10)


# The widely published Luhn example (check digit of 7992739871 is 3) and the public test card
# numbers of the schemes / payment processors: every one must pass both implementations.
PUBLISHED_VALID = [
    ("pub-79927398713", "79927398713"),
    ("visa-4111111111111111", "4111111111111111"),
    ("visa-4012888888881881", "4012888888881881"),
    ("visa13-4222222222222", "4222222222222"),
    ("mc-5555555555554444", "5555555555554444"),
    ("mc-5105105105105100", "5105105105105100"),
    ("mc2-2223003122003222", "2223003122003222"),
    ("amex-378282246310005", "378282246310005"),
    ("amex-371449635398431", "371449635398431"),
    ("disc-6011111111111117", "6011111111111117"),
    ("disc-6011000990139424", "6011000990139424"),
    ("diners-30569309025904", "30569309025904"),
    ("jcb-3530111333300000", "3530111333300000"),
    ("jcb-3566002020360505", "3566002020360505"),
]
for _cid, _n in PUBLISHED_VALID:
    assert luhn_sum_ok(_n), _cid
    assert luhn_check_digit(_n[:-1]) == _n[-1], _cid
assert luhn_check_digit("7992739871") == "3"


def gen_luhn() -> list:
    cases = []

    def chk(cid, number, valid):
        assert luhn_sum_ok(number) == valid, cid
        cases.append(case(cid, "luhn.check", {"number": number}, {"valid": valid}))

    def comp(cid, partial, number=None):
        if number is None:
            try:
                luhn_check_digit(partial)
                raise AssertionError(cid)
            except ValueError:
                pass
            cases.append(case(cid, "luhn.complete", {"partial": partial}, {"error": "format"}))
        else:
            assert partial + luhn_check_digit(partial) == number and luhn_sum_ok(number), cid
            cases.append(case(cid, "luhn.complete", {"partial": partial}, {"number": number}))

    for cid, n in PUBLISHED_VALID:
        chk(cid, n, True)
    # Wrong numbers: every other check digit of the published ones is invalid.
    for cid, n in PUBLISHED_VALID[:6]:
        bad = n[:-1] + str((int(n[-1]) + 1) % 10)
        chk(f"wrong-{cid}", bad, False)
    chk("wrong-79927398710", "79927398710", False)
    chk("wrong-swap-4111111111111111", "1411111111111111", False)  # adjacent transposition
    chk("wrong-mc-5555555555554440", "5555555555554440", False)
    chk("wrong-amex-378282246310006", "378282246310006", False)
    # Generated: a valid and an invalid number of every length 13..19.
    for length in range(13, 20):
        partial = rng.choice("3456") + rdigits(length - 2)
        good = partial + luhn_check_digit(partial)
        bad = partial + str((int(good[-1]) + 1 + rng.randrange(9)) % 10)
        chk(f"gen-{length}-valid", good, True)
        chk(f"gen-{length}-invalid", bad, False)
    chk("gen-all-zero-16", "0" * 16, True)
    # Non-digit or empty input is never a valid number.
    for cid, n in [("nondigit-spaces", "4111 1111 1111 1111"),
                   ("nondigit-dashes", "4111-1111-1111-1111"),
                   ("nondigit-letter", "411111111111111A"),
                   ("nondigit-leading-space", " 4111111111111111"),
                   ("nondigit-trailing-newline", "4111111111111111\n"),
                   ("nondigit-plus", "+4111111111111111"),
                   ("nondigit-fullwidth", "\uff14\uff11\uff11\uff11" * 4),
                   ("nondigit-arabic-indic", "\u0664\u0661\u0661\u0661" * 4),
                   ("empty", "")]:
        chk(cid, n, False)

    # luhn.complete
    comp("pub-7992739871", "7992739871", "79927398713")
    for cid, n in PUBLISHED_VALID[1:]:
        comp(f"complete-{cid}", n[:-1], n)
    for length in range(12, 19):
        partial = rng.choice("3456") + rdigits(length - 1)
        comp(f"gen-complete-{length + 1}", partial, partial + luhn_check_digit(partial))
    comp("gen-complete-check0", "0" * 15, "0" * 16)
    for cid, p in [("complete-nondigit-letter", "799273987A"),
                   ("complete-nondigit-space", "7992 739871"),
                   ("complete-nondigit-dash", "4111-1111-1111-111"),
                   ("complete-nondigit-fullwidth", "\uff17\uff19\uff19\uff12\uff17\uff13\uff19\uff18\uff17\uff11"),
                   ("complete-empty", "")]:
        comp(cid, p)
    return cases


# ---------------------------------------------------------------- token.generate

def gen_token() -> list:
    cases = []

    def tok(cid, bin_, length, out):
        cases.append(case(cid, "token.generate",
                          {"bin": bin_, "length": length, "seed": h(rbytes(16))}, out))

    bins6 = ["411111", "400000", "555555", "222300", "378282", "601100"]
    bins8 = ["41111111", "45717360", "52851234", "35301113", "62123456"]
    for b in bins6 + bins8:
        for length in (16, 19):
            tok(f"bin{len(b)}-{b}-{length}", b, length, {"valid": True})
    # Several seeds for the same BIN and length.
    for i in range(1, 5):
        tok(f"seed-{i}-411111-16", "411111", 16, {"valid": True})
    # Other lengths inside the rule (bin + 2 <= length <= 19).
    tok("bin6-411111-15", "411111", 15, {"valid": True})
    tok("bin8-45717360-13", "45717360", 13, {"valid": True})
    tok("min-bin6-8", "411111", 8, {"valid": True})
    tok("min-bin8-10", "45717360", 10, {"valid": True})
    # Errors.
    tok("err-bin-letter", "41111A", 16, {"error": "format"})
    tok("err-bin-space", "4111 111", 16, {"error": "format"})
    tok("err-bin-dash", "4111-11", 16, {"error": "format"})
    tok("err-len-bin6-7", "411111", 7, {"error": "range"})
    tok("err-len-bin8-9", "45717360", 9, {"error": "range"})
    tok("err-len-bin8-8", "45717360", 8, {"error": "range"})
    tok("err-len-0", "411111", 0, {"error": "range"})
    tok("err-len-20", "411111", 20, {"error": "range"})
    tok("err-len-bin8-20", "45717360", 20, {"error": "range"})
    tok("err-len-64", "411111", 64, {"error": "range"})
    return cases


def main() -> None:
    write("hmac-sha256.json", "hmac-sha256",
          "RFC 4231 section 4.2-4.8, test cases 1-7 for HMAC-SHA-256 (case 5: the RFC publishes "
          "only the first 128 bits; the case carries the full 256-bit MAC computed by "
          "cryptography and the generator asserts its first 128 bits equal the RFC's); gen-*: "
          f"random keys and data, MACs from cryptography HMAC and Python hmac (which agree); {VERSIONS}; {GEN}",
          gen_hmac())
    write("hkdf-sha256.json", "hkdf-sha256",
          "RFC 5869 appendix A.1-A.3 (HKDF with SHA-256; PRK and OKM checked); gen-*: random "
          "inputs, OKM from cryptography HKDF; err-*: L > 255*HashLen (RFC 5869 section 2.3) "
          f"-> range; {VERSIONS}; {GEN}",
          gen_hkdf())
    write("aes-gcm.json", "aes-gcm",
          "McGrew & Viega, 'The Galois/Counter Mode of Operation (GCM)', appendix B test cases "
          "1-4 (AES-128) and 13-16 (AES-256), 96-bit IVs, 128-bit tags (also in NIST CAVP "
          "gcmEncryptExtIV); gen-*: random inputs, ct/tag from cryptography AESGCM; err-*: "
          "flipped tag/ciphertext/AAD/IV bit or wrong key -> auth (cryptography raises InvalidTag), "
          "IV other than 12 bytes -> format, 20-byte key -> key; "
          f"{VERSIONS}; {GEN}",
          gen_gcm())
    write("aes-kw.json", "aes-kw",
          "RFC 3394 section 4.1-4.6 (AES key wrap, default IV A6A6A6A6A6A6A6A6); gen-*: random "
          "KEKs and keys, wrapped from cryptography.hazmat.primitives.keywrap; err-*: tampered "
          "wrapped key or wrong KEK -> auth, key to wrap not a multiple of 8 bytes or shorter "
          f"than 16 -> format, 20-byte KEK -> key; {VERSIONS}; {GEN}",
          gen_kw())
    write("luhn.json", "luhn",
          "Luhn mod 10 check digit (ISO/IEC 7812-1 Annex B); the widely published example "
          "7992739871 -> check digit 3; public test card numbers of Visa, Mastercard, Amex, "
          "Discover, Diners, JCB; gen-*: random 13- to 19-digit numbers from the independent "
          "Python Luhn in the generator (checked against all published examples); non-ASCII-digit "
          f"or empty input -> valid false / format; {PY}; {GEN}",
          gen_luhn())
    write("token.json", "token",
          "token.generate: the runner generates a token from the seed and reports valid = "
          "Luhn-valid, of the requested length and starting with the BIN; rules: BIN of ASCII "
          "digits (else format), bin length + 2 <= length <= 19 (else range); BINs of 6 and 8 "
          f"digits, lengths 16 and 19 and the boundaries; seeds random; {PY}; {GEN}",
          gen_token())


if __name__ == "__main__":
    main()
