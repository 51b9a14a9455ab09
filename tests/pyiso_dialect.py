"""A terminal of another dialect, built on pyiso8583 (not on tsp's code): `binary` is pyiso8583's own
`iso8583.specs.default` (binary bitmaps, binary DE52/55/64/96/128); `bcd` is its `default_ascii` with
BCD numerics and BCD length prefixes (pyiso_common.bcd_spec). Frames with a 2-byte binary length
(`binary2`) or a 4-byte ASCII one (`ascii4`), optionally after the 5-byte TPDU 60 0001 8002.

Sends a malformed purchase (a byte after the last field) and then a good one on the same
connection. Usage: pyiso_dialect.py HOST PORT DIALECT LENGTH TPDU|-- TOKEN TERMINAL MERCHANT STAN.
Prints both answers as JSON."""

import json
import os
import socket
import struct
import sys

import iso8583
from iso8583.specs import default, default_ascii

from pyiso_common import bcd_spec

SPEC_RS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src", "iso8583", "spec.rs")


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError("connection closed")
        data += chunk
    return data


def send(sock, body, length, tpdu):
    body = tpdu + body
    prefix = struct.pack(">H", len(body)) if length == "binary2" else b"%04d" % len(body)
    sock.sendall(prefix + body)


def receive(sock, length, tpdu):
    if length == "binary2":
        (n,) = struct.unpack(">H", recv_exact(sock, 2))
    else:
        n = int(recv_exact(sock, 4).decode("ascii"))
    body = recv_exact(sock, n)
    return body[: len(tpdu)], body[len(tpdu):]


def main():
    host, port, dialect, length, tpdu_flag, token, terminal, merchant, stan = sys.argv[1:10]
    spec = default if dialect == "binary" else bcd_spec(default_ascii, SPEC_RS)
    tpdu = bytes.fromhex("6000018002") if tpdu_flag == "tpdu" else b""
    purchase = {
        "t": "0200", "2": token, "3": "000000", "4": "000000015000", "7": "1123103000",
        "11": stan, "12": "193000", "13": "1123", "22": "031", "25": "00", "32": "12345",
        "37": "PY" + stan + "0000", "41": terminal, "42": merchant, "49": "410",
    }
    bad = dict(purchase, **{"11": "%06d" % (int(stan) + 1)})
    out = {}
    with socket.create_connection((host, port), timeout=10) as sock:
        raw, _ = iso8583.encode(dict(bad), spec)
        send(sock, bytes(raw) + b"\x00", length, tpdu)
        head, body = receive(sock, length, tpdu)
        answer, _ = iso8583.decode(body, spec)
        out["bad"] = {"mti": answer["t"], "39": answer.get("39"), "11": answer.get("11"),
                      "41": answer.get("41"), "tpdu": head.hex()}
        raw, _ = iso8583.encode(dict(purchase), spec)
        send(sock, bytes(raw), length, tpdu)
        head, body = receive(sock, length, tpdu)
        answer, _ = iso8583.decode(body, spec)
        out["good"] = {"mti": answer["t"], "39": answer.get("39"), "11": answer.get("11"),
                       "41": answer.get("41"), "38": answer.get("38"), "tpdu": head.hex()}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
