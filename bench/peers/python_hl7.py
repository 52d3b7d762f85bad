#!/usr/bin/python3
"""python_hl7.py - parse-benchmark peer: the python-hl7 library (Debian python3-hl7).

    /usr/bin/python3 bench/peers/python_hl7.py CORPUS

Run it with Debian's /usr/bin/python3: that is where python3-hl7 is installed
(a pyenv python3 earlier on PATH does not see it).

Reads CORPUS as bytes (not timed), then times, in one go:
  * decoding the bytes as UTF-8 (python-hl7 works on str);
  * splitting into lines at CR, LF or CRLF; a message starts at a line whose
    first 3 characters are "MSH"; empty lines and FHS/BHS/BTS/FTS lines are
    not part of any message;
  * joining each message's lines with CR (python-hl7 splits segments on CR
    only) and hl7.parse() on it, which builds the full tree: segments,
    fields, repetitions, components, sub-components. Escapes are not decoded.
  * counting the segments of each parsed message.
Prints one line of JSON (MB = 10^6 bytes).
"""

import json
import sys
import time

try:
    import hl7
except ImportError:
    sys.stderr.write(
        "python_hl7: cannot import hl7; install Debian's python3-hl7 and run with /usr/bin/python3\n"
    )
    sys.exit(2)

ENVELOPE = ("FHS", "BHS", "BTS", "FTS")


def main():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: python_hl7.py CORPUS\n")
        return 2
    with open(sys.argv[1], "rb") as f:
        data = f.read()

    parse = hl7.parse
    t0 = time.perf_counter()
    text = data.decode("utf-8")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    messages = segments = 0
    cur = None  # lines of the message being collected
    for line in lines:
        if line[:3] == "MSH":
            if cur is not None:
                segments += len(parse("\r".join(cur)))
                messages += 1
            cur = [line]
        elif not line or line[:3] in ENVELOPE:
            continue
        elif cur is not None:
            cur.append(line)
        # A non-empty line before the first MSH belongs to no message: skipped.
    if cur is not None:
        segments += len(parse("\r".join(cur)))
        messages += 1
    seconds = time.perf_counter() - t0

    print(json.dumps({
        "peer": "python-hl7",
        "messages": messages,
        "segments": segments,
        "bytes": len(data),
        "seconds": round(seconds, 4),
        "mb_per_s": round(len(data) / 1e6 / seconds, 2),
        "messages_per_s": round(messages / seconds, 1),
    }, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
