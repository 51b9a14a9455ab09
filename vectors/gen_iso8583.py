#!/usr/bin/env python3
"""Generates the ISO 8583 conformance vectors:

- vectors/iso8583.json: every expected value computed by pyiso8583 4.0.1 with its
  `iso8583.specs.default_ascii` spec, unmodified (it already sends DE52 and DE55 as hex text, as
  docs/iso8583.md "Wire format" asks, so nothing in it had to change). Valid cases: pyiso8583
  encodes the field dict (`iso8583.encode`) or decodes the bytes (`iso8583.decode`); error cases
  are inputs pyiso8583 itself rejects (the script asserts it raises).
- vectors/iso8583-dialect.json: inputs pyiso8583 (which checks no character sets) accepts, but
  docs/iso8583.md "Wire format" and ISO 8583:1987 make malformed: a
  4-digit MTI, `n` fields digits only, DE55 hex text of BER-TLV (EMV Book 3 Annex B), no tertiary
  bitmap (bit 65). The expected value there is `{"error": "format"}` from the standard; the script
  asserts that pyiso8583 does *not* reject them, so the file lists exactly where the two codecs
  differ.

DE55 request data is a Visa CVN 18 ARQC computed by pyemv 1.5.0 (`pyemv.cvn.VisaCVN18`, the
issuer master key of its docstring example) over the message's own PAN, amount and currency; the
response's tag 91 is pyemv's ARPC (method 2) + CSU.

Run from the repository root: python3 vectors/gen_iso8583.py (no arguments; output is deterministic).
"""

import copy
import json
import os
import warnings

import iso8583
import iso8583.specs
import pyemv

warnings.filterwarnings("ignore")  # cryptography's TripleDES deprecation notices from pyemv

assert iso8583.__version__ == "4.0.1", iso8583.__version__
SPEC = iso8583.specs.default_ascii
HERE = os.path.dirname(os.path.abspath(__file__))


# ---------------------------------------------------------------- helpers


def luhn_complete(partial):
    total = 0
    for i, ch in enumerate(reversed(partial)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return partial + str((10 - total % 10) % 10)


def tlv(tag, value):
    """One BER-TLV object, encoded by pyemv."""
    return pyemv.tlv.encode({tag: value}).hex().upper()


def encode(fields):
    raw, _ = iso8583.encode(copy.deepcopy(fields), SPEC)
    return bytes(raw)


def decode(raw):
    dec, _ = iso8583.decode(raw, SPEC)
    # Bitmaps are derived from the fields present; the vector format has only "t" and DEs.
    return {k: v for k, v in dec.items() if k not in ("p", "1")}


def ordered(fields):
    keys = sorted((k for k in fields if k != "t"), key=int)
    out = {"t": fields["t"]} if "t" in fields else {}
    out.update((k, fields[k]) for k in keys)
    return out


class Suite:
    def __init__(self):
        self.cases = []
        self.ids = set()

    def add(self, case):
        assert case["id"] not in self.ids, case["id"]
        self.ids.add(case["id"])
        self.cases.append(case)

    def encode(self, cid, fields):
        """An encode case; the same bytes decode back to the fields (checked with pyiso8583)."""
        raw = encode(fields)
        assert decode(raw) == fields, cid
        self.add({"id": cid, "op": "iso8583.encode", "in": {"fields": ordered(fields)},
                  "out": {"message": raw.hex().upper()}})
        return raw

    def decode(self, cid, raw):
        fields = decode(raw)
        self.add({"id": cid, "op": "iso8583.decode", "in": {"message": raw.hex().upper()},
                  "out": {"fields": ordered(fields)}})
        return fields

    def both(self, cid, fields):
        raw = self.encode(cid + "-encode", fields)
        self.decode(cid + "-decode", raw)
        return raw

    def decode_error(self, cid, raw, pyiso_rejects=True):
        try:
            iso8583.decode(raw, SPEC)
            rejected = False
        except (iso8583.DecodeError, KeyError):
            rejected = True
        assert rejected == pyiso_rejects, (cid, rejected)
        self.add({"id": cid, "op": "iso8583.decode", "in": {"message": raw.hex().upper()},
                  "out": {"error": "format"}})

    def encode_error(self, cid, fields, pyiso_rejects=True):
        try:
            iso8583.encode(copy.deepcopy(fields), SPEC)
            rejected = False
        except iso8583.EncodeError:
            rejected = True
        assert rejected == pyiso_rejects, (cid, rejected)
        self.add({"id": cid, "op": "iso8583.encode", "in": {"fields": fields},
                  "out": {"error": "format"}})


# ---------------------------------------------------------------- data

TOKEN = luhn_complete("941000123456789")  # a one-time token (16 digits, Luhn)
CARD = "4761739001010010"  # Visa test card number
assert luhn_complete(CARD[:-1]) == CARD
ACQ = "12345"
TID = "TERM0001"
MID = "MERCHANT0000001"

cvn18 = pyemv.cvn.VisaCVN18(
    iss_mk_ac=bytes.fromhex("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
    iss_mk_smi=bytes.fromhex("BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"),
    iss_mk_smc=bytes.fromhex("CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC"),
    pan=TOKEN,
    psn="00",
)
ICC = {
    "9F02": "000000012500",  # amount 12 500 (KRW has no minor unit)
    "9F03": "000000000000",
    "9F1A": "0410",  # Korea
    "95": "0000000000",
    "5F2A": "0410",  # KRW
    "9A": "250612",
    "9C": "00",
    "9F37": "52BF4585",
    "82": "2000",
    "9F36": "0042",
    "9F10": "06011203A0B800",
}
ARQC = cvn18.generate_ac(**{"tag_" + k.lower(): bytes.fromhex(v) for k, v in ICC.items()})
ARPC = cvn18.generate_arpc(tag_9f26=ARQC, tag_9f36=bytes.fromhex(ICC["9F36"]), csu=bytes.fromhex("00000000"))
DE55_REQUEST = (
    tlv("9F26", ARQC.hex().upper())
    + tlv("9F27", "80")
    + "".join(tlv(k, v) for k, v in ICC.items())
    + tlv("5F34", "00")
)
DE55_RESPONSE = tlv("91", ARPC.hex().upper() + "00000000")


def de90(mti, stan, de7, de32):
    return mti + stan + de7 + de32.rjust(11, "0") + "0" * 11


# ---------------------------------------------------------------- iso8583.json

main = Suite()

# 0100/0110: terminal tokenization (docs/iso8583.md "Terminal tokenization").
main.both("0100-tokenize", {"t": "0100", "2": CARD, "3": "900000", "7": "0612143015", "11": "000101",
                            "14": "2812", "22": "051", "41": TID, "42": MID})
main.both("0110-tokenized", {"t": "0110", "3": "900000", "7": "0612143015", "11": "000101", "39": "00",
                             "41": TID, "42": MID, "48": "TK16" + TOKEN})
main.both("0110-declined", {"t": "0110", "3": "900000", "7": "0612143015", "11": "000102", "39": "14",
                            "41": TID, "42": MID})

# 0200/0210: contactless purchase with a CVN 18 ARQC in DE55, and its approval with tag 91.
PURCHASE = {"t": "0200", "2": TOKEN, "3": "000000", "4": "000000012500", "7": "0612143015", "11": "000123",
            "12": "143015", "13": "0612", "14": "2812", "22": "071", "23": "000", "25": "00", "32": ACQ,
            "37": "516314000123", "41": TID, "42": MID, "49": "410", "55": DE55_REQUEST}
main.both("0200-contactless-arqc", PURCHASE)
main.both("0210-approved-arpc", {"t": "0210", "2": TOKEN, "3": "000000", "4": "000000012500", "7": "0612143015",
                                 "11": "000123", "32": ACQ, "37": "516314000123", "38": "A1B2C3", "39": "00",
                                 "41": TID, "42": MID, "49": "410", "55": DE55_RESPONSE})
main.both("0200-manual-no-icc", {"t": "0200", "2": TOKEN, "3": "000000", "4": "000000005000", "7": "0612143100",
                                 "11": "000124", "14": "2812", "22": "012", "25": "00", "32": ACQ, "41": TID,
                                 "42": MID, "49": "410"})
main.both("0210-insufficient-funds", {"t": "0210", "3": "000000", "4": "000000005000", "7": "0612143100",
                                      "11": "000124", "32": ACQ, "39": "51", "41": TID, "42": MID, "49": "410"})

# 0200 refund (DE3 20xxxx) naming the original in DE90: a secondary bitmap.
main.both("0200-refund-de90", {"t": "0200", "2": TOKEN, "3": "200000", "4": "000000002500", "7": "0613090000",
                               "11": "000200", "22": "012", "32": ACQ, "41": TID, "42": MID, "49": "410",
                               "90": de90("0200", "000123", "0612143015", ACQ)})

# 0400/0410 reversal and 0420/0430 reversal advice.
main.both("0400-reversal", {"t": "0400", "2": TOKEN, "3": "000000", "4": "000000012500", "7": "0612143115",
                            "11": "000125", "32": ACQ, "41": TID, "42": MID, "49": "410",
                            "90": de90("0200", "000123", "0612143015", ACQ)})
main.both("0410-reversal-response", {"t": "0410", "3": "000000", "4": "000000012500", "7": "0612143115",
                                     "11": "000125", "32": ACQ, "39": "00", "41": TID, "42": MID,
                                     "90": de90("0200", "000123", "0612143015", ACQ)})
main.both("0420-reversal-advice", {"t": "0420", "2": CARD, "3": "000000", "4": "000000012500", "7": "0612143200",
                                   "11": "000900", "32": "99999999999", "41": TID, "42": MID, "49": "410",
                                   "90": de90("0200", "000899", "0612143130", "99999999999")})
main.both("0430-advice-response", {"t": "0430", "7": "0612143200", "11": "000900", "39": "00", "41": TID,
                                   "90": de90("0200", "000899", "0612143130", "99999999999")})

# 0800/0810 echo (DE70 301).
main.both("0800-echo", {"t": "0800", "7": "0612143015", "11": "000001", "70": "301"})
main.both("0810-echo", {"t": "0810", "7": "0612143015", "11": "000001", "39": "00", "70": "301"})

# Secondary bitmap with high fields, DE128 MAC as hex text, DE52 PIN block as hex text.
main.both("secondary-high-fields", {"t": "0200", "2": CARD, "3": "000000", "4": "000000001000", "11": "000301",
                                    "52": "0412AC89ABCDEF67", "100": "1234", "102": "ACCOUNT-1",
                                    "128": "0123456789ABCDEF"})
main.both("only-de128", {"t": "0800", "128": "FEDCBA9876543210"})
main.both("no-fields", {"t": "0800"})

# LLVAR / LLLVAR boundaries.
main.both("llvar-empty-pan", {"t": "0200", "2": "", "11": "000001"})
main.both("llvar-max-pan-19", {"t": "0200", "2": "4761739001010010123", "11": "000001"})
main.both("llvar-max-de32-11", {"t": "0200", "11": "000001", "32": "12345678901"})
main.both("llvar-max-track2-37", {"t": "0200", "11": "000001", "35": "4761739001010010=2812201123456789012"})
main.both("lllvar-empty-de48", {"t": "0110", "11": "000001", "48": ""})
main.both("lllvar-max-de48-999", {"t": "0110", "11": "000001", "48": ("TK16" + TOKEN + " abc-XYZ~!") * 33})
main.both("lllvar-empty-de55", {"t": "0210", "11": "000001", "55": ""})
# DE55 at its maximum: 510 hex characters, one 255-byte object (3-byte tag, long-form length 81 FA).
DE55_MAX = tlv("DF8101", "AB" * 250)
assert len(DE55_MAX) == 510
main.both("lllvar-max-de55-510", {"t": "0200", "11": "000001", "55": DE55_MAX})
main.both("de55-constructed-long-form", {"t": "0210", "11": "000001",
                                         "55": DE55_RESPONSE + pyemv.tlv.encode(
                                             {"71": {"9F18": "00000001", "86": "84" + "00" * 129}}).hex().upper()})


# Every data element 2–128 (but 65) at once: at its maximum length, and at its minimum.
def sample(de, spec, longest):
    n = spec["max_len"]
    if spec["len_type"] != 0 and not longest:
        n = 0
    if de == 55:
        return DE55_MAX if longest else ""
    if de in (52, 64, 96, 128):
        return ("0123456789ABCDEF" * 4)[:n]
    if de in (28, 29, 30, 31, 97):
        return "D" + "0" * (n - 2) + "1"
    if de in (35, 36):
        return ("4761739001010010=2812" * 10)[:n]
    numeric = {2, 32, 33, 53, 99, 100} | set(range(3, 28)) | set(range(66, 91))
    if de in numeric:
        return ("1234567890" * 5)[:n]
    text = "".join(chr(c) for c in range(0x20, 0x7F))
    return ((text * 10)[de:])[:n]


for longest, name in ((True, "all-fields-max"), (False, "all-fields-min")):
    fields = {"t": "0200"}
    for de in range(2, 129):
        if de == 65:
            continue
        fields[str(de)] = sample(de, SPEC[str(de)], longest)
    raw = encode(fields)
    assert decode(raw) == fields
    if longest:
        assert len(raw) <= 65535, len(raw)
        main.decode(name + "-decode", raw)
    else:
        main.both(name, fields)

# A secondary bitmap with no DE65–128 set: legal, both codecs decode it (neither encodes it).
main.decode("empty-secondary-bitmap", b"0800" + b"8020000000000000" + b"0000000000000000" + b"000001")

good = encode(PURCHASE)
# A bitmap in lower-case hex (as some terminal libraries write it): read like upper case.
lower = good[:4] + good[4:20].lower() + good[20:]
assert lower != good
main.decode("bitmap-lower-case", lower)

# Errors pyiso8583 reports too.
main.decode_error("err-empty", b"")
main.decode_error("err-mti-truncated", b"02")
main.decode_error("err-mti-not-ascii", b"\xc0200" + good[4:])
main.decode_error("err-bitmap-truncated", good[:14])
main.decode_error("err-bitmap-not-hex", b"0200" + b"ZZ" + good[6:])
main.decode_error("err-truncated-in-de4", good[:4 + 16 + 2 + 16 + 6 + 5])
main.decode_error("err-truncated-last-field", good[:-1])
main.decode_error("err-bitmap-names-absent-field", encode({"t": "0800", "7": "0612143015", "11": "000001"})[:-6])
main.decode_error("err-secondary-bitmap-truncated", b"0800" + b"8220000000000000" + b"04000000")
main.decode_error("err-llvar-length-not-digits", b"0200" + b"4000000000000000" + b"1A" + b"4761739001")
main.decode_error("err-llvar-length-over-max", b"0200" + b"4000000000000000" + b"20" + b"47617390010100101234")
main.decode_error("err-lllvar-length-not-digits", b"0200" + b"0000000000000200" + b"0 4" + b"9F36")
main.decode_error("err-lllvar-de55-over-max", b"0200" + b"0000000000000200" + b"512" + DE55_MAX.encode() + b"AB")
main.decode_error("err-llvar-de44-over-max", b"0110" + b"0000000000100000" + b"26" + b"A" * 26)
main.decode_error("err-trailing-data", good + b"0")
main.decode_error("err-field-not-ascii", encode({"t": "0800", "11": "000001", "41": "TERM0001"})[:-1] + b"\xff")

main.encode_error("err-encode-no-mti", {"11": "000001"})
main.encode_error("err-encode-mti-3-chars", {"t": "020", "11": "000001"})
main.encode_error("err-encode-pan-20", {"t": "0200", "2": "47617390010100101234"})
main.encode_error("err-encode-fixed-short", {"t": "0200", "3": "00000"})
main.encode_error("err-encode-fixed-long", {"t": "0200", "11": "0000001"})
main.encode_error("err-encode-de48-1000", {"t": "0110", "48": "A" * 1000})
main.encode_error("err-encode-de55-512", {"t": "0200", "55": DE55_MAX + "AB"})
main.encode_error("err-encode-not-ascii", {"t": "0200", "43": "CAFE \u00e9" + " " * 34})

# ---------------------------------------------------------------- iso8583-dialect.json

dialect = Suite()
dialect.decode_error("llvar-length-leading-space", b"0200" + b"4000000000000000" + b" 4" + b"4761",
                     pyiso_rejects=False)
dialect.decode_error("llvar-length-plus-sign", b"0200" + b"4000000000000000" + b"+4" + b"4761",
                     pyiso_rejects=False)
dialect.decode_error("mti-not-digits", b"02A0" + good[4:], pyiso_rejects=False)
dialect.decode_error("mti-spaces", b" 200" + good[4:], pyiso_rejects=False)
cut = 4 + 16 + 2 + 16 + 6
dialect.decode_error("de4-not-digits", good[:cut] + b"00000001250X" + good[cut + 12:], pyiso_rejects=False)
dialect.decode_error("de2-not-digits", good[:22] + b"9410A" + good[27:], pyiso_rejects=False)
dialect.decode_error("de41-control-character", encode({"t": "0800", "11": "000001", "41": "TERM\t001"}),
                     pyiso_rejects=False)
dialect.decode_error("de52-not-hex", encode({"t": "0200", "52": "0412AC89ABCDEFGH"}), pyiso_rejects=False)
dialect.decode_error("de55-odd-hex", encode({"t": "0200", "55": "9F36020042A"}), pyiso_rejects=False)
dialect.decode_error("de55-not-hex", encode({"t": "0200", "55": "9F360200ZZ"}), pyiso_rejects=False)
dialect.decode_error("de55-tlv-value-truncated", encode({"t": "0200", "55": "9F36030042"}), pyiso_rejects=False)
dialect.decode_error("de55-tlv-indefinite-length", encode({"t": "0200", "55": "70809F3602004200"}),
                     pyiso_rejects=False)
dialect.decode_error("de55-tlv-bad-child", encode({"t": "0200", "55": "7003" + "9F3602"}), pyiso_rejects=False)
dialect.decode_error("de28-bad-sign", encode({"t": "0200", "28": "X00000100"}), pyiso_rejects=False)
# Bit 65 (tertiary bitmap) is not part of this dialect; pyiso8583 reads a third bitmap and then has no
# spec for DE129+, or reads DE65's 16 characters as that bitmap.
dialect.decode_error("bit-65-tertiary-bitmap", b"0800" + b"8000000000000000" + b"8000000000000000"
                     + b"0000000000000000", pyiso_rejects=False)

dialect.encode_error("encode-de4-not-digits", {"t": "0200", "4": "00000001250X"}, pyiso_rejects=False)
dialect.encode_error("encode-mti-letters", {"t": "ABCD", "11": "000001"}, pyiso_rejects=False)
dialect.encode_error("encode-de55-not-tlv", {"t": "0200", "55": "9F3608"}, pyiso_rejects=False)
dialect.encode_error("encode-de55-odd", {"t": "0200", "55": "9F36020042A"}, pyiso_rejects=False)
dialect.encode_error("encode-de22-letters", {"t": "0200", "22": "07A"}, pyiso_rejects=False)
dialect.encode_error("encode-bitmap-key-65", {"t": "0200", "11": "000001", "65": "0000000000000000"},
                     pyiso_rejects=False)


# ---------------------------------------------------------------- write

def write(name, suite, source, cases):
    path = os.path.join(HERE, name)
    with open(path, "w", encoding="ascii") as f:
        json.dump({"suite": suite, "source": source, "cases": cases}, f, indent=1)
        f.write("\n")
    print(f"{name}: {len(cases)} cases")


write("iso8583.json", "iso8583",
      "pyiso8583 4.0.1 (iso8583.encode/iso8583.decode, spec iso8583.specs.default_ascii unmodified: "
      "ASCII throughout, DE52 and DE55 as hex text as docs/iso8583.md#wire-format says); DE55 ARQC/ARPC by "
      "pyemv 1.5.0 "
      "VisaCVN18; generated by vectors/gen_iso8583.py",
      main.cases)
write("iso8583-dialect.json", "iso8583-dialect",
      "docs/iso8583.md#wire-format (MTI 4 digits, bitmaps 16 hex characters, DE55 BER-TLV as "
      "hex text), "
      "ISO 8583:1987 field attributes (n digits only, x+n, b as hex) and EMV 4.3 Book 3 Annex B (BER-TLV): "
      "format errors that pyiso8583 4.0.1 default_ascii (which checks no character set) accepts; "
      "generated by vectors/gen_iso8583.py",
      dialect.cases)
