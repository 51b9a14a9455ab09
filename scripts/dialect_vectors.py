"""Writes src/iso8583/dialect-vectors.json: messages encoded by pyiso8583 4.0.1 (an independent
implementation) in the `binary` dialect (its own `iso8583.specs.default`) and the `bcd` dialect (its
`default_ascii` spec with the numeric fields as BCD nibbles, BCD length prefixes and binary `b`
fields). tsp's unit tests decode these bytes and must encode the same messages to them.

Usage: python3 scripts/dialect_vectors.py > src/iso8583/dialect-vectors.json"""

import json
import os
import sys

import iso8583
from iso8583.specs import default

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from pyiso_common import bcd_spec as _bcd_spec  # noqa: E402

SPEC_RS = sys.argv[1] if len(sys.argv) > 1 else "src/iso8583/spec.rs"


def bcd_spec():
    from iso8583.specs import default_ascii

    return _bcd_spec(default_ascii, SPEC_RS)


MESSAGES = [
    {"t": "0200", "2": "4761739001010010", "3": "000000", "4": "000000012500", "7": "0612143015",
     "11": "000123", "22": "051", "25": "00", "32": "12345", "35": "4761739001010010D22122011143804400000",
     "41": "TERM0001", "42": "MERCHANT000001 ", "49": "410", "52": "0123456789ABCDEF",
     "55": "9F2608A1B2C3D4E5F607189F360200019F02060000000125009C0100"},
    {"t": "0210", "3": "000000", "4": "000000012500", "11": "000123", "38": "A1B2C3", "39": "00",
     "41": "TERM0001", "48": "TK164000000000000001", "64": "FEDCBA9876543210"},
    {"t": "0400", "2": "4761739001010010123", "4": "000000012500", "7": "0612143515", "11": "000124",
     "32": "123456", "41": "TERM0001", "90": "0200000123061214301500000012345" + "0" * 11,
     "128": "00112233445566AA"},
    {"t": "0800", "7": "0612143015", "11": "000001", "70": "301"},
]

out = {"source": "pyiso8583 " + "4.0.1", "binary": [], "bcd": []}
for name, spec in (("binary", default), ("bcd", bcd_spec())):
    for doc in MESSAGES:
        raw, _ = iso8583.encode(dict(doc), spec)
        out[name].append({"fields": doc, "hex": bytes(raw).hex().upper()})
print(json.dumps(out, indent=1))
