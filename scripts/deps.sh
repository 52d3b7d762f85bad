#!/bin/sh
# Installs the Debian packages Tern builds, tests and benchmarks with.
# Idempotent: packages already present are not reinstalled, and nothing runs
# apt-get when everything is there. Works as root or through sudo.
set -eu

PKGS="build-essential cmake pkg-config clang libclang-rt-14-dev
libcmocka-dev libevent-dev libssl-dev openssl libsqlite3-dev sqlite3 libpq-dev
libjansson-dev libyaml-dev liblua5.4-dev libargon2-dev
python3 python3-hl7 nodejs npm curl wrk procps"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        missing="$missing $p"
    fi
done

# npm may come from outside Debian (e.g. a nodesource install); accept it.
case " $missing " in
*" npm "*) if command -v npm >/dev/null 2>&1; then missing=$(echo "$missing" | sed 's/ npm//'); fi ;;
esac
case " $missing " in
*" nodejs "*) if command -v node >/dev/null 2>&1; then missing=$(echo "$missing" | sed 's/ nodejs//'); fi ;;
esac

if [ -z "$(echo "$missing" | tr -d ' ')" ]; then
    exit 0
fi

echo "deps: installing:$missing"
SUDO=""
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "deps: need root (or sudo) to install:$missing" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || true
# shellcheck disable=SC2086
$SUDO apt-get install -y --no-install-recommends $missing
