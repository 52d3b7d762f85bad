#!/bin/sh
# `tern validate` and validation in `tern serve` (docs/validation.md):
#   1. the test sets under tests/data/quality: every valid/ and unusual/
#      message passes (exit 0); each invalid/ file yields the problems its
#      .expect file lists (PATH: severity: text lines, in order) and the exit
#      code says whether any was an error;
#   2. a channel's profile, user table (CSV) and severity override apply;
#   3. usage and configuration errors exit 2 and say why;
#   4. tern serve: a message with a validation error gets AE with one ERR per
#      problem naming the path, and is stored as rejected with every problem;
#      a message with warnings only gets AA and keeps the warnings.
set -u
tern=$1
src=$2
. "$src/tests/lib/common.sh"
fail=0
work_dir
data="$(cd "$src" && pwd)/tests/data/quality"
IN=$(free_port)
cat >"$tmp/tern.yaml" <<YAML
store: { path: ./var/tern.db }
security: { auth: false }   # not about authentication (tests/security_*.sh are)
http: { enabled: false }
channels:
  - name: plain
    source: { type: mllp, listen: 127.0.0.1:$IN }
  - name: sets
    source: { type: file, dir: ./in-sets, after: delete }
    validation:
      profiles:   # as tests/data/quality/README.md says
        - { message: ORU^R01, segments: "MSH PID [PV1] { [ORC] OBR [{NTE}] { OBX [{NTE}] } }" }
        - { message: ADT, segments: "MSH EVN PID [PV1] [{OBX}] [{DG1}] [{NTE}] [{PID [PV1] [{OBX}] [{DG1}]}]" }
  - name: strict
    source: { type: file, dir: ./in, after: delete }
    validation:
      tables: { LOCALSEX: $data/tables/sex.csv }
      severity: { physiologic: error, sex-specific: off }
      local_offset: "+0100"
      physiologic: [ { code: 8867-4, min: 30, max: 350 } ]
      age_restricted: [ { code: "Z00*", system: "I10", min: 18 } ]
      profiles:
        - message: ADT^A04
          segments: "MSH EVN PID [PV1]"
          fields:
            - { path: PID-8, table: LOCALSEX }
            - { path: PID-5.2, required: true }
YAML

# 1. the test sets, with the profiles of their README
for f in "$data"/valid/*.hl7 "$data"/unusual/*.hl7; do
    "$tern" validate -c "$tmp/tern.yaml" --channel sets "$f" >"$tmp/out" 2>&1
    if [ $? -eq 0 ] && ! grep -q ": error:\|: warning:" "$tmp/out"; then ok "passes: ${f#$data/}"
    else bad "passes: ${f#$data/}: $(cat "$tmp/out")"; fi
done
for f in "$data"/invalid/*.hl7; do
    want="${f%.hl7}.expect"
    [ -f "$want" ] || continue
    "$tern" validate -c "$tmp/tern.yaml" --channel sets "$f" >"$tmp/out" 2>/dev/null
    rc=$?
    grep '^  ' "$tmp/out" | sed 's/^  //' >"$tmp/got"
    if grep -q ': error: ' "$want"; then want_rc=1; else want_rc=0; fi
    if diff -u "$want" "$tmp/got" >"$tmp/diff" && [ $rc -eq $want_rc ]; then ok "problems: ${f#$data/}"
    else bad "problems: ${f#$data/} (exit $rc, want $want_rc)"; cat "$tmp/diff"; fi
done

# 2. the channel's own rules
printf 'MSH|^~\\&|A|B|C|D|20240601120000||ADT^A04|S1|P|2.5.1\rEVN|A04|20240601\rPID|1||7^^^HOSP^MR||DOE||19800101|Q\rOBX|1|NM|8867-4^Heart rate^LN||400|/min\r' >"$tmp/s1.hl7"
"$tern" validate -c "$tmp/tern.yaml" --channel strict "$tmp/s1.hl7" >"$tmp/out" 2>&1
rc=$?
check_line() { grep -qF -- "$1" "$tmp/out" && ok "$2" || bad "$2: $(cat "$tmp/out")"; }
[ $rc -eq 1 ] && ok "strict channel: exit 1" || bad "strict channel: exit $rc"
check_line "PID-5.2: error: required" "profile: a required component"
check_line "OBX: error: segment OBX is not in the ADT^A04 structure" "profile: the segment structure"
check_line "PID-8: error:" "user table from CSV (Q is not in it)"
check_line "OBX-5: error: 8867-4 value 400 /min is outside the physiologic limits 30 to 350" "severity override and the channel's own physiologic list"

# 3. usage and configuration errors
"$tern" validate -c "$tmp/tern.yaml" "$tmp/s1.hl7" 2>"$tmp/err"; rc=$?
[ $rc -eq 2 ] && grep -q "channel" "$tmp/err" && ok "no --channel: exit 2" || bad "no --channel: $rc"
"$tern" validate -c "$tmp/tern.yaml" --channel nope "$tmp/s1.hl7" 2>"$tmp/err"; rc=$?
[ $rc -eq 2 ] && grep -q "no channel named 'nope'" "$tmp/err" && ok "unknown channel: exit 2" || bad "unknown channel: $rc"
cat >"$tmp/bad.yaml" <<'YAML'
store: { path: ./var/tern.db }
channels:
  - name: c
    source: { type: file, dir: ./in, after: delete }
    validation:
      severity: { nonsense: warning }
YAML
"$tern" config check -c "$tmp/bad.yaml" >"$tmp/err" 2>&1; rc=$?
[ $rc -eq 1 ] && grep -q "bad.yaml:6:.*unknown rule 'nonsense'" "$tmp/err" && ok "config check: unknown rule, with its line" || bad "config check: $(cat "$tmp/err")"

# 4. tern serve
"$tern" serve -c "$tmp/tern.yaml" >"$tmp/serve.log" 2>&1 &
serve_pid=$!
pids="$pids $serve_pid"
wait_port "$IN" || { cat "$tmp/serve.log"; exit 1; }
"$tern" send --port "$IN" "$data/invalid/before_birth.hl7" >"$tmp/acks" 2>&1
grep -q '^I0004 AE' "$tmp/acks" && ok "serve: a validation error is answered AE" || bad "serve: $(cat "$tmp/acks")"
python3 - "$IN" "$data/invalid/before_birth.hl7" >"$tmp/ack.txt" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"\x0b" + open(sys.argv[2], "rb").read() + b"\x1c\r")
buf = b""
while not buf.endswith(b"\x1c\r"):
    buf += s.recv(65536)
print(buf.strip(b"\x0b\x1c\r").decode().replace("\r", "\n"))
PY
[ "$(grep -c '^ERR|' "$tmp/ack.txt")" = 3 ] && ok "serve: one ERR per problem" || bad "serve: ERR segments: $(cat "$tmp/ack.txt")"
grep -q '^ERR||PV1^1^44' "$tmp/ack.txt" && ok "serve: ERR-2 names the segment and field" || bad "serve: ERR-2: $(cat "$tmp/ack.txt")"
# 40 errors in one message: the NAK carries the first 32 as ERR segments
python3 - "$IN" >"$tmp/ack40.txt" <<'PY'
import socket, sys
obx = "".join("OBX|%d|NM|8867-4^HR^LN||x%d|/min\r" % (i, i) for i in range(1, 41))
msg = "MSH|^~\\&|A|B|C|D|20240601120000||ORU^R01|M40|P|2.5.1\rPID|1||7^^^H^MR||DOE^J||19800101|F\rOBR|1\r" + obx
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"\x0b" + msg.encode() + b"\x1c\r")
buf = b""
while not buf.endswith(b"\x1c\r"):
    buf += s.recv(65536)
print(buf.strip(b"\x0b\x1c\r").decode().replace("\r", "\n"))
PY
[ "$(grep -c '^ERR|' "$tmp/ack40.txt")" = 32 ] && grep -q '^MSA|AE|M40' "$tmp/ack40.txt" &&
    ok "serve: 40 errors: AE with the first 32 as ERR segments" || bad "serve: 40 errors: $(head -5 "$tmp/ack40.txt")"
"$tern" send --port "$IN" "$data/invalid/physiologic.hl7" >"$tmp/acks" 2>&1
grep -q '^I0007 AA' "$tmp/acks" && ok "serve: warnings only are accepted" || bad "serve: $(cat "$tmp/acks")"
db="$tmp/var/tern.db"
st=$(stored "$tmp/tern.yaml" I0004)
case $st in
"rejected PV1-44: error: admission date"*"OBR-7: error"*"OBX-14: error"*) ok "serve: stored rejected with every problem" ;;
*) bad "serve: stored as: $st" ;;
esac
st=$(stored "$tmp/tern.yaml" I0007)
case $st in "received warning: OBX-5: warning: 8867-4"*) ok "serve: warnings kept with the message" ;; *) bad "serve: stored as: $st" ;; esac
"$tern" send --port "$IN" "$data/valid/oru_r01.hl7" >/dev/null 2>&1
"$tern" quality -c "$tmp/tern.yaml" --channel plain >"$tmp/q.out" 2>&1
row=$(grep '^plain ' "$tmp/q.out" | tr -s ' ')
case $row in
"plain 5 20.0% 20.0% 60.0% 100.0% 100.0% 100.0% 100.0% "*) ok "quality: score, warnings, rejected, completeness ($row)" ;;
*) bad "quality: $(cat "$tmp/q.out")" ;;
esac
"$tern" quality -c "$tmp/tern.yaml" --channel strict >"$tmp/q.out" 2>&1
grep -q "no messages counted" "$tmp/q.out" && ok "quality: a channel without messages says so" || bad "quality: $(cat "$tmp/q.out")"
kill -TERM "$serve_pid"
wait "$serve_pid"
[ $? -eq 0 ] && ok "SIGTERM: exit 0" || bad "SIGTERM exit"
[ $fail -eq 0 ] || { echo "--- serve.log"; cat "$tmp/serve.log"; }
exit $fail
