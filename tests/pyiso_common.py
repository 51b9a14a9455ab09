"""What the pyiso8583 terminals share: one request and its answer over tsp's framing (a 2-byte
big-endian length before each message), encoded by pyiso8583's default_ascii spec."""

import socket
import struct

import iso8583
from iso8583.specs import default_ascii as spec


def call(sock, doc):
    raw, _ = iso8583.encode(doc, spec)
    sock.sendall(struct.pack(">H", len(raw)) + bytes(raw))
    header = sock.recv(2, socket.MSG_WAITALL)
    (length,) = struct.unpack(">H", header)
    body = sock.recv(length, socket.MSG_WAITALL)
    answer, _ = iso8583.decode(body, spec)
    return answer


def bcd_spec(spec, spec_rs):
    """The `bcd` dialect as a pyiso8583 spec: `spec` (`default_ascii`) with the MTI and the numeric (`n`)
    fields of tsp's field table (`spec_rs`, src/iso8583/spec.rs) as BCD nibbles (fixed fields padded
    on the left, variable ones on the right), BCD length prefixes (1 byte for LL, 2 for LLL), and
    the binary fields and bitmaps of pyiso8583's own `default` spec."""
    import copy
    import re

    from iso8583.specs import default

    numeric = set()
    for line in open(spec_rs):
        m = re.match(r"\s*Some\((fixed|llvar|lllvar)\(\d+, N, .*// (\d+)", line)
        if m:
            numeric.add(m.group(2))
    out = copy.deepcopy(spec)
    out["t"] = dict(out["t"], data_enc="b", max_len=2)
    for key in ("p", "1", "65"):
        out[key] = copy.deepcopy(default[key])
    for key, f in out.items():
        if not key.isdigit() or key in ("1", "65"):
            continue
        var = f["len_type"] > 0
        if var:
            f["len_enc"] = "bcd"
            f["len_type"] = (f["len_type"] + 1) // 2
        if key in numeric:
            f["data_enc"] = "b"
            f["len_count"] = "nibbles"
            f["right_pad" if var else "left_pad"] = "0"
        elif default[key]["data_enc"] == "b":
            out[key] = dict(copy.deepcopy(default[key]), len_enc=f["len_enc"], len_type=f["len_type"])
    return out
