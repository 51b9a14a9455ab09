"""A terminal built on an independent ISO 8583 library (pyiso8583, spec default_ascii) that keeps a
merchant token instead of the card: it sends the card it read in a 0100 tokenization request (DE3
900000), takes the merchant token out of DE48 (TK + 2-digit length + token), then pays with the token.
Usage: pyiso_tokenize.py HOST PORT PAN EXPIRY MERCHANT. Prints the answers as JSON."""

import json
import socket
import sys

from pyiso_common import call


def token_of(de48):
    if not de48 or not de48.startswith("TK"):
        return None
    n = int(de48[2:4])
    return de48[4:4 + n]


def main():
    host, port, pan, expiry, merchant = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
    merchant = merchant.ljust(15)
    tokenize = {
        "t": "0100", "2": pan, "3": "900000", "4": "000000000000", "7": "1124093000", "11": "000201",
        "12": "183000", "13": "1124", "14": expiry, "22": "051", "32": "12345", "37": "PY0000000201",
        "41": "PYTERM02", "42": merchant, "49": "410",
    }
    with socket.create_connection((host, port), timeout=10) as sock:
        verified = call(sock, tokenize)
        token = token_of(verified.get("48"))
        paid = {}
        if token:
            purchase = {
                "t": "0200", "2": token, "3": "000000", "4": "000000023000", "7": "1124093100",
                "11": "000202", "12": "183100", "13": "1124", "22": "102", "25": "00", "32": "12345",
                "37": "PY0000000202", "41": "PYTERM02", "42": merchant, "49": "410",
            }
            paid = call(sock, purchase)
    print(json.dumps({
        "tokenize_mti": verified.get("t"), "tokenize": verified.get("39"), "de48": verified.get("48"),
        "tokenize_has_de2": "2" in verified, "token": token,
        "purchase_mti": paid.get("t"), "purchase": paid.get("39"),
    }))


if __name__ == "__main__":
    main()
