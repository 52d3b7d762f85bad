#!/bin/sh
# The CLI contract: `tern help` lists every command, every command answers
# --help with exit 0, unknown commands and options exit 2 with a clear error.
set -u
tern=$1
fail=0
"$tern" help >/tmp/tern_help.$$ || fail=1
for cmd in $(sed -n 's/^  \([a-z]*\) .*/\1/p' /tmp/tern_help.$$); do
    out=$("$tern" "$cmd" --help 2>&1); rc=$?
    [ $rc = 0 ] && echo "$out" | grep -qi "usage\|tern" || { echo "FAIL $cmd --help (rc $rc)"; fail=1; }
    [ "$cmd" = help ] || [ "$cmd" = version ] && continue
    err=$("$tern" "$cmd" --no-such-option 2>&1 >/dev/null); rc=$?
    [ $rc = 2 ] && echo "$err" | grep -q "no-such-option" || { echo "FAIL $cmd unknown option (rc $rc): $err"; fail=1; }
    echo "ok   $cmd"
done
rm -f /tmp/tern_help.$$
"$tern" no-such-command >/dev/null 2>&1; [ $? = 2 ] || { echo "FAIL unknown command"; fail=1; }
"$tern" >/dev/null 2>&1; [ $? = 2 ] || { echo "FAIL no command"; fail=1; }
"$tern" help parse | grep -q "max-field" || { echo "FAIL help parse"; fail=1; }
"$tern" version | grep -q "^tern [0-9]" || { echo "FAIL version"; fail=1; }
exit $fail
