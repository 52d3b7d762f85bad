#!/bin/sh
# End-to-end tests of `tern messages` (list, show, reprocess, edit, prune,
# audit) through the real binary, against stores filled by
# tests/store_fixture (built next to the tests; its header gives the rules
# that decide each message's channel, type, patient, state and deliveries,
# which is where every expected count below comes from). Each group of tests
# gets a fresh store of 30 messages, so no group depends on another.
#   $1 = tern binary, $2 = source dir
set -u
tern=$1
case $tern in /*) ;; *) tern="$(pwd)/$tern" ;; esac
fixture=$(dirname "$tern")/tests/store_fixture
fail=0
. "$2/tests/lib/common.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export TZ=UTC
unset USER

ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fail=1; }

if [ ! -x "$fixture" ]; then
    echo "FAIL store_fixture not built at $fixture"
    exit 1
fi

# newstore NAME: a configuration $tmp/NAME/tern.yaml whose store holds the
# fixture's 30 messages
newstore() {
    mkdir -p "$tmp/$1"
    cat >"$tmp/$1/tern.yaml" <<'EOF'
store: { path: ./var/tern.db }
security: { auth: false }   # not about authentication (tests/security_*.sh are)
channels:
  - name: adt-in
    source: { type: mllp, listen: 127.0.0.1:2575 }
    filter: { types: [ADT^A01, ADT^A08] }
    destinations:
      - { name: archive, type: file, dir: ./out/adt, filename: "${MSH-10}.hl7" }
      - { name: downstream, type: mllp, host: 127.0.0.1, port: 2576 }
  - name: lab-in
    source: { type: mllp, listen: 127.0.0.1:2577 }
    destinations:
      - { name: archive, type: file, dir: ./out/lab, filename: "${MSH-10}.hl7" }
      - { name: results, type: http, url: "http://127.0.0.1:9000/results" }
EOF
    "$fixture" "$tmp/$1/var/tern.db" 30 >/dev/null || bad "store_fixture $1"
}

# run ARGS...: runs tern messages; stdout in $tmp/out, stderr in $tmp/err, exit code in $rc
run() { "$tern" messages "$@" >"$tmp/out" 2>"$tmp/err"; rc=$?; }
# expect DESC WANT_RC PATTERN ARGS...: exit code, and PATTERN in stdout+stderr
expect() {
    d=$1 want=$2 pat=$3; shift 3
    run "$@"
    if [ "$rc" = "$want" ] && cat "$tmp/out" "$tmp/err" | grep -q -- "$pat"; then
        ok "$d"
    else
        bad "$d (exit $rc, want $want; no '$pat' in:)"; cat "$tmp/out" "$tmp/err" | head -8
    fi
}
# rows DESC N ARGS...: `list` prints N messages (and exits 0)
rows() {
    d=$1 want=$2; shift 2
    run list "$@"
    n=$(($(wc -l <"$tmp/out") - 1))
    grep -q "^no messages match" "$tmp/out" && n=0
    if [ "$rc" = 0 ] && [ "$n" = "$want" ]; then ok "$d ($n)"; else
        bad "$d: $n rows, want $want (exit $rc)"; head -5 "$tmp/out" "$tmp/err"; fi
}
# has DESC PATTERN: the last run's stdout holds PATTERN
has() { if grep -q -- "$2" "$tmp/out"; then ok "$1"; else bad "$1: no '$2' in:"; head -12 "$tmp/out"; fi; }

# --- list --------------------------------------------------------------------------
newstore a
C="-c $tmp/a/tern.yaml"
rows "list everything" 30 $C --limit 100
run $C list
head -1 "$tmp/out" | grep -q "^ID  *RECEIVED  *CHANNEL  *STATE  *TYPE  *CONTROL ID  *PATIENT  *REVISION  *DELIVERIES$" \
    && ok "list header" || bad "list header: $(head -1 "$tmp/out")"
grep -q "^27  *20[0-9-]*T[0-9:]*+00:00  *adt-in  *received  *ADT^A08  *MSG00027  *PAT2  *1  *archive=sent downstream=error(3)$" \
    "$tmp/out" && ok "list row with compact deliveries" || { bad "list row"; grep "^27 " "$tmp/out"; }
has "list: rejected shows its error" "^29 .*rejected.*error: MSH-9 missing"
rows "--limit 5" 5 $C --limit 5
grep -q "more match.*--before 26" "$tmp/err" && ok "--limit says there is more" || bad "--limit hint: $(cat "$tmp/err")"
rows "--channel adt-in" 15 $C --channel adt-in
rows "--state error (delivery state)" 8 $C --state error
rows "--state queued" 8 $C --state queued
rows "--state sent" 24 $C --state sent
rows "--state rejected (message state)" 3 $C --state rejected
rows "--state filtered (message state)" 3 $C --state filtered
rows "--state delivery:filtered" 3 $C --state delivery:filtered
rows "--state received --state error" 8 $C --state received --state error
rows "--type ADT" 15 $C --type ADT
rows "--type ADT^A01" 8 $C --type ADT^A01
rows "--type ORU^R01" 15 $C --type ORU^R01
rows "--patient PAT1" 6 $C --patient PAT1
rows "--control-id MSG00007" 1 $C --control-id MSG00007
has "--control-id finds message 7" "^7 .*MSG00007"
rows "--facility LAB" 15 $C --facility LAB
rows "--since 2h (duration ago)" 2 $C --since 2h
rows "--since 30d" 27 $C --since 30d
rows "--since ISO date" 30 $C --since 2000-01-01
rows "--since ISO time with zone, in the future" 0 $C --since 2999-01-01T00:00:00Z
rows "--before 5" 4 $C --before 5
rows "--channel adt-in --state error" 4 $C --channel adt-in --state error
rows "--store instead of -c" 30 --store "$tmp/a/var/tern.db" --limit 1000

run $C list --json --limit 100
if [ "$rc" = 0 ] && python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin]
assert len(rows) == 30, len(rows)
err = [r for r in rows if any(d["state"] == "error" for d in r["deliveries"])]
assert len(err) == 8, len(err)
r = [r for r in rows if r["id"] == 27][0]
assert r["type"] == "ADT^A08" and r["patient_id"] == "PAT2" and r["control_id"] == "MSG00027"
assert r["deliveries"][1] == dict(r["deliveries"][1], dest="downstream", state="error", attempts=3,
                                  last_error="AE: unknown patient")
assert r["received_at"].endswith("+00:00")
' <"$tmp/out"; then ok "--json: one valid object per line, with deliveries"; else bad "--json"; head -2 "$tmp/out"; fi

run $C list --patient PAT1 --plan; has "--plan --patient uses patient_keys" "SEARCH patient_keys USING PRIMARY KEY"
run $C list --control-id MSG00001 --plan; has "--plan --control-id uses messages_control" "messages_control"
run $C list --state error --plan; has "--plan --state error uses deliveries_error" "deliveries_error"

# --- show ----------------------------------------------------------------------------
expect "show: summary" 0 "control id   MSG00027" $C show 27
has "show: delivery with attempts and last error" "downstream  *error  *3  .*AE: unknown patient"
has "show: one segment per line" "^  PID|1||PAT2^^^HOSP^MR||DOE^JANE$"
has "show: revision" "revision     1 (as received)"
printf 'MSH|^~\\&|APP|HOSP|TERN|TERN|20260115083000||ADT^A08|MSG00027|P|2.5.1\rPID|1||PAT2^^^HOSP^MR||DOE^JANE\r' >"$tmp/want27"
"$tern" messages $C show 27 --raw >"$tmp/raw27"
cmp -s "$tmp/want27" "$tmp/raw27" && ok "show --raw: exact bytes" || bad "show --raw bytes differ"
expect "show: rejected message" 0 "error        MSH-9 missing" $C show 29
expect "show: unknown id" 1 "there is no message 999 in" $C show 999

# --- reprocess -------------------------------------------------------------------------
newstore b
C="-c $tmp/b/tern.yaml"
expect "reprocess --dry-run counts" 0 "this requeues 8 deliveries of 8 messages" \
    $C reprocess --state error --dry-run
has "reprocess --dry-run changes nothing" "dry run: nothing changed"
rows "  still 8 in the error queue" 8 $C --state error
expect "reprocess above --limit refused without --yes" 1 "refusing to reprocess 8 messages, more than --limit 5" \
    $C reprocess --state error --limit 5
expect "reprocess --yes above --limit needs --reason" 1 "needs --reason" \
    $C reprocess --state error --limit 5 --yes
rows "  still 8 in the error queue" 8 $C --state error
expect "reprocess: nothing when every delivery succeeded" 0 "nothing to reprocess" $C reprocess 28
run $C list --control-id MSG00028; has "  28 untouched" "archive=sent results=sent$"
expect "reprocess one id: only the failed destination" 0 "requeued 1 delivery of 1 message" \
    $C reprocess 27 --user bob
run $C list --control-id MSG00027; has "  27: archive not resent" "archive=sent downstream=queued$"
expect "reprocess --dest resends a sent destination" 0 "requeued 1 delivery of 1 message" \
    $C reprocess 27 --dest archive --reason "archive lost the file" --user bob
run $C list --control-id MSG00027; has "  27: archive requeued" "archive=queued downstream=queued$"
expect "reprocess --dest unknown destination" 1 "has no destination 'ghost'" $C reprocess 27 --dest ghost
expect "reprocess unknown id" 1 "there is no message 999" $C reprocess 27 999
expect "reprocess --state error --channel" 0 "requeued 4 deliveries of 4 messages" \
    $C reprocess --state error --channel lab-in --reason "results endpoint back" --user alice
rows "  adt-in errors left" 3 $C --state error
expect "reprocess --yes --reason above the limit" 0 "requeued 3 deliveries of 3 messages" \
    $C reprocess --state error --limit 2 --yes --reason "bulk after outage" --user alice
rows "  error queue empty" 0 $C --state error
run $C list --state sent --channel adt-in
grep -q "downstream=queued" "$tmp/out" && ok "  sent destinations of reprocessed messages stay sent" \
    || bad "no reprocessed message among sent ones"
expect "audit: reprocess with reason and user" 0 "alice  *reprocess  *results endpoint back  *deliveries in state error of channel lab-in" \
    $C audit
has "audit: --dest reprocess by bob" "bob  *reprocess  *archive lost the file  *ids 27; destinations archive"
has "audit: no reason recorded as -" "bob  *reprocess  *-  *ids 27; destinations that did not succeed"
run $C audit --json
if [ "$rc" = 0 ] && python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin]
assert len(rows) == 4, len(rows)
assert rows[0]["why"] == "bulk after outage" and rows[0]["who"] == "alice", rows[0]
' <"$tmp/out"; then ok "audit --json"; else bad "audit --json"; cat "$tmp/out"; fi

# --- edit --------------------------------------------------------------------------------
newstore c
C="-c $tmp/c/tern.yaml"
printf 'MSH|^~\\&|APP|LAB\nPID|1\n' >"$tmp/bad.hl7"
expect "edit: invalid HL7 refused with the byte offset" 1 "bad.hl7 is not a valid HL7 v2 message: .*byte 16" \
    $C edit 24 "$tmp/bad.hl7"
rows "  nothing stored" 30 $C --limit 100
expect "edit: missing file" 1 "cannot open" $C edit 24 "$tmp/none.hl7"
expect "edit: unknown id" 1 "there is no message 999" $C edit 999 "$tmp/want27"
"$tern" messages $C show 24 --raw | sed 's/PAT4/PAT44/' | tr '\r' '\n' >"$tmp/fix24.hl7"
expect "edit: stores a new revision and queues it" 0 \
    "stored the correction of message 24 as message 31 (revision 2 of 24); 1 delivery queued: results" \
    $C edit 24 "$tmp/fix24.hl7" --reason "wrong patient id" --user carol
rows "  the new revision is listed" 1 $C --patient PAT44
has "  as revision 2 of 24" "^31 .*MSG00024  *PAT44  *2 of 24  *results=queued$"
run $C show 31 --raw
printf 'MSH|^~\\&|APP|LAB|TERN|TERN|20260115083000||ORU^R01|MSG00024|P|2.5.1\rPID|1||PAT44^^^HOSP^MR||DOE^JANE\r' >"$tmp/want31"
cmp -s "$tmp/want31" "$tmp/out" && ok "  stored CR-terminated" || bad "  revision bytes"
run $C show 24
has "  original kept, delivery superseded" "results  *superseded .*superseded by message 31"
has "  original shows its newest revision" "newest revision: 31 (revision 2)"
has "  revision chain" "^  31  *revision 2$"
"$tern" messages $C show 29 --raw >"$tmp/fix29.hl7"
expect "edit: rejected message goes to its channel's destinations" 0 \
    "as message 32 (revision 2 of 29); 2 deliveries queued: archive, downstream" $C edit 29 "$tmp/fix29.hl7"
expect "edit: rejected message without -c needs --dest" 1 "with --dest NAME" \
    --store "$tmp/c/var/tern.db" edit 19 "$tmp/fix29.hl7"
expect "edit: --dest routes it" 0 "1 delivery queued: downstream" \
    --store "$tmp/c/var/tern.db" edit 19 "$tmp/fix29.hl7" --dest downstream

# --- prune -----------------------------------------------------------------------------------
expect "prune: counts, refuses without --yes" 1 "nothing deleted.*--yes" $C prune --older-than 30d
has "  says how many" "^2 messages were received before .* (30d ago) have no delivery queued"
expect "prune --dry-run" 0 "dry run: nothing deleted" $C prune --older-than 30d --dry-run
rows "  nothing deleted" 33 $C --limit 100
export USER=dave # the default --user
expect "prune --yes" 0 "deleted 2 messages (audited as dave); gave .* back to the file system" \
    $C prune --older-than 30d --yes --reason "retention 30 days"
unset USER
rows "  old finished messages gone, queued one kept" 31 $C --limit 100
expect "  message 1 (all sent) is gone" 1 "there is no message 1 " $C show 1
expect "  message 2 (still queued) is kept" 0 "results  *queued" $C show 2
expect "audit: prune and edits" 0 "dave  *prune  *retention 30 days" $C audit
has "audit: edit with reason" "carol  *edit  *wrong patient id  *message 24 edited as message 31"
run $C audit --limit 1; [ "$(wc -l <"$tmp/out")" = 2 ] && ok "audit --limit 1" || bad "audit --limit 1"

# --- usage and failures ------------------------------------------------------------------------
expect "messages --help" 0 "usage: tern messages -c CONF COMMAND" --help
expect "list --help" 0 "usage: tern messages -c CONF list" list --help
expect "help reprocess" 0 "unless --yes and --reason" help reprocess
expect "no command" 2 "needs a command" 
expect "unknown command" 2 "unknown command 'frob'" $C frob
expect "unknown option" 2 "unknown option '--frob'" $C list --frob
expect "no store given" 2 "needs -c CONF" list
expect "-c and --store" 2 "not both" $C --store x list
expect "option without value" 2 "'--limit' needs a value" $C list --limit
expect "bad --limit" 2 "whole number" $C list --limit 0
expect "bad --since" 2 "--since needs a date or time" $C list --since yesterday
expect "bad --state" 2 "--state 'bogus'" $C list --state bogus
expect "show without id" 2 "needs the ID" $C show
expect "show bad id" 2 "'x1' is not a message id" $C show x1
expect "reprocess without selection" 2 "needs message ids, or --state error" $C reprocess
expect "reprocess ids and --state" 2 "not both" $C reprocess 1 --state error
expect "reprocess message state" 2 "takes a delivery state" $C reprocess --state received
expect "reprocess --dest twice" 2 "given twice" $C reprocess 1 --dest a --dest a
expect "edit without file" 2 "needs the message ID and the FILE" $C edit 1
expect "prune without --older-than" 2 "needs --older-than" $C prune
expect "prune bad duration" 2 "is not a duration" $C prune --older-than 3x
expect "missing configuration" 1 "cannot open the configuration" -c "$tmp/none.yaml" list
expect "missing store is not created" 1 "there is no store at $tmp/none.db" --store "$tmp/none.db" list
[ ! -e "$tmp/none.db" ] && ok "  and no file appeared" || bad "a store was created"
echo "not a database" >"$tmp/junk.db"
expect "not a store" 1 "cannot open the store: .*not a database" --store "$tmp/junk.db" list
exit $fail
