#!/bin/sh
# End-to-end TLS tests (docs/tls.md) with certificates made at test time
# (tests/lib/tls_certs.sh) and real processes on 127.0.0.1:
#   1. protocol policy: openssl s_client with TLS 1.0 and 1.1 is refused by
#      the server (the client is forced to try them with SECLEVEL=0), TLS 1.2
#      and 1.3 are accepted; plain TCP MLLP to the TLS port gets no ACK and is
#      closed;
#   2. mutual TLS on an MLLP listener: no client certificate, one from another
#      CA and one from the right CA with a subject not allowed are refused (and
#      logged with the peer); the allowed one gets AA through `tern send --tls`;
#   3. a TLS MLLP destination (client certificate, allowed by fingerprint)
#      delivers to a second `tern serve` with a TLS listener;
#   4. HTTPS: the shared http listener and a channel HTTP source with its own
#      listen take POSTs over https (curl --cacert); plain http to them fails;
#   5. reload: new certificate files + SIGHUP, and new files without a signal
#      (the mtime check), are seen by new connections; a broken file keeps the
#      old certificate and is logged;
#   6. a peer that connects and stalls the handshake is closed after 10 s; an
#      HTTP destination delivers over https;
#   7. `tern config check` names the line of a missing or mismatched TLS file.
set -u
tern=$1
src=$2
. "$src/tests/lib/common.sh"
. "$src/tests/lib/tls_certs.sh"
fail=0
work_dir
for tool in openssl curl sqlite3; do
    command -v $tool >/dev/null || { echo "FAIL: $tool missing (scripts/deps.sh installs it)"; exit 1; }
done
q() { caught_up "$1"; sqlite3 -cmd ".timeout 5000" "$1" "$2"; }

C=$tmp/certs
make_certs "$C"
# the files tern serves, replaced by the reload tests
cp "$C/server.pem" "$C/live.pem"; cp "$C/server.key" "$C/live.key"
client_fp=$(openssl x509 -in "$C/client.pem" -noout -fingerprint -sha256 | cut -d= -f2)

IN=$(free_port); DOWN=$(free_port); H=$(free_port); HS=$(free_port)
mkdir -p "$tmp/up" "$tmp/down"
cat >"$tmp/up/tern.yaml" <<YAML
store: { path: ./var/tern.db }
security: { auth: false }   # not about authentication (tests/security_*.sh are)
http:
  listen: 127.0.0.1:$H
  tls: { cert: $C/live.pem, key: $C/live.key }
channels:
  - name: secure-in
    source:
      type: mllp
      listen: 127.0.0.1:$IN
      tls:
        cert: $C/live.pem
        key: $C/live.key
        ca: $C/ca.pem
        client_cert: required
        allow_subjects: [lab-system]
    destinations:
      - name: downstream
        type: mllp
        host: 127.0.0.1
        port: $DOWN
        connect_timeout: 2s
        retry: { max_attempts: forever, backoff: 100ms..500ms }
        tls: { ca: $C/ca.pem, cert: $C/client.pem, key: $C/client.key }
      - name: portal
        type: http
        url: https://127.0.0.1:$HS/channels/https-in/messages
        retry: { max_attempts: forever, backoff: 100ms..500ms }
        tls: { ca: $C/ca.pem }
  - name: api-in
    source: { type: http }
  - name: https-in
    source:
      type: http
      listen: 127.0.0.1:$HS
      tls: { cert: $C/server.pem, key: $C/server.key }
YAML
cat >"$tmp/down/tern.yaml" <<YAML
store: { path: ./var/tern.db }
security: { auth: false }   # not about authentication (tests/security_*.sh are)
http: { enabled: false }
channels:
  - name: receiver
    source:
      type: mllp
      listen: 127.0.0.1:$DOWN
      tls:
        cert: $C/server.pem
        key: $C/server.key
        ca: $C/ca.pem
        allow_fingerprints: ["$client_fp"]
YAML
"$tern" serve -c "$tmp/down/tern.yaml" >"$tmp/down.log" 2>&1 & pids="$pids $!"
"$tern" serve -c "$tmp/up/tern.yaml" >"$tmp/up.log" 2>&1 & up_pid=$!; pids="$pids $up_pid"
wait_port "$IN" && wait_port "$DOWN" && wait_port "$H" && wait_port "$HS" || { cat "$tmp/up.log" "$tmp/down.log"; exit 1; }

# a peer that connects and never says a word: the handshake deadline (10 s)
# must close it; checked at the end
python3 - "$IN" >"$tmp/stall.out" 2>&1 <<'PY' &
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
t = time.time()
try:
    s.recv(1)
    print("closed after %d s" % round(time.time() - t))
except socket.timeout:
    print("still open after 20 s")
except ConnectionResetError:
    print("closed after %d s" % round(time.time() - t))
PY
stall_pid=$!; pids="$pids $stall_pid"

msg() { printf 'MSH|^~\\&|LAB|HOSP|TERN|HOSP|20260101120000||ADT^A01^ADT_A01|%s|P|2.5.1\rPID|1||%s^^^HOSP^MR||DOE^JANE||19800101|F\r' "$1" "$1"; }
msg T-1 >"$tmp/t1.hl7"; msg T-2 >"$tmp/t2.hl7"

# --- 1. protocol policy ---------------------------------------------------------
sc() { # port args...: s_client's output for one handshake
    p=$1; shift
    timeout 10 openssl s_client -connect "127.0.0.1:$p" -CAfile "$C/ca.pem" -cert "$C/client.pem" -key "$C/client.key" "$@" </dev/null 2>&1
}
for v in tls1 tls1_1; do
    out=$(sc "$IN" -$v -cipher 'DEFAULT@SECLEVEL=0')
    if echo "$out" | grep -q 'Cipher is (NONE)' && ! echo "$out" | grep -q 'New, TLSv1'; then
        ok "-$v refused"
    else bad "-$v refused"; echo "$out" | tail -5; fi
done
check "server logged the refused protocol version" grep -q "refused (alert 'protocol version')" "$tmp/up.log"
for v in tls1_2 tls1_3; do
    out=$(sc "$IN" -$v)
    proto=$(echo "$v" | sed 's/tls1_/TLSv1./')
    if echo "$out" | grep -q "New, $proto" && echo "$out" | grep -q 'Verify return code: 0'; then
        ok "-$v accepted"
    else bad "-$v accepted"; echo "$out" | tail -5; fi
done
out=$(sc "$IN" -tls1_2 -cipher 'AES128-SHA256')
echo "$out" | grep -q 'Cipher is (NONE)\|handshake failure\|no cipher' && ok "TLS 1.2 without ECDHE/AEAD refused" || { bad "non-AEAD cipher refused"; echo "$out" | tail -3; }

plain=$(python3 - "$IN" "$tmp/t1.hl7" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"\x0b" + open(sys.argv[2], "rb").read() + b"\x1c\r")
got = b""
try:
    while True:
        b = s.recv(4096)
        if not b: break
        got += b
except socket.timeout:
    print("still open"); sys.exit()
except ConnectionResetError:
    pass
print("closed " + ("with ACK" if b"MSA" in got else "without ACK"))
PY
)
[ "$plain" = "closed without ACK" ] && ok "plain TCP to the TLS port: no ACK, closed" || bad "plain TCP to the TLS port: $plain"

# --- 2. mutual TLS on the MLLP listener -------------------------------------------
send() { "$tern" send --port "$IN" --timeout 5 --tls --ca "$C/ca.pem" "$@"; }
send "$tmp/t1.hl7" >"$tmp/s.out" 2>&1 && bad "no client certificate refused" || ok "no client certificate refused"
send --cert "$C/rogue.pem" --key "$C/rogue.key" "$tmp/t1.hl7" >"$tmp/s.out" 2>&1 && bad "certificate from another CA refused" || ok "certificate from another CA refused"
send --cert "$C/intruder.pem" --key "$C/intruder.key" "$tmp/t1.hl7" >"$tmp/s.out" 2>&1 && bad "subject not allowed refused" || ok "subject not allowed refused"
check "refusal logged with peer and subject" grep -q "refused the client certificate of 127.0.0.1:[0-9]*: subject 'CN=intruder,O=Lab'" "$tmp/up.log"
check "unknown CA logged" grep -q "refused (alert 'unknown CA')" "$tmp/up.log"
out=$(send --cert "$C/client.pem" --key "$C/client.key" "$tmp/t1.hl7" 2>&1)
[ "$out" = "T-1 AA" ] && ok "allowed client certificate gets AA" || bad "allowed client: '$out'"
out=$("$tern" send --port "$IN" --timeout 5 --tls --ca "$C/other-ca.pem" --cert "$C/client.pem" --key "$C/client.key" "$tmp/t2.hl7" 2>&1)
echo "$out" | grep -q "certificate verify failed" && ok "tern send refuses a server certificate from an unknown CA" || bad "server verification: $out"
out=$(send --server-name wrong.example --cert "$C/client.pem" --key "$C/client.key" "$tmp/t2.hl7" 2>&1)
echo "$out" | grep -q "certificate verify failed\|hostname mismatch" && ok "tern send checks the server name" || bad "server name check: $out"

# --- 3. TLS MLLP destination -> TLS MLLP listener ---------------------------------
WAIT_TENTHS=150 wait_for "q '$tmp/down/var/tern.db' 'select count(*) from messages'" 1 && ok "delivered over mutual TLS to the second tern" || { bad "TLS delivery"; tail -5 "$tmp/up.log" "$tmp/down.log"; }

# --- 4. HTTPS ------------------------------------------------------------------------
WAIT_TENTHS=150 wait_for "q '$tmp/up/var/tern.db' \"select count(*) from messages where channel = 'https-in'\"" 1 && ok "HTTP destination delivers over https" || { bad "https delivery"; tail -5 "$tmp/up.log"; }
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$C/ca.pem" --data-binary @"$tmp/t2.hl7" "https://127.0.0.1:$H/channels/api-in/messages")
[ "$code" = 200 ] && ok "POST over https on the shared listener" || bad "shared https: $code"
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$C/ca.pem" --data-binary @"$tmp/t2.hl7" "https://localhost:$HS/channels/https-in/messages")
[ "$code" = 200 ] && ok "POST over https on a channel's own listener" || bad "own https: $code"
curl -s -m 5 -o /dev/null --data-binary @"$tmp/t2.hl7" "http://127.0.0.1:$H/channels/api-in/messages" && bad "http to the https port fails" || ok "http to the https port fails"
curl -s -m 5 -o /dev/null --tlsv1.1 --tls-max 1.1 --cacert "$C/ca.pem" "https://127.0.0.1:$H/" && bad "https with TLS 1.1 refused" || ok "https with TLS 1.1 refused"

# --- 5. reload ----------------------------------------------------------------------
serial() { timeout 10 openssl s_client -connect "127.0.0.1:$1" -CAfile "$C/ca.pem" -cert "$C/client.pem" -key "$C/client.key" </dev/null 2>/dev/null | openssl x509 -noout -serial -subject -nameopt RFC2253 2>/dev/null | tr '\n' ' '; }
case "$(serial "$IN")" in *serial=1001*) ok "serving the first certificate";; *) bad "first certificate: $(serial "$IN")";; esac
cp "$C/server2.pem" "$C/live.pem"; cp "$C/server2.key" "$C/live.key"
kill -HUP "$up_pid"
WAIT_TENTHS=50 wait_for "serial $IN | grep -o 'serial=2002'" "serial=2002" && ok "SIGHUP: new connections get the new certificate (MLLP)" || bad "SIGHUP reload (MLLP)"
case "$(serial "$H")" in *serial=2002*O=Reloaded*) ok "SIGHUP: new certificate on https too";; *) bad "SIGHUP reload (https): $(serial "$H")";; esac
out=$("$tern" send --port "$IN" --timeout 5 --tls --ca "$C/ca.pem" --cert "$C/client.pem" --key "$C/client.key" "$tmp/t2.hl7" 2>&1)
[ "$out" = "T-2 AA" ] && ok "AA after the reload" || bad "after reload: '$out'"
echo "not a certificate" >"$C/live.pem"
kill -HUP "$up_pid"
sleep 0.5
case "$(serial "$IN")" in *serial=2002*) ok "a broken certificate file keeps the old certificate";; *) bad "broken reload: $(serial "$IN")";; esac
check "the failed reload is logged with the file" grep -q "TLS reload failed (listener).*$C/live.pem" "$tmp/up.log"
sleep 3.2
cp "$C/server.pem" "$C/live.pem"; cp "$C/server.key" "$C/live.key"
WAIT_TENTHS=80 wait_for "serial $IN | grep -o 'serial=1001'" "serial=1001" && ok "changed files are noticed without a signal" || bad "mtime reload"
wait "$stall_pid"
case "$(cat "$tmp/stall.out")" in "closed after 1"[0-2]" s") ok "a stalled handshake is closed after 10 s";; *) bad "stalled handshake: $(cat "$tmp/stall.out")";; esac
kill -TERM "$up_pid"; wait "$up_pid" 2>/dev/null; check "engine still stops cleanly" [ $? -eq 0 ]


# --- 6. config check ------------------------------------------------------------------
cat >"$tmp/bad.yaml" <<YAML
channels:
  - name: a
    source:
      type: mllp
      listen: 127.0.0.1:$IN
      tls:
        cert: $C/missing.pem
        key: $C/server.key
  - name: b
    source:
      type: mllp
      listen: 127.0.0.1:$HS
      tls:
        cert: $C/server.pem
        key: $C/client.key
YAML
out=$("$tern" config check -c "$tmp/bad.yaml" 2>&1)
echo "$out" | grep -q "bad.yaml:7:.*missing.pem" && ok "config check: missing cert file at its line" || bad "missing file: $out"
echo "$out" | grep -q "bad.yaml:15:.*key values mismatch\|bad.yaml:15:.*does not match" && ok "config check: key not matching the certificate at its line" || bad "mismatched key: $out"

[ $fail -eq 0 ] && echo "all TLS tests passed" || { echo "--- up.log"; tail -30 "$tmp/up.log"; }
exit $fail
