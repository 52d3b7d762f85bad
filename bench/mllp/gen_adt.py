#!/usr/bin/python3
"""gen_adt.py - writes the ADT^A01 messages that Tern's MLLP benchmark sends.

    /usr/bin/python3 bench/mllp/gen_adt.py [--count 200] [--out bench/out/mllp-adt_a01.hl7]

Uses the message builder of the parse benchmark's corpus generator
(bench/gen_corpus.py, class Gen) and keeps only its ADT^A01 messages:
EVN, PID with 3-5 CX identifiers, several names, addresses and phones, PD1,
1-4 NK1, PV1 with 2-4 attending doctors, often PV2, vital-sign OBX, AL1,
DG1, GT1 and IN1; escape sequences from real | ^ & ~ backslash in free text;
about 15% declare MSH-18 "UNICODE UTF-8" and carry non-ASCII names.

Deterministic (fixed --seed, stdlib only). Segments end in CR, each message
is followed by LF. `tern send --count N` cycles through the messages of the
file and gives every copy a unique MSH-10. A summary goes to stdout.
"""

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # bench/, for gen_corpus
from gen_corpus import FACILITIES, RECEIVERS, Gen  # noqa: E402

DEFAULT_OUT = os.path.join(os.path.dirname(HERE), "out", "mllp-adt_a01.hl7")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=200, help="messages to write (default 200)")
    ap.add_argument("--out", default=DEFAULT_OUT, help="output path, default bench/out/mllp-adt_a01.hl7")
    ap.add_argument("--seed", type=int, default=20250101, help="random seed (default fixed)")
    args = ap.parse_args(argv)
    if args.count < 1:
        ap.error("--count must be at least 1")

    g = Gen(args.seed)
    r = g.r
    msgs = []
    utf8_n = segs_n = 0
    while len(msgs) < args.count:
        fac = r.choice(FACILITIES)
        rcv = r.choice(RECEIVERS)
        utf8 = r.random() < 0.15
        segs = g.adt(fac, rcv, utf8)  # A01, A04 or A08; keep the A01s
        if segs[0].split("|", 9)[8] != "ADT^A01^ADT_A01":
            continue
        msgs.append("\r".join(segs) + "\r\n")
        segs_n += len(segs)
        utf8_n += utf8

    data = "".join(msgs).encode("utf-8")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, args.out)
    print("messages  %d ADT^A01 (%d with UNICODE UTF-8), %d segments, %d bytes, %.0f bytes/message"
          % (len(msgs), utf8_n, segs_n, len(data), len(data) / len(msgs)))
    print("file      %s" % args.out)


if __name__ == "__main__":
    main()
