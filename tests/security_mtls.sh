#!/bin/sh
# Client certificates as system identities (docs/security.md): with
# security.auth on, an MLLP sender over mutual TLS may post to a channel
# only when its certificate's fingerprint is registered (`tern token create
# --cert`) and bound to that channel. Checks: the bound certificate gets AA
# on its channel, AR on another; a certificate from the right CA that is not
# registered gets AR; nothing refused is stored; every decision is audited.
set -u
tern=$1
src=$2
. "$src/tests/lib/common.sh"
. "$src/tests/lib/tls_certs.sh"
fail=0
work_dir
make_certs "$tmp/c" || { echo "FAIL making certificates"; exit 1; }
P1=$(free_port); P2=$(free_port)
tls="tls: { cert: ./c/server.pem, key: ./c/server.key, ca: ./c/ca.pem, client_cert: required }"
cat >"$tmp/tern.yaml" <<YAML
store: { path: ./var/tern.db }
http: { enabled: false }
security: { argon2_memory_kib: 64, argon2_iterations: 1 }   # fast tests
channels:
  - name: lab-in
    source: { type: mllp, listen: 127.0.0.1:$P1, $tls }
  - name: adt-in
    source: { type: mllp, listen: 127.0.0.1:$P2, $tls }
YAML
C="-c $tmp/tern.yaml"
mkdir -p "$tmp/var"
ROOT=$(first_admin "$tmp/tern.yaml" "$tmp/root.out")
[ -n "$ROOT" ] || { echo "FAIL admin login: $(cat "$tmp/root.out")"; exit 1; }
FP=$(openssl x509 -in "$tmp/c/client.pem" -noout -fingerprint -sha256 | cut -d= -f2)
TERN_TOKEN=$ROOT "$tern" token $C create --name lab-device --cert "$FP" --subject "CN=lab-system" \
    --channel lab-in >"$tmp/tok.out" 2>&1 || bad "token create --cert: $(cat "$tmp/tok.out")"

"$tern" serve $C >"$tmp/serve.log" 2>&1 &
pids="$pids $!"
wait_port "$P1" || { cat "$tmp/serve.log"; exit 1; }
m() { printf 'MSH|^~\\&|LAB|HOSP|TERN|HOSP|20240101120000||ORU^R01|%s|P|2.5\rPID|1||P1\r' "$1" >"$tmp/$1.hl7"; }
send() { # port cert control_id -> the ACK line
    m "$3"
    "$tern" send --port "$1" --tls --ca "$tmp/c/ca.pem" --cert "$tmp/c/$2.pem" --key "$tmp/c/$2.key" \
        --server-name localhost "$tmp/$3.hl7" 2>&1 | head -1
}
check "the registered certificate on its channel: AA" sh -c "echo '$(send "$P1" client C1)' | grep -q '^C1 AA'"
out=$(send "$P2" client C2)
check "... on a channel it is not bound to: AR, not authorized" sh -c "echo '$out' | grep -q '^C2 AR.*not authorized'"
out=$(send "$P1" intruder C3)
check "a certificate from the CA that is not registered: AR" \
    sh -c "echo '$out' | grep -q '^C3 AR.*not a registered identity'"
q() { caught_up "$tmp/var/tern.db"; sqlite3 -cmd ".timeout 5000" "$tmp/var/tern.db" "$1"; }
check "only the allowed message was stored" [ "$(q "select group_concat(control_id) from messages")" = C1 ]
export TERN_TOKEN=$ROOT
check "the allowed post is audited as the certificate identity" \
    sh -c "'$tern' audit $C search --user cert:lab-device --action message.post | grep -q 'lab-in.*ok.*client certificate'"
check "the refusals are audited" \
    [ "$("$tern" audit $C search --action message.post | grep -c denied)" -ge 2 ]
exit $fail
