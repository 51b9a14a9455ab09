#!/usr/bin/env python3
"""The suite-wide PAN scan: every PAN the tests registered or generated must be absent from every log
line, /metrics snapshot, error body, data directory (every byte of it: the SQLite database, its WAL,
the key store) and stored answer (PostgreSQL) the suite collected (TSP_TEST_COLLECT, see tests/common).
Besides the whole number it looks for the digits a mask hides next to either visible part (first six
+ middle, middle + last four) where that run is long enough (9+ digits) not to occur by chance and
stands where the mask would be (no digit beside it on the masked side); in data directories, where
the first six and last four are stored side by side, the whole number only.
Exit 1, naming the file and the masked PAN, on any find."""
import os
import sys


def exposed(data, needle, what):
    """Whether `needle` stands in `data` as what it is: the whole number anywhere; a partial run
    only where the mask would be beside it — no digit after the digits beyond the first six, none
    before the digits before the last four. A run inside a longer number (a float's noise such as
    0.45700000000000013, a zero-padded RRN such as 000000006876) is not the card's: the whole
    number, or the run next to a mask, space or any other non-digit, is."""
    if what == "the number":
        return needle in data
    at = data.find(needle)
    while at >= 0:
        if what == "digits beyond the first six":
            after = data[at + len(needle):at + len(needle) + 1]
            if not after.isdigit():
                return True
        else:
            before = data[at - 1:at] if at > 0 else b""
            if not before.isdigit():
                return True
        at = data.find(needle, at + 1)
    return False


def main(root):
    pans_file = os.path.join(root, "pans.txt")
    pans = set()
    if os.path.exists(pans_file):
        for line in open(pans_file, encoding="utf-8", errors="replace"):
            p = line.strip()
            if 13 <= len(p) <= 19 and p.isdigit():
                pans.add(p)
    files = []
    for d, _, names in os.walk(root):
        for n in names:
            if n != "pans.txt":
                files.append(os.path.join(d, n))
    needles = []
    for p in sorted(pans):
        masked = f"{p[:6]}…{p[-4:]}"
        needles.append((p, masked, "the number"))
        if len(p) - 4 >= 9:
            needles.append((p[:-4], masked, "digits beyond the first six"))
        if len(p) - 6 >= 9:
            needles.append((p[6:], masked, "digits before the last four"))
    found = 0
    size = 0
    data_root = os.path.join(root, "data") + os.sep
    for f in files:
        data = open(f, "rb").read()
        size += len(data)
        # In a data directory the first six and the last four are stored on purpose, side by side
        # in a row's record, and numeric fields of stored answers run together: a partial match
        # there is no evidence. The whole number is.
        in_data = f.startswith(data_root)
        for needle, masked, what in needles:
            if in_data and what != "the number":
                continue
            if exposed(data, needle.encode(), what):
                print(f"PAN scan: {what} of {masked} in {os.path.relpath(f, root)}")
                found += 1
    logs = sum(1 for f in files if f.endswith((".err", ".out")))
    metrics = sum(1 for f in files if f.endswith(".txt"))
    data_dir = os.path.join(root, "data")
    datas = len(os.listdir(data_dir)) if os.path.isdir(data_dir) else 0
    print(f"== PAN scan: {len(pans)} PANs against {logs} server logs, {metrics} /metrics snapshots, {datas} data "
          f"directories and stored answers, and the error bodies ({size // 1024} KiB): {found} found")
    if not pans or not logs or not datas:
        print("PAN scan: nothing was collected")
        return 1
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
