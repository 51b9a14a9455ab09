"""A TLS client in Python's standard `ssl` module, for tests/tls.rs: another TLS stack than the
service's rustls talks to its fronts.

    pytls_client.py HOST PORT CA_PEM [--cert PEM --key PEM] iso HEX
        sends one ISO 8583 message (HEX, framed with tsp's 2-byte big-endian length) and prints
        `answer HEX` of the reply
    pytls_client.py HOST PORT CA_PEM [--cert PEM --key PEM] http PATH
        sends GET PATH over HTTP/1.1 and prints the status line, then the body

Exit status 0 with the answer; 2 and `refused: …` when the handshake fails or the server closes the
connection without answering (a client certificate refused, say)."""

import argparse
import socket
import ssl
import struct
import sys


def read_exact(sock, n):
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError("connection closed by the server")
        out += chunk
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("ca")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("mode", choices=["iso", "http"])
    p.add_argument("arg")
    a = p.parse_args()

    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=a.ca)
    if a.cert:
        ctx.load_cert_chain(a.cert, a.key)
    try:
        with socket.create_connection((a.host, a.port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname=a.host) as s:
                if a.mode == "iso":
                    body = bytes.fromhex(a.arg)
                    s.sendall(struct.pack(">H", len(body)) + body)
                    (length,) = struct.unpack(">H", read_exact(s, 2))
                    print("answer", read_exact(s, length).hex())
                    print("version", s.version())
                else:
                    s.sendall(f"GET {a.arg} HTTP/1.1\r\nHost: {a.host}\r\nConnection: close\r\n\r\n".encode())
                    data = b""
                    while True:
                        chunk = s.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    head, _, body = data.partition(b"\r\n\r\n")
                    print(head.split(b"\r\n")[0].decode())
                    print(body.decode(errors="replace"))
    except (ssl.SSLError, ConnectionError, OSError) as e:
        print(f"refused: {e!r}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
