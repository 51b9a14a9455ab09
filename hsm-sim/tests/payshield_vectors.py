#!/usr/bin/env python3
"""Prints the psec-computed values that tests/payshield.rs pins (psec 1.3.0). The others in that file
are psec docstring examples, FIPS 180 examples or the external-tool LMK vectors, quoted at their use."""
import warnings

import psec

warnings.filterwarnings("ignore", module="psec")
warnings.filterwarnings("ignore", module="pyemv")
K1 = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
K2 = bytes.fromhex("FEDCBA98765432100123456789ABCDEF")
LMK_00_01 = bytes.fromhex("01010101010101017902CD1FD36EF8BA")
ecb = psec.des.encrypt_tdes_ecb
print("nc lmk check value", ecb(LMK_00_01, bytes(8)).hex().upper())
print("K1 under ZMK K2 (X9.17)", ecb(K2, K1).hex().upper())
print("BU K1 16H", ecb(K1, bytes(8)).hex().upper())
print("DC block 4524 / 1122334455667788 under K2", ecb(K2, psec.pinblock.encode_pinblock_iso_0("4524", "1122334455667788")).hex().upper())
clear = psec.pinblock.encode_pinblock_iso_0("1234", "5544332211009966")
print("CA source under K2", ecb(K2, clear).hex().upper(), "dest under K1", ecb(K1, clear).hex().upper())
print("M6 alg3 pad1 K1 1234567890ABCDEF12", psec.mac.generate_retail_mac(K1[:8], K1[8:], bytes.fromhex("1234567890ABCDEF12"), 1).hex().upper())
print("M0 CBC K1 iv 0102030405060708 16 bytes", psec.des.encrypt_tdes_cbc(K1, bytes.fromhex("0102030405060708"), b"0123456789abcdef").hex().upper())

# KQ: pyemv 1.5.0's Visa CVN 10 (scheme 0) and Mastercard CVN 16 (scheme 1), IMK K1, PAN
# 4761739001010010, PSN 00, ARC 3030 ("00").
import pyemv  # noqa: E402

pan, psn = "4761739001010010", "00"
tags = dict(
    tag_9f02=bytes.fromhex("000000001000"), tag_9f03=bytes.fromhex("000000000000"), tag_9f1a=bytes.fromhex("0840"),
    tag_95=bytes.fromhex("0000000000"), tag_5f2a=bytes.fromhex("0840"), tag_9a=bytes.fromhex("261204"),
    tag_9c=bytes.fromhex("00"), tag_9f37=bytes.fromhex("A1B2C3D4"), tag_82=bytes.fromhex("1800"),
    tag_9f36=bytes.fromhex("0042"), cvr=bytes.fromhex("03A00000"),
)
data = b"".join(tags.values())
print("KQ data", data.hex().upper(), len(data))
for name, cls in (("visa cvn10", pyemv.cvn.VisaCVN10), ("mastercard cvn16", pyemv.cvn.MasterCardCVN16)):
    card = cls(K1, K1, K1, pan, psn)
    arqc = card.generate_ac(**tags)
    print("KQ", name, "arqc", arqc.hex().upper(), "arpc", card.generate_arpc(arqc, b"00").hex().upper())
K1_ = K1
print("G0 ISO 0 of 1234 / 4012345678909 under K1", ecb(K1_, psec.pinblock.encode_pinblock_iso_0("1234", "4012345678909")).hex().upper())

# KW scheme 2 (EMV common session key, CVN 18 layout): pyemv 1.5.0's VisaCVN18, IMK K1, PAN
# 4761739001010010, PSN 00, the tags above with 9F10 = 06011203A00000; ARPC method 2 with CSU 00800000.
card = pyemv.cvn.VisaCVN18(K1, K1, K1, pan, psn)
tags18 = dict(tags)
del tags18["cvr"]
tags18["tag_9f10"] = bytes.fromhex("06011203A00000")
data18 = b"".join(tags18.values())
arqc18 = card.generate_ac(**tags18)
print("KW data", data18.hex().upper(), len(data18))
print("KW cvn18 arqc", arqc18.hex().upper(), "arpc2", card.generate_arpc(arqc18, tags18["tag_9f36"], bytes.fromhex("00800000")).hex().upper())
# 9A: pyemv's Option A ICC master key of the same PAN and PSN under K1.
print("9A icc mk", pyemv.kd.derive_icc_mk_a(K1, pan, psn).hex().upper())

# LQ/LS: Python's hmac (SHA-256) under the 32-byte key 00 01 … 1F.
import hashlib, hmac  # noqa: E402

print("LQ", hmac.new(bytes(range(32)), b"tsp payShield LQ vector", hashlib.sha256).hexdigest().upper())

# JE: hsm-sim's own PIN-under-LMK encoding (payShield's is unpublished): the ISO 0 block of PIN 1234 and
# PAN 5544332211009966, TDES-ECB under the test LMK pair 02-03.
LMK_02_03 = bytes.fromhex("20202020202020203131313131313131")
print("JE 1234 under LMK", ecb(LMK_02_03, psec.pinblock.encode_pinblock_iso_0("1234", "5544332211009966")).hex().upper())

# CA/CC/G0 with AES PIN keys and ISO format 4 (48): format 0 blocks under K1/K2 that format 4 blocks
# translate to. The format 4 inputs: psec's docstring block (PIN 1234, PAN 1234567890123456, AES key
# 00112233…EEFF), the X9.24-3-2017 supplementary AES DUKPT blocks (PIN 1234, PAN 4111111111111111),
# and one psec enciphered under NIST SP 800-38A's AES-256 key (PIN 987654, PAN 4761739001010010; its pad
# is random, so it is printed, not compared).
def h(b):
    return b.hex().upper()


AES256 = bytes.fromhex("603DEB1015CA71BE2B73AEF0857D77811F352C073B6108D72D9810A30914DFF4")
print("CC 48->01 K1", h(psec.des.encrypt_tdes_ecb(K1, psec.pinblock.encode_pinblock_iso_0("1234", "1234567890123456"))))
print("CC 01 source under K2", h(psec.des.encrypt_tdes_ecb(K2, psec.pinblock.encode_pinblock_iso_0("1234", "1234567890123456"))))
print("G0 AES DUKPT -> 01 K1", h(psec.des.encrypt_tdes_ecb(K1, psec.pinblock.encode_pinblock_iso_0("1234", "4111111111111111"))))
b4 = psec.pinblock.encipher_pinblock_iso_4(AES256, "987654", "4761739001010010")
assert psec.pinblock.decipher_pinblock_iso_4(AES256, bytes.fromhex("31A9D5EF14939401295F7C8AC776FFBB"), "4761739001010010") == "987654"
print("CA 48 source under AES256 (one draw)", h(b4))
print("CA 48->01 K1", h(psec.des.encrypt_tdes_ecb(K1, psec.pinblock.encode_pinblock_iso_0("987654", "4761739001010010"))))
# The published X9.24-3 PIN working key (counter 1) deciphers the published block to 1234 under psec too.
assert psec.pinblock.decipher_pinblock_iso_4(
    bytes.fromhex("AF8CB133A78F8DC2D1359F18527593FB"), bytes.fromhex("A912150391AB65A67E52883D81CE2D15"), "4111111111111111"
) == "1234"
