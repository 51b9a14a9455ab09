"""The independent side of tsp's ISO 8583 MACs (docs/iso8583.md "MAC"), built on pyiso8583, psec,
cryptography and pycryptodome (not on tsp's code).

  pyiso_mac.py macs            stdin: [{"alg": "retail"|"cmac", "key": HEX, "data": HEX}, ...]
                               prints the 8-byte MACs (retail: psec's ISO 9797-1 algorithm 3 with
                               padding method 1; cmac: cryptography's AES-CMAC, leftmost 8 bytes)
  pyiso_mac.py pay HOST PORT ALG TAK TERMINAL MERCHANT NUMBER STAN good|bad|none
                               a 0200 in pyiso8583's own `default` spec (binary bitmap, binary DE64)
                               with its MAC computed here over the encoded message before DE64 (or a
                               wrong one, or none); prints the answer and whether its MAC verifies
  pyiso_mac.py unwrap KBPK BLOCK
                               opens a TR-31 key block with psec; prints the key's header, and its
                               check value computed with pycryptodome
"""

import json
import socket
import struct
import sys

import iso8583
import psec.mac
import psec.tr31
from cryptography.hazmat.primitives.cmac import CMAC
from cryptography.hazmat.primitives.ciphers import algorithms
from iso8583.specs import default


def mac(alg, key, data):
    if alg == "retail":
        return psec.mac.generate_retail_mac(key[:8], key[8:16], data, padding=1)
    c = CMAC(algorithms.AES(key))
    c.update(data)
    return c.finalize()[:8]


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError("connection closed")
        data += chunk
    return data


def pay(host, port, alg, tak, terminal, merchant, number, stan, how):
    key = bytes.fromhex(tak)
    req = {
        "t": "0200", "2": number, "3": "000000", "4": "000000001500", "7": "1123103000",
        "11": stan, "12": "193000", "13": "1123", "22": "031", "25": "00", "32": "12345",
        "37": "MA" + stan + "0000", "41": terminal, "42": merchant, "49": "410",
    }
    if how != "none":
        req["64"] = "00" * 8
    raw, _ = iso8583.encode(dict(req), default)
    raw = bytes(raw)
    if how != "none":
        m = mac(alg, key, raw[:-8])
        if how == "bad":
            m = bytes([m[0] ^ 0x01]) + m[1:]
        raw = raw[:-8] + m
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(struct.pack(">H", len(raw)) + raw)
        (n,) = struct.unpack(">H", recv_exact(sock, 2))
        body = recv_exact(sock, n)
    answer, _ = iso8583.decode(body, default)
    has = "64" in answer or "128" in answer
    verified = has and mac(alg, key, body[:-8]) == body[-8:]
    return {"mti": answer["t"], "39": answer.get("39"), "11": answer.get("11"), "41": answer.get("41"),
            "mac": has, "mac_ok": verified}


def main():
    cmd = sys.argv[1]
    if cmd == "macs":
        cases = json.load(sys.stdin)
        print(json.dumps([mac(c["alg"], bytes.fromhex(c["key"]), bytes.fromhex(c["data"])).hex().upper()
                          for c in cases]))
    elif cmd == "pay":
        print(json.dumps(pay(*sys.argv[2:12])))
    elif cmd == "unwrap":
        header, key = psec.tr31.unwrap(bytes.fromhex(sys.argv[2]), sys.argv[3])
        if header.algorithm == "T":
            from Crypto.Cipher import DES3
            kcv = DES3.new(key, DES3.MODE_ECB).encrypt(b"\x00" * 8)[:3]
        else:
            c = CMAC(algorithms.AES(key))
            c.update(b"\x00" * 16)
            kcv = c.finalize()[:3]
        print(json.dumps({"key": key.hex().upper(), "usage": header.key_usage, "algorithm": header.algorithm,
                          "mode": header.mode_of_use, "version": header.version_id, "kcv": kcv.hex().upper()}))


if __name__ == "__main__":
    main()
