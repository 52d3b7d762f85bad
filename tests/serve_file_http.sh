#!/bin/sh
# End-to-end tests of `tern serve` with a file source, HTTP sources and an
# HTTP destination, through real processes on 127.0.0.1: the engine under
# test and a small Python HTTP receiver that records what it is sent and
# answers 500 to its first requests.
#   1. files with one message (LF line ends), several (CRLF, blank lines,
#      junk before the first), an HL7 batch with an invalid message, and a
#      batch of 3000: every message is stored (the invalid one as rejected)
#      and delivered to a file destination and to the HTTP receiver with CR
#      segment ends; the files are moved (a name already taken in move_to
#      gets -1) or deleted;
#   2. a .part file is not taken until renamed; a file still being written
#      is not taken until it has settled;
#   3. HTTP destination: 500s are retried until success; a 400 sends the
#      message straight to the error queue; a refused connection and a
#      receiver that never answers are retried, then end in the error queue
#      with the cause; parallel: 4 posts each of 3000 messages once;
#      `tls` on an http:// URL is refused (https:// is in serve_tls.sh);
#   4. HTTP source: POST a message -> 200 and AA; a bad one -> 422 and AR;
#      a batch -> one ACK per message; GET -> 405; other paths -> 404; a
#      body over max_body -> 413 (on a source with its own listen);
#   5. SIGTERM stops the engine with exit code 0.
# TERN_TEST_VERBOSE=1 prints the engine's log even on success;
# TERN_TEST_KEEP=1 keeps the temporary directory.
set -u
tern=$1
src=$2
. "$src/tests/lib/common.sh"
fail=0
work_dir

need sqlite3 curl python3
q() { caught_up "$db"; sqlite3 -cmd ".timeout 5000" "$db" "$1"; }
# raw_of SQL: the exact bytes of every message the query's ids select, one
# after the other (bodies live in the body log, not in a column)
raw_of() {
    for id in $(q "$1"); do "$tern" messages -c "$tmp/tern.yaml" show "$id" --raw; done
}

# gen FILE TERM ITEM...: writes HL7 text; TERM is cr, lf or crlf; an ITEM is
# m:CTL (a valid ORU^R01), bad:CTL (a segment id that is not valid), junk,
# blank, fhs, bhs, bts:N, fts:N.
gen() {
    python3 - "$@" <<'PY'
import sys
out, term = sys.argv[1], {"cr": "\r", "lf": "\n", "crlf": "\r\n"}[sys.argv[2]]
lines = []
for item in sys.argv[3:]:
    kind, _, arg = item.partition(":")
    msh = "MSH|^~\\&|LAB|HOSP|TERN|HOSP|20240101120000||ORU^R01|%s|P|2.5" % arg
    if kind == "m":
        lines += [msh, "PID|1||P%s^^^HOSP||DOE^JOHN" % arg, "OBX|1|ST|GLU||5.5|mmol/L"]
    elif kind == "bad":
        lines += [msh, "P!D|1||P%s" % arg]
    elif kind == "junk":
        lines += ["this line is not HL7"]
    elif kind == "blank":
        lines += [""]
    elif kind == "fhs":
        lines += ["FHS|^~\\&|LAB|HOSP"]
    elif kind == "bhs":
        lines += ["BHS|^~\\&|LAB|HOSP"]
    elif kind == "bts":
        lines += ["BTS|" + arg]
    elif kind == "fts":
        lines += ["FTS|" + arg]
with open(out, "w", newline="") as f:
    f.write(term.join(lines) + term)
PY
}

HTTP=$(free_port); OWN=$(free_port); RECV=$(free_port); DEAD=$(free_port); HOLE=$(free_port)
mkdir -p "$tmp/in" "$tmp/in2" "$tmp/in3" "$tmp/done" "$tmp/recv"
db="$tmp/var/tern.db"

# The receiver: on /bulk, records each control id in recv/bulk.log; on other
# paths, each 2xx body as recv/CTL.hl7 and every request in
# recv/requests.log, with 500 to the first 2 requests and 400 to a body
# with control id REJECTME.
cat >"$tmp/recv.py" <<'PY'
import http.server, os, sys
import threading
port, outdir, fail_first = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
count = 0
lock = threading.Lock()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def reply(self, code, text):
        self.send_response(code)
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)
    def do_POST(self):
        global count
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path.startswith("/bulk"):
            with lock, open(os.path.join(outdir, "bulk.log"), "a") as f:
                f.write(body.split(b"\r")[0].split(b"|")[9].decode() + "\n")
            return self.reply(200, b"ok")
        count += 1
        with open(os.path.join(outdir, "requests.log"), "a") as f:
            f.write("%d %s %s %s %s\n" % (count, self.path, self.headers.get("Content-Type"),
                                          self.headers.get("X-Test"), self.headers.get("Host")))
        if count <= fail_first:
            code, text = 500, b"busy, try later"
        elif b"|REJECTME|" in body:
            code, text = 400, b"unknown patient"
        else:
            ctl = body.split(b"\r")[0].split(b"|")[9].decode()
            with open(os.path.join(outdir, ctl + ".hl7"), "wb") as f:
                f.write(body)
            code, text = 200, b"ok"
        self.reply(code, text)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
PY
python3 "$tmp/recv.py" "$RECV" "$tmp/recv" 2 >"$tmp/recv.log" 2>&1 &
pids="$pids $!"
# A listener that takes connections and never answers.
python3 - "$HOLE" <<'PY' >/dev/null 2>&1 &
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(16)
held = []
while True:
    held.append(s.accept()[0])
PY
pids="$pids $!"
wait_port "$RECV" && wait_port "$HOLE" || exit 1

cat >"$tmp/tern.yaml" <<YAML
store: { path: ./var/tern.db }
security: { auth: false }   # not about authentication (tests/security_*.sh are)
http: { listen: 127.0.0.1:$HTTP }
channels:
  - name: lab-files
    source: { type: file, dir: ./in, glob: "*", after: move, move_to: ./done,
              poll: 100ms, settle: 1s }
    destinations:
      - { name: archive, type: file, dir: ./out, filename: "\${MSH-10}.hl7" }
      - { name: to-http, type: http, url: "http://127.0.0.1:$RECV/results?x=1",
          headers: { X-Test: "yes" }, timeout: 2s,
          retry: { max_attempts: forever, backoff: 100ms..200ms } }
  - name: drop-files
    source: { type: file, dir: ./in2, glob: "*.hl7", after: delete, poll: 100ms, settle: 0 }
    destinations:
      - { name: refused, type: http, url: "http://127.0.0.1:$DEAD/x", timeout: 1s,
          retry: { max_attempts: 2, backoff: 100ms } }
      - { name: silent, type: http, url: "http://127.0.0.1:$HOLE/x", timeout: 300ms,
          retry: { max_attempts: 2, backoff: 100ms } }
  - name: bulk
    source: { type: file, dir: ./in3, after: delete, poll: 100ms, settle: 0 }
    destinations:
      - { name: fast, type: http, url: "http://127.0.0.1:$RECV/bulk", parallel: 4 }
  - name: lab-http
    source: { type: http }
  - name: own-http
    source: { type: http, listen: 127.0.0.1:$OWN, max_body: 1KiB }
YAML

# A name already taken in move_to: the moved file must not replace it.
echo "an older file" >"$tmp/done/single.hl7"

"$tern" serve -c "$tmp/tern.yaml" >"$tmp/serve.log" 2>&1 &
serve_pid=$!
pids="$pids $serve_pid"
wait_port "$HTTP" && wait_port "$OWN" || { cat "$tmp/serve.log"; exit 1; }

# --- 1, 2: the file source ------------------------------------------------------
gen "$tmp/in/late.hl7.part" cr m:L1
gen "$tmp/in/single.hl7" lf m:S1
gen "$tmp/in/multi.hl7" crlf junk m:M1 blank m:M2 blank blank m:REJECTME m:M3
gen "$tmp/in/batch.hl7" cr fhs bhs m:B1 m:B2 bad:BAD1 m:B3 bts:4 fts:1
gen "$tmp/in2/drop.hl7" cr m:D1
# 3000 messages in one batch: more than the source keeps in flight at once
python3 - "$tmp/in3/bulk.hl7.tmp" <<'PY'
import sys
with open(sys.argv[1], "w", newline="") as f:
    f.write("BHS|^~\\&|LAB\r")
    for i in range(3000):
        f.write("MSH|^~\\&|LAB|HOSP|TERN|HOSP|20240101||ADT^A08|K%d|P|2.5\rPID|1||%d\r" % (i, i))
    f.write("BTS|3000\r")
PY
mv "$tmp/in3/bulk.hl7.tmp" "$tmp/in3/bulk.hl7"
# a file written in pieces 200 ms apart: must be taken whole once settled
gen "$tmp/slow.src" cr m:W1
python3 - "$tmp/slow.src" "$tmp/in/slow.hl7" <<'PY' &
import sys, time
data = open(sys.argv[1], "rb").read()
with open(sys.argv[2], "wb") as f:
    for i in range(0, len(data), 20):
        f.write(data[i:i + 20]); f.flush(); time.sleep(0.2)
PY
writer=$!

sleep 1.5
check ".part file not taken while it has its suffix" test -f "$tmp/in/late.hl7.part"
check ".part file: nothing stored from it" [ "$(q "select count(*) from messages where control_id = 'L1'")" = 0 ]
mv "$tmp/in/late.hl7.part" "$tmp/in/late.hl7"
wait "$writer"

check "every file is taken and moved" wait_for "ls '$tmp/in' | wc -l | tr -d ' '" 0
check "after: delete removes the file" wait_for "ls '$tmp/in2' | wc -l | tr -d ' '" 0
check "moved files are in move_to; a taken name gets -1" \
    [ "$(cd "$tmp/done" && ls | sort | tr '\n' ' ')" = "batch.hl7 late.hl7 multi.hl7 single-1.hl7 single.hl7 slow.hl7 " ]
check "the older file in move_to is untouched" [ "$(cat "$tmp/done/single.hl7")" = "an older file" ]
check "10 valid messages stored as received" \
    [ "$(q "select group_concat(control_id, ' ') from (select control_id from messages where channel = 'lab-files' and state = 'received' order by control_id)")" = "B1 B2 B3 L1 M1 M2 M3 REJECTME S1 W1" ]
raw_of "select id from messages where channel = 'lab-files' and state = 'rejected'" >"$tmp/rejected.raw"
check "the invalid message in the batch is stored as rejected" \
    [ "$(tr '\r' ' ' <"$tmp/rejected.raw" | grep -c '^MSH|.*BAD1.*P!D')" = 1 ]
check "a batch of 3000 messages is read whole and deleted" wait_for "ls '$tmp/in3' | wc -l | tr -d ' '" 0
check "... all 3000 stored" [ "$(q "select count(*) from messages where channel = 'bulk' and state = 'received'")" = 3000 ]
check "parallel: 4: the 3000 messages are all POSTed once" \
    wait_for "sort -u '$tmp/recv/bulk.log' | wc -l | tr -d ' '; wc -l <'$tmp/recv/bulk.log' | tr -d ' '" "3000
3000"
check "... and all marked sent" \
    wait_for "q \"select count(*) from deliveries d join destinations t on t.id = d.dest_id where t.name = 'fast' and d.state = 'sent'\"" 3000
check "the deleted file's message is stored" \
    [ "$(q "select count(*) from messages where channel = 'drop-files' and control_id = 'D1'")" = 1 ]
raw_of "select id from messages where channel = 'lab-files' and state = 'received'" >"$tmp/received.raw"
check "the stored bodies read back (tern messages show --raw)" [ -s "$tmp/received.raw" ]
check "stored messages end segments with CR only" \
    [ "$(tr -cd '\n' <"$tmp/received.raw" | wc -c | tr -d ' ')" = 0 ]
raw_of "select id from messages where control_id = 'W1'" >"$tmp/w1.raw"
check "the file written in pieces is stored whole" \
    [ "$(tail -c 25 "$tmp/w1.raw" | tr '\r' '\n')" = "OBX|1|ST|GLU||5.5|mmol/L" ]
check "the file destination gets every valid message" \
    wait_for "ls '$tmp/out' | sort | tr '\n' ' '" "B1.hl7 B2.hl7 B3.hl7 L1.hl7 M1.hl7 M2.hl7 M3.hl7 REJECTME.hl7 S1.hl7 W1.hl7 "

# --- 3: the HTTP destination ------------------------------------------------------
check "the HTTP receiver gets every valid message (after two 500s)" \
    wait_for "ls '$tmp/recv' | grep -v '\\.log' | sort | tr '\n' ' '" "B1.hl7 B2.hl7 B3.hl7 L1.hl7 M1.hl7 M2.hl7 M3.hl7 S1.hl7 W1.hl7 "
check "a 400 answer puts the message in the error queue at once" \
    wait_for "q \"select d.state || ' ' || d.attempts from deliveries d join messages m on m.id = d.message_id join destinations t on t.id = d.dest_id where m.control_id = 'REJECTME' and t.name = 'to-http'\"" "error 1"
rejected_400() { stored "$tmp/tern.yaml" REJECTME to-http | grep -q 'HTTP 400.*unknown patient'; }
check "its error names the status and the answer" \
    rejected_400
check "500s were retried: 12 requests for 10 messages" [ "$(wc -l <"$tmp/recv/requests.log" | tr -d ' ')" = 12 ]
check "the first message took 3 attempts" \
    [ "$(q "select max(d.attempts) from deliveries d join destinations t on t.id = d.dest_id where t.name = 'to-http' and d.state = 'sent'")" = 3 ]
check "POST to the URL's path and query, default Content-Type, configured header, Host" \
    [ "$(sort -u -k2 "$tmp/recv/requests.log" | cut -d' ' -f2- | sort -u)" = "/results?x=1 x-application/hl7-v2+er7 yes 127.0.0.1:$RECV" ]
check "bodies are the messages with CR segment ends (S1 came with LF)" \
    python3 -c "import sys; b=open('$tmp/recv/S1.hl7','rb').read(); sys.exit(0 if b.startswith(b'MSH|') and b'\n' not in b and b.count(b'\r')==3 else 1)"
dlv() { # control id, destination -> "state attempts"
    q "select d.state || ' ' || d.attempts from deliveries d join messages m on m.id = d.message_id join destinations t on t.id = d.dest_id where m.control_id = '$1' and t.name = '$2'"
}
check "connection refused: retried, then the error queue" wait_for "dlv D1 refused" "error 2"
check "... the error names the cause and the URL" \
    [ "$(stored "$tmp/tern.yaml" D1 refused | grep -c "Connection refused.*127.0.0.1:$DEAD/x\|127.0.0.1:$DEAD/x.*Connection refused")" = 1 ]
check "no answer: timed out, retried, then the error queue" wait_for "dlv D1 silent" "error 2"
check "... the error says so" \
    [ "$(stored "$tmp/tern.yaml" D1 silent | grep -c "no answer from http://127.0.0.1:$HOLE/x within 300ms")" = 1 ]
check "nothing left queued" \
    wait_for "q \"select count(*) from deliveries where state = 'queued'\"" 0

# --- 4: the HTTP sources ------------------------------------------------------------
post() { # url file -> prints the status; the body goes to $tmp/resp
    curl -s -o "$tmp/resp" -w '%{http_code}' -H 'Content-Type: x-application/hl7-v2+er7' \
        --data-binary "@$2" "$1"
}
url="http://127.0.0.1:$HTTP/channels/lab-http/messages"
gen "$tmp/h1.hl7" cr m:H1
check "POST a message: 200" [ "$(post "$url" "$tmp/h1.hl7")" = 200 ]
check "... with the AA ACK as the body" grep -q 'MSA|AA|H1' "$tmp/resp"
check "... and it is stored" [ "$(q "select state from messages where control_id = 'H1'")" = received ]
gen "$tmp/hbad.hl7" cr bad:HBAD
check "POST an invalid message: 422" [ "$(post "$url" "$tmp/hbad.hl7")" = 422 ]
check "... with an AR ACK" grep -q 'MSA|AR|HBAD' "$tmp/resp"
check "... and it is stored as rejected" [ "$(q "select state from messages where control_id = 'HBAD'")" = rejected ]
gen "$tmp/hbatch.hl7" lf bhs m:H2 m:H3 bts:2
check "POST a batch: 200" [ "$(post "$url" "$tmp/hbatch.hl7")" = 200 ]
check "... one ACK per message, in order, each segment ending in CR" \
    python3 -c "import sys; b=open('$tmp/resp','rb').read(); s=b.split(b'\r'); m=[x for x in s if x.startswith(b'MSA')]; sys.exit(0 if [x.split(b'|')[2] for x in m]==[b'H2',b'H3'] and b.endswith(b'\r') and b'\n' not in b else 1)"
printf 'hello, this is not HL7\n' >"$tmp/junk.txt"
check "POST text that is no HL7 at all: 422 with a NAK" \
    sh -c "[ \"\$(curl -s -o '$tmp/resp' -w '%{http_code}' --data-binary @'$tmp/junk.txt' '$url')\" = 422 ] && grep -q 'MSA|AR' '$tmp/resp'"
check "GET: 405" [ "$(curl -s -o /dev/null -w '%{http_code}' "$url")" = 405 ]
check "another channel's path: 404" \
    [ "$(curl -s -o /dev/null -w '%{http_code}' --data-binary @"$tmp/h1.hl7" "http://127.0.0.1:$HTTP/channels/nope/messages")" = 404 ]
own="http://127.0.0.1:$OWN/channels/own-http/messages"
gen "$tmp/o1.hl7" cr m:O1
check "own listener: POST a message: 200" [ "$(post "$own" "$tmp/o1.hl7")" = 200 ]
check "own listener: another path: 404" \
    [ "$(curl -s -o /dev/null -w '%{http_code}' --data-binary @"$tmp/o1.hl7" "http://127.0.0.1:$OWN/channels/lab-http/messages")" = 404 ]
python3 -c "print('MSH|^~\\\\&|A|B|C|D|20240101||ADT^A01|BIG|P|2.5\rNTE|1||' + 'x' * 2000)" >"$tmp/big.hl7"
check "own listener: a body over max_body: 413" [ "$(post "$own" "$tmp/big.hl7")" = 413 ]
check "... and nothing is stored from it" [ "$(q "select count(*) from messages where control_id = 'BIG'")" = 0 ]

cat >"$tmp/tls.yaml" <<YAML
store: { path: ./var/tls.db }
http: { enabled: false }
channels:
  - name: tls
    source: { type: file, dir: ./in4, after: delete }
    destinations:
      - { name: portal, type: http, url: "http://127.0.0.1:1/api", tls: { ca: ca.pem } }
YAML
"$tern" config check -c "$tmp/tls.yaml" >"$tmp/tls.log" 2>&1
rc=$?
check "tls on an http:// destination is refused (https is tested in serve_tls.sh)" \
    sh -c "[ $rc = 1 ] && grep -q \"'tls' applies to https:// urls\" '$tmp/tls.log'"

# --- 5: SIGTERM -----------------------------------------------------------------------
kill -TERM "$serve_pid"
wait "$serve_pid"
rc=$?
check "SIGTERM: exit status 0" [ "$rc" = 0 ]
if grep -q 'AddressSanitizer\|runtime error' "$tmp/serve.log"; then bad "sanitizer report in the log"; fi
if [ $fail -ne 0 ] || [ -n "${TERN_TEST_VERBOSE:-}" ]; then
    echo "--- serve.log"; cat "$tmp/serve.log"
    echo "--- requests.log"; cat "$tmp/recv/requests.log" 2>/dev/null
fi
exit $fail
