#!/usr/bin/env python3
"""A test laboratory for tests/fhir_roundtrip.sh (standard library only).

mllp_lab.py LISTEN_PORT RESULT_PORT OUT_DIR

Listens on 127.0.0.1:LISTEN_PORT for HL7 v2 orders over MLLP. For each
order (OML^O21 or ORM^O01) it writes the message to OUT_DIR/order-N.hl7,
answers with an ACK (MSA|AA), then sends an ORU^R01 for the same patient
(PID copied) and placer order number (ORC-2) and code (OBR-4) over MLLP to
127.0.0.1:RESULT_PORT: one OBX, NM 196 mg/dL. The ACK it gets back goes
to OUT_DIR/result-N.ack. Runs until killed.
"""
import os
import socket
import sys
import time

SB, EB, CR = b"\x0b", b"\x1c", b"\x0d"


def read_frame(conn, buf):
    """Returns (message bytes or None at EOF, rest of the buffer)."""
    while True:
        start = buf.find(SB)
        end = buf.find(EB + CR, start + 1) if start >= 0 else -1
        if start >= 0 and end >= 0:
            return buf[start + 1:end], buf[end + 2:]
        data = conn.recv(65536)
        if not data:
            return None, buf
        buf += data


def segments(msg):
    return {s.split("|")[0]: s.split("|") for s in msg.split("\r") if s}


def field(segs, seg, n):
    f = segs.get(seg, [])
    idx = n - 1 if seg == "MSH" else n
    return f[idx] if idx < len(f) else ""


def ack_for(segs):
    now = time.strftime("%Y%m%d%H%M%S")
    return "\r".join([
        "MSH|^~\\&|LAB|GHH LAB|%s|%s|%s||ACK^%s^ACK|A%s|P|2.5.1" % (
            field(segs, "MSH", 3), field(segs, "MSH", 4), now,
            field(segs, "MSH", 9).split("^")[1] if "^" in field(segs, "MSH", 9) else "",
            field(segs, "MSH", 10)),
        "MSA|AA|%s" % field(segs, "MSH", 10), ""])


def result_for(segs, n):
    now = time.strftime("%Y%m%d%H%M%S")
    pid = segs["PID"]
    placer = field(segs, "ORC", 2)
    filler = "F-%d^LAB" % n
    obr = ["OBR", "1", placer, filler, field(segs, "OBR", 4), "", "", field(segs, "OBR", 7)]
    obr += [""] * (25 - 7)
    obr[22], obr[24], obr[25] = now, "LAB", "F"
    return "\r".join([
        "MSH|^~\\&|LAB|GHH LAB|%s|%s|%s||ORU^R01^ORU_R01|R%d-%s|P|2.5.1" % (
            field(segs, "MSH", 3), field(segs, "MSH", 4), now, n, field(segs, "MSH", 10)),
        "|".join(pid),
        "ORC|RE|%s|%s" % (placer, filler),
        "|".join(obr),
        "OBX|1|NM|2093-3^Cholesterol [Mass/volume] in Serum or Plasma^LN||196|mg/dL^^UCUM|<200|N|||F|||%s" % now,
        ""])


def send_result(port, text, ack_path):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(SB + text.encode() + EB + CR)
        ack, _ = read_frame(s, b"")
    with open(ack_path + ".tmp", "wb") as f:
        f.write(ack or b"")
    os.rename(ack_path + ".tmp", ack_path)


def main():
    port, result_port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(4)
    n = 0
    while True:
        conn, _ = srv.accept()
        buf = b""
        with conn:
            while True:
                msg, buf = read_frame(conn, buf)
                if msg is None:
                    break
                n += 1
                text = msg.decode("utf-8", "replace")
                path = os.path.join(out, "order-%d.hl7" % n)
                with open(path + ".tmp", "w") as f:
                    f.write(text)
                os.rename(path + ".tmp", path)
                segs = segments(text)
                conn.sendall(SB + ack_for(segs).encode() + EB + CR)
                if "PID" in segs and "ORC" in segs:
                    send_result(result_port, result_for(segs, n),
                                os.path.join(out, "result-%d.ack" % n))


if __name__ == "__main__":
    main()
