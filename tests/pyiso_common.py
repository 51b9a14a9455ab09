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
