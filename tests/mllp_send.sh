#!/bin/sh
# End-to-end MLLP: `tern send` against a real MLLP receiver, and the same
# receiver against a third-party MLLP client (python-hl7's mllp_send, Debian
# package python3-hl7) to show that Tern's framing interoperates.
#
# The receiver is tests/mllp_echo_server (built with the tests: Tern's
# mllp_server + hl7_ack), started on 127.0.0.1 with a port the kernel picks;
# it writes the port to a file. Every client run is bounded by `timeout`.
#   $1 = tern binary, $2 = source dir
set -u
tern=$1
src=$2
echo_server=$(dirname "$tern")/tests/mllp_echo_server
msgs="$src/examples/messages"
fail=0
tmp=$(mktemp -d)
pids=""
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT

ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fail=1; }
# expect NAME WANT_RC GOT_RC: checks an exit code
expect_rc() { if [ "$3" = "$2" ]; then ok "$1 (exit $3)"; else bad "$1: exit $3, want $2"; cat "$tmp/err" 2>/dev/null | head -5; fi; }
# expect_out NAME FILE WANT: compares a file with a string
expect_out() {
    printf '%s\n' "$3" >"$tmp/want"
    if cmp -s "$tmp/want" "$2"; then ok "$1"; else bad "$1"; diff "$tmp/want" "$2" | head -10; fi
}
expect_grep() { if grep -q "$3" "$2"; then ok "$1"; else bad "$1: no '$3' in:"; head -5 "$2"; fi; }

if [ ! -x "$echo_server" ]; then
    echo "FAIL mllp_echo_server not built at $echo_server"
    exit 1
fi

# start_server NAME [options]: starts a receiver, sets $port
start_server() {
    name=$1
    shift
    rm -f "$tmp/$name.port"
    "$echo_server" --port-file "$tmp/$name.port" "$@" >"$tmp/$name.log" 2>&1 &
    pids="$pids $!"
    eval "${name}_pid=$!"
    i=0
    while [ ! -s "$tmp/$name.port" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    port=$(cat "$tmp/$name.port" 2>/dev/null)
    if [ -z "$port" ]; then
        echo "FAIL receiver $name did not start:"
        cat "$tmp/$name.log"
        exit 1
    fi
}

start_server aa
aa_port=$port
start_server ae --code AE --text "rejected for the test"
ae_port=$port
send() { timeout 60 "$tern" send "$@" >"$tmp/out" 2>"$tmp/err"; }

# --- tern send: single message, batch, several files --------------------------
send --port "$aa_port" "$msgs/adt_a01.hl7"
expect_rc "single message" 0 $?
# adt_a01 asks for an accept acknowledgement (MSH-15 AL): enhanced mode, CA
expect_out "single message: one line per ACK" "$tmp/out" "MSG-20260115-0001 CA"

send --host 127.0.0.1 --port "$aa_port" "$msgs/lab_batch.hl7"
expect_rc "batch file" 0 $?
expect_out "batch file: every message, in order" "$tmp/out" "LAB-778813 AA
LAB-778814 AA"

# a file of several messages without an envelope, LF line ends, and stdin
tr '\r' '\n' <"$msgs/adt_a01.hl7" >"$tmp/multi.hl7"
cat "$msgs/oru_r01.hl7" >>"$tmp/multi.hl7"
send --port "$aa_port" --timeout 5 - "$msgs/adt_a01.hl7" <"$tmp/multi.hl7"
expect_rc "several messages, stdin and a file" 0 $?
expect_out "several messages: one line each" "$tmp/out" "MSG-20260115-0001 CA
LAB-778812 AA
MSG-20260115-0001 CA"

# --- not accepted, unreadable input, no ACK, no receiver ----------------------
send --port "$ae_port" "$msgs/adt_a01.hl7" "$msgs/lab_batch.hl7"
expect_rc "receiver answers AE: exit 1" 1 $?
expect_out "AE lines carry MSA-3" "$tmp/out" "MSG-20260115-0001 AE rejected for the test
LAB-778813 AE rejected for the test
LAB-778814 AE rejected for the test"

printf 'this is not HL7\n' >"$tmp/junk.hl7"
send --port "$aa_port" "$tmp/junk.hl7" "$msgs/oru_r01.hl7"
expect_rc "unreadable message: exit 1, the rest is still sent" 1 $?
expect_out "unreadable message: the good one is acknowledged" "$tmp/out" "LAB-778812 AA"
expect_grep "unreadable message: stderr names the file" "$tmp/err" "junk.hl7"

# a receiver that accepts connections and never answers
python3 - "$tmp/mute.port" <<'EOF' >/dev/null 2>&1 &
import socket, sys, time, os
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
with open(sys.argv[1] + ".tmp", "w") as f: f.write(str(s.getsockname()[1]))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
conns = []
deadline = time.time() + 60
s.settimeout(1)
while time.time() < deadline:
    try: conns.append(s.accept()[0])
    except socket.timeout: pass
EOF
pids="$pids $!"
i=0
while [ ! -s "$tmp/mute.port" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
mute_port=$(cat "$tmp/mute.port")
send --port "$mute_port" --timeout 0.5 "$msgs/adt_a01.hl7"
expect_rc "no ACK: exit 1" 1 $?
expect_grep "no ACK: says so" "$tmp/err" "no ACK from 127.0.0.1:$mute_port within 500 ms"

# a port nobody listens on: the receiver is stopped below; use a closed one
start_server gone
gone_port=$port
kill "$gone_pid"
wait "$gone_pid" 2>/dev/null
send --port "$gone_port" --timeout 2 "$msgs/adt_a01.hl7" "$msgs/oru_r01.hl7"
expect_rc "no receiver: exit 1" 1 $?
expect_grep "no receiver: says why" "$tmp/err" "cannot connect to 127.0.0.1:$gone_port"

# an oversized frame is rejected with its MSH-10; the connection goes on
start_server small --max-frame 600
small_port=$port
send --port "$small_port" "$msgs/adt_a01.hl7" "$msgs/oru_r01.hl7"
expect_rc "oversized message: exit 1" 1 $?
expect_out "oversized message: rejected by MSH-10, the next one accepted" "$tmp/out" "MSG-20260115-0001 CR the message is larger than 600 bytes
LAB-778812 AA"

# --- load generator -------------------------------------------------------------
send --port "$aa_port" --count 2000 --concurrency 4 "$msgs/adt_a01.hl7" "$msgs/lab_batch.hl7"
expect_rc "load: 2000 messages over 4 connections" 0 $?
expect_grep "load: reports messages/s" "$tmp/out" "^sent 2000 messages to 127.0.0.1:$aa_port over 4 connections in .* messages/s$"
expect_grep "load: all accepted" "$tmp/out" "^accepted 2000, not accepted 0, no ACK 0$"
expect_grep "load: reports a p99" "$tmp/out" "^ACK latency ms: p50 [0-9.]* p95 [0-9.]* p99 [0-9.]* max [0-9.]*$"
[ "$(wc -l <"$tmp/out")" -eq 3 ] && ok "load: no per-ACK lines" || bad "load: printed $(wc -l <"$tmp/out") lines"

start=$(date +%s.%N)
send --port "$aa_port" --count 300 --concurrency 2 --rate 1000 "$msgs/oru_r01.hl7"
rc=$?
end=$(date +%s.%N)
expect_rc "load with a rate" 0 $rc
awk -v a="$start" -v b="$end" 'BEGIN { exit !(b - a >= 0.25) }' && ok "load: the rate paces (300 at 1000/s take >= 0.25 s)" ||
    bad "load: 300 messages at 1000/s took less than 0.25 s"

send --port "$ae_port" --count 50 --concurrency 2 "$msgs/adt_a01.hl7"
expect_rc "load: not accepted gives exit 1" 1 $?
expect_grep "load: counts the refusals" "$tmp/out" "^accepted 0, not accepted 50, no ACK 0$"

closed=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])') # nothing listens there
send --port "$closed" --count 40 --concurrency 4 "$msgs/adt_a01.hl7"
expect_rc "load: an unreachable receiver gives exit 1" 1 $?
expect_grep "load: nothing counted as sent when nothing could be" "$tmp/out" "^sent 0 messages to "
expect_grep "load: no latency without ACKs" "$tmp/out" "^ACK latency ms: p50 0.000 p95 0.000 p99 0.000 max 0.000$"
expect_grep "load: says why it stopped" "$tmp/err" "cannot be reached"

# --- usage ------------------------------------------------------------------------
send "$msgs/adt_a01.hl7"
expect_rc "usage: --port is required" 2 $?
send --port 99999 "$msgs/adt_a01.hl7"
expect_rc "usage: bad port" 2 $?
send --port "$aa_port" --rate 10 "$msgs/adt_a01.hl7"
expect_rc "usage: --rate needs --count" 2 $?

# --- a third-party client: python-hl7's mllp_send --------------------------------
if [ -x /usr/bin/mllp_send ]; then
    # single message file (--loose: the file is plain HL7 text)
    timeout 30 /usr/bin/mllp_send --port "$aa_port" --loose --file "$msgs/adt_a01.hl7" 127.0.0.1 >"$tmp/py.out" 2>"$tmp/err"
    expect_rc "python-hl7 mllp_send: one message" 0 $?
    tr '\r' '\n' <"$tmp/py.out" >"$tmp/py.txt"
    expect_grep "python-hl7 mllp_send: gets Tern's ACK" "$tmp/py.txt" "^MSA|CA|MSG-20260115-0001"
    # it prints the reply as received: one frame, 0x0B ... 0x1C 0x0D
    od -An -c "$tmp/py.out" | tr -d ' \n' | grep -q '^\\vMSH|.*\\r034\\r\\n$' &&
        ok "python-hl7 mllp_send: the ACK is framed 0x0B ... 0x1C 0x0D" ||
        bad "python-hl7 mllp_send: ACK not framed: $(od -An -c "$tmp/py.out" | head -2)"
    # two messages, LF line ends (--loose converts them)
    timeout 30 /usr/bin/mllp_send --port "$aa_port" --loose --file "$tmp/multi.hl7" 127.0.0.1 >"$tmp/py.out" 2>"$tmp/err"
    expect_rc "python-hl7 mllp_send: two messages, one connection" 0 $?
    tr '\r' '\n' <"$tmp/py.out" >"$tmp/py.txt"
    [ "$(grep -c '^MSA|' "$tmp/py.txt")" = 2 ] && ok "python-hl7 mllp_send: two ACKs" || bad "python-hl7 mllp_send: $(grep -c '^MSA|' "$tmp/py.txt") ACKs, want 2"
    expect_grep "python-hl7 mllp_send: second ACK" "$tmp/py.txt" "^MSA|AA|LAB-778812"
    # (its stdin mode is not used: in 0.4.5 it mixes str and bytes and fails
    # on Python 3 before sending anything)
    # garbage from the client's side: an unparseable message gets a reject
    printf 'MSH|^~\\&|A|B|C|D|20260101||ADT^A01|BAD1|P|2.5\rbad segment\r' >"$tmp/badseg.hl7"
    timeout 30 /usr/bin/mllp_send --port "$aa_port" --loose --file "$tmp/badseg.hl7" 127.0.0.1 >"$tmp/py.out" 2>"$tmp/err"
    tr '\r' '\n' <"$tmp/py.out" >"$tmp/py.txt"
    expect_grep "python-hl7 mllp_send: invalid HL7 gets AR" "$tmp/py.txt" "^MSA|AR|BAD1"
else
    bad "python-hl7's /usr/bin/mllp_send is missing: install python3-hl7 (make deps)"
fi

# --- graceful stop of the receiver ------------------------------------------------
kill -TERM "$aa_pid"
i=0
while kill -0 "$aa_pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
wait "$aa_pid"
expect_rc "receiver stops on SIGTERM" 0 $?
expect_grep "receiver counted the traffic" "$tmp/aa.log" "^stopped: .* messages"

exit $fail
