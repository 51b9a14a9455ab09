"""A terminal built on an independent ISO 8583 library (pyiso8583, spec default_ascii): pays with a
token over tsp's ISO 8583 front and reverses the payment. Usage: pyiso_client.py HOST PORT TOKEN.
Prints the answers' response codes as JSON; exits 1 if an answer is not as expected."""

import json
import socket
import sys

from pyiso_common import call


def main():
    host, port, token = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    purchase = {
        "t": "0200", "2": token, "3": "000000", "4": "000000015000", "7": "1123103000",
        "11": "000101", "12": "193000", "13": "1123", "22": "031", "25": "00", "32": "12345",
        "37": "PY0000000101", "41": "PYTERM01", "42": "PYMERCHANT00001", "49": "410",
    }
    with socket.create_connection((host, port), timeout=10) as sock:
        paid = call(sock, purchase)
        reversal = dict(purchase)
        reversal.update({"t": "0400", "11": "000102", "7": "1123103500",
                         "90": "0200" + "000101" + "1123103000" + "00000012345" + "0" * 11})
        reversed_ = call(sock, reversal)
    result = {"purchase": paid.get("39"), "purchase_mti": paid.get("t"), "stan": paid.get("11"),
              "reversal": reversed_.get("39"), "reversal_mti": reversed_.get("t")}
    print(json.dumps(result))
    ok = result == {"purchase": "00", "purchase_mti": "0210", "stan": "000101",
                    "reversal": "00", "reversal_mti": "0410"}
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
