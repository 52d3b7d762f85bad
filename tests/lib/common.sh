# Shared helpers for the end-to-end shell tests (sourced, not run): result
# lines, a work directory, checks, free ports on 127.0.0.1, waiting for a
# listener or a value. The caller sets fail=0 first.
# PHI is encrypted at rest by default, so every engine the tests start needs
# a master key: a fixed one, for tests only (docs/security-at-rest.md).
TERN_MASTER_KEY=${TERN_MASTER_KEY:-000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f}
export TERN_MASTER_KEY
# and the audit trail is sealed with a key of its own (docs/security.md)
TERN_AUDIT_KEY=${TERN_AUDIT_KEY:-202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f}
export TERN_AUDIT_KEY
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fail=1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # port: waits up to 10 s for a listener
    i=0
    while [ $i -lt 100 ]; do
        python3 -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(s.connect_ex(('127.0.0.1',$1)))" 2>/dev/null && return 0
        sleep 0.1; i=$((i + 1))
    done
    echo "FAIL: nothing listens on $1"; return 1
}

# work_dir: a temporary directory in $tmp, removed at exit (kept with
# TERN_TEST_KEEP=1) after killing every process the script added to $pids.
work_dir() {
    tmp=$(mktemp -d)
    pids=""
    trap 'for p in $pids; do kill -9 "$p" 2>/dev/null; done; [ -n "${TERN_TEST_KEEP:-}" ] || rm -rf "$tmp"' EXIT
}
# check DESCRIPTION COMMAND...: ok when the command succeeds, FAIL otherwise
check() { d=$1; shift; if "$@"; then ok "$d"; else bad "$d"; fi; }
# wait_for COMMAND EXPECTED: evaluates the shell command (the script's
# functions work in it) every 0.1 s until it prints EXPECTED; gives up after
# WAIT_TENTHS tenths of a second (default 200) and shows the last output.
wait_for() {
    i=0
    while [ $i -lt "${WAIT_TENTHS:-200}" ]; do
        [ "$(eval "$1" 2>/dev/null)" = "$2" ] && return 0
        sleep 0.1; i=$((i + 1))
    done
    echo "  waited for '$1' = '$2', last: '$(eval "$1" 2>&1)'"; return 1
}

# stored CONF CONTROL_ID [DEST]: what `tern messages list --json` shows (it
# decrypts; the database holds error texts sealed) for the newest message
# whose MSH-10 is CONTROL_ID: "STATE ERROR" of the message, or, with DEST,
# "STATE|LAST_ERROR" of its delivery to DEST ('*': every delivery, one per
# line). Needs $tern.
stored() {
    "$tern" messages -c "$1" list --json --limit 1000000 2>/dev/null | python3 -c '
import json, sys
cid, dest = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else None)
for line in sys.stdin:
    m = json.loads(line)
    if m.get("control_id") != cid:
        continue
    if dest is None:
        print(m["state"] + " " + (m.get("error") or ""))
    for d in m["deliveries"] if dest else []:
        if dest in ("*", d["dest"]):
            print(d["state"] + "|" + (d.get("last_error") or ""))
    break' "$2" ${3:+"$3"}
}

# npm_install PKG_DIR NAME WHAT: installs the npm packages pinned in
# PKG_DIR/package.json + package-lock.json once, with `npm ci`, into
# $TERN_NPM_CACHE (default $HOME/.cache/tern-npm)/NAME-<hash of the lock>,
# and sets $cache to that directory. Without node, npm or the registry it
# says why (WHAT: what cannot be done) and returns 1: the test fails.
npm_install() {
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        bad "node and npm are needed to $3 (install Node 20)"
        return 1
    fi
    lockhash=$(cat "$1/package.json" "$1/package-lock.json" | sha256sum | cut -c1-12)
    cache="${TERN_NPM_CACHE:-${HOME:-/tmp}/.cache/tern-npm}/$2-$lockhash"
    [ -f "$cache/.installed" ] && return 0
    echo "installing the npm packages of $1 (npm ci into $cache)"
    mkdir -p "$cache" && cp "$1/package.json" "$1/package-lock.json" "$cache/"
    if ! (cd "$cache" && timeout 300 npm ci --no-audit --no-fund >"$cache/npm-ci.txt" 2>&1); then
        tail -n 5 "$cache/npm-ci.txt" | sed 's/^/    /'
        bad "npm ci failed (npm registry unreachable?): cannot $3"
        return 1
    fi
    touch "$cache/.installed"
}

# totp SECRET: the current RFC 6238 code (30 s, 6 digits, HMAC-SHA1) of a
# base32 secret, as an authenticator app would show it (for `tern login`).
totp() {
    python3 -c '
import base64, hmac, hashlib, struct, sys, time
key = base64.b32decode(sys.argv[1] + "=" * (-len(sys.argv[1]) % 8))
mac = hmac.new(key, struct.pack(">Q", int(time.time()) // 30), hashlib.sha1).digest()
o = mac[-1] & 15
print("%06d" % ((struct.unpack(">I", mac[o:o + 4])[0] & 0x7fffffff) % 1000000))' "$1"
}

# need TOOL...: exits the test (FAIL) when a tool scripts/deps.sh installs
# is missing.
need() {
    for t in "$@"; do
        command -v "$t" >/dev/null || { echo "FAIL: $t missing (scripts/deps.sh installs it)"; exit 1; }
    done
}

# first_admin CONF OUT: adds the first admin, root (no token is needed while
# there is none), logs it in with its TOTP code and prints the session
# token; OUT keeps what `tern user add` printed. Needs $tern.
first_admin() {
    printf 'password of root\n' | "$tern" user -c "$1" add root --role admin --password-stdin \
        >"$2" 2>&1 || return 1
    printf 'password of root\n' | "$tern" login -c "$1" --user root --password-stdin \
        --totp "$(totp "$(sed -n 's/^TOTP secret: //p' "$2")")"
}

# caught_up DB: waits (up to 5 s) until the rows of store DB cover what a
# running engine has acknowledged, i.e. the end of the body log it published
# in DB-bodies/LOCK (docs/store.md). `tern messages` waits so by itself; a
# raw sqlite3 read right after an ACK could otherwise miss rows the engine
# writes a few milliseconds later.
caught_up() {
    [ -s "$1-bodies/LOCK" ] || return 0
    # shellcheck disable=SC2046 # two numbers, split on purpose
    set -- "$1" $(od -An -t u8 -N 16 "$1-bodies/LOCK")
    [ $# -eq 3 ] || return 0
    _i=0
    while [ "$_i" -lt 500 ]; do
        # shellcheck disable=SC2046
        set -- "$1" "$2" "$3" $(sqlite3 -cmd ".timeout 5000" "$1" "select seg, off from body_log" 2>/dev/null | tr '|' ' ')
        if [ $# -eq 5 ] && { [ "$4" -gt "$2" ] || { [ "$4" -eq "$2" ] && [ "$5" -ge "$3" ]; }; }; then
            return 0
        fi
        set -- "$1" "$2" "$3"
        sleep 0.01
        _i=$((_i + 1))
    done
}
