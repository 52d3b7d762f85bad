#!/bin/sh
# End-to-end test of a channel's declarative transform steps (docs/
# transforms.md) through `tern serve`: files dropped in a directory, the
# transformed messages written by a file destination.
#   1. set, copy and delete steps change the delivered copy; the stored
#      message stays exactly as received;
#   2. convert: glucose OBX-5, OBX-6 and OBX-7 from mg/dL to mmol/L (molar
#      mass 180.156), other OBX untouched, a non-numeric value kept;
#   3. a step that cannot apply (a unit that does not convert) sends the
#      delivery to the error queue with the step's line and the reason;
#   4. `tern config check` names the line of a bad step;
#   5. code maps, a Lua filter and Lua transform steps: a test patient is
#      filtered with the script's reason; OBX-3 is mapped to LOINC and a
#      script adds a segment; an unmapped code (policy error) and a script
#      error at delivery send the delivery to the error queue with the
#      reason (and the script's file and line); a filter script that fails
#      sends the message's deliveries to the error queue.
set -u
tern=$1
src=$2
. "$src/tests/lib/common.sh"
fail=0
work_dir
need sqlite3 python3
WAIT_TENTHS=100 # wait_for gives up after 10 s
mkdir -p "$tmp/in" "$tmp/in2"
srcabs=$(cd "$src" && pwd)
cat >"$tmp/add_nte.lua" <<'LUA'
-- adds a note after the last OBX; fails on purpose for control id BOOM
if msg:get("MSH-10") == "BOOM" then
  local x = nil
  return x.field
end
local last
for obx in msg:segments("OBX") do last = obx end
if last then
  local nte = msg:add_segment("NTE", last)
  nte:set("3", "codes mapped by Tern")
end
LUA
cat >"$tmp/filter.lua" <<'LUA'
if msg:get("MSH-10") == "FBOOM" then error("cannot decide") end
LUA
cat "$srcabs/examples/scripts/drop_test_patients.lua" >>"$tmp/filter.lua"
cat >"$tmp/tern.yaml" <<YAML
store: { path: ./var/tern.db }
http: { enabled: false }
maps:
  - { name: lab-loinc, file: $srcabs/examples/maps/lab_loinc.csv, unmapped: error }
channels:
  - name: scripted
    source: { type: file, dir: ./in2, glob: "*.hl7", after: delete, poll: 100ms, settle: 0 }
    filter: { script: ./filter.lua }
    transform:
      - { map: OBX-3, with: lab-loinc }
      - { script: ./add_nte.lua }
    destinations:
      - { name: out2, type: file, dir: ./out2, filename: "\${MSH-10}.hl7" }
  - name: lab
    source: { type: file, dir: ./in, glob: "*.hl7", after: delete, poll: 100ms, settle: 0 }
    transform:
      - { set: MSH-5.1, value: "LIS&LAB" }
      - { copy: PID-3.1, to: PID-2 }
      - { delete: ZPI }
      - convert: { code: 2345-7, to: mmol/L, mw: 180.156 }
      - convert: { code: 718-7, from: g/dL, to: g/L }
    destinations:
      - { name: out, type: file, dir: ./out, filename: "\${MSH-10}.hl7" }
security: { auth: false }   # not about authentication (tests/security_*.sh are)
YAML
db="$tmp/var/tern.db"
q() { caught_up "$db"; sqlite3 -cmd ".timeout 5000" "$db" "$1"; }

"$tern" serve -c "$tmp/tern.yaml" >"$tmp/serve.log" 2>&1 &
serve_pid=$!
pids="$pids $serve_pid"

printf 'MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240101120000||ORU^R01|T1|P|2.5.1\rPID|1||MRN42^^^HOSP^MR||DOE^JANE||19800101|F\rZPI|secret\rOBR|1|ORD1||24331-1^Lipid\rOBX|1|NM|2345-7^Glucose^LN||100|mg/dL^mg/dL^UCUM|70-99|H|||F\rOBX|2|NM|718-7^Hemoglobin^LN||13.5|g/dL|12.0-16.0||||F\rOBX|3|ST|2345-7^Glucose^LN||see note|mg/dL|||||F\rOBX|4|NM|2823-3^Potassium^LN||4.1|mmol/L|3.5-5.1||||F\r' >"$tmp/t1.tmp"
cp "$tmp/t1.tmp" "$tmp/t1.sent"
mv "$tmp/t1.tmp" "$tmp/in/t1.hl7"
check "the transformed message is delivered" wait_for "ls '$tmp/out' 2>/dev/null" "T1.hl7"
out=$(tr '\r' '\n' <"$tmp/out/T1.hl7")
seg() { printf '%s\n' "$out" | grep "^$1" | sed -n "${2:-1}p"; }
check "set: MSH-5.1 is the text LIS&LAB, escaped" [ "$(seg MSH | cut -d'|' -f5)" = "LIS\\T\\LAB" ]
check "copy: PID-2 holds PID-3.1" [ "$(seg PID | cut -d'|' -f3)" = "MRN42" ]
check "delete: no ZPI segment" [ -z "$(seg ZPI)" ]
check "convert: glucose 100 mg/dL -> 5.55 mmol/L, range and units too" \
    [ "$(seg OBX 1)" = "OBX|1|NM|2345-7^Glucose^LN||5.55|mmol/L^mmol/L^UCUM|3.89-5.50|H|||F" ]
check "convert: hemoglobin g/dL -> g/L" \
    [ "$(seg OBX 2)" = "OBX|2|NM|718-7^Hemoglobin^LN||135|g/L^g/L^UCUM|120-160||||F" ]
check "convert: a text value is kept, its unit follows" \
    [ "$(seg OBX 3)" = "OBX|3|ST|2345-7^Glucose^LN||see note|mmol/L^mmol/L^UCUM|||||F" ]
check "convert: other codes untouched" \
    [ "$(seg OBX 4)" = "OBX|4|NM|2823-3^Potassium^LN||4.1|mmol/L|3.5-5.1||||F" ]
id=$(q "select id from messages where control_id = 'T1'")
"$tern" messages -c "$tmp/tern.yaml" show "$id" --raw >"$tmp/stored.hl7"
check "the stored message is exactly as received" cmp -s "$tmp/stored.hl7" "$tmp/t1.sent"

# 3. a unit that does not convert to mmol/L
printf 'MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240101120000||ORU^R01|T2|P|2.5.1\rPID|1||MRN43\rOBX|1|NM|2345-7^Glucose^LN||12|%%|||||F\r' >"$tmp/t2.tmp"
mv "$tmp/t2.tmp" "$tmp/in/t2.hl7"
check "a step that cannot apply: the delivery is in the error queue" \
    wait_for "sqlite3 -cmd '.timeout 5000' '$db' \"select d.state from deliveries d join messages m on m.id = d.message_id where m.control_id = 'T2'\"" error
err=$(stored "$tmp/tern.yaml" T2 '*')
case $err in
*"transform at line 20 (convert 2345-7): OBX[1]"*"not commensurable"*) ok "... with the step's line and the reason" ;;
*) bad "... error text: $err" ;;
esac
check "... and nothing was written for it" [ ! -e "$tmp/out/T2.hl7" ]

# 5. maps and scripts
drop() { # NAME CONTROL_ID PID-3.1 PID-5.1 OBX-3
    printf 'MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240101120000||ORU^R01|%s|P|2.5.1\rPID|1||%s^^^HOSP^MR||%s^JO||19800101|F\rOBR|1|O1||24331-1^Lipid\rOBX|1|NM|%s||100|mg/dL|||||F\r' "$2" "$3" "$4" "$5" >"$tmp/$1.tmp"
    mv "$tmp/$1.tmp" "$tmp/in2/$1.hl7"
}
dstate() { stored "$tmp/tern.yaml" "$1" '*'; }
drop m1 M1 MRN1 DOE "GLU^Glucose"
drop m2 M2 TST99 DOE "GLU^Glucose"
drop m3 M3 MRN3 DOE "XYZ^Unknown"
drop m4 BOOM MRN4 DOE "HGB^Hemoglobin"
drop m5 FBOOM MRN5 DOE "GLU^Glucose"
check "map + script: delivered" wait_for "ls '$tmp/out2' 2>/dev/null" "M1.hl7"
out=$(tr '\r' '\n' <"$tmp/out2/M1.hl7")
check "map: OBX-3 is the LOINC code, display and system" \
    [ "$(seg OBX 1 | cut -d'|' -f4)" = "2345-7^Glucose [Mass/volume] in Serum or Plasma^http://loinc.org" ]
check "script: an NTE after the last OBX" [ "$(printf '%s\n' "$out" | tail -1)" = "NTE|||codes mapped by Tern" ]
check "filter script: a test patient is filtered, with the script's reason" \
    wait_for "stored '$tmp/tern.yaml' M2" "filtered filtered by script: test patient (MRN TST99)"
check "unmapped code (policy error): the delivery is in the error queue" wait_for "sqlite3 -cmd '.timeout 5000' '$db' \"select d.state from deliveries d join messages m on m.id = d.message_id where m.control_id = 'M3'\"" error
case $(dstate M3) in
*"transform at line 10 (map lab-loinc): OBX-3.1: code 'XYZ' is not in the map"*) ok "... with the step and the code" ;;
*) bad "... error: $(dstate M3)" ;;
esac
check "script error at delivery: the error queue" wait_for "sqlite3 -cmd '.timeout 5000' '$db' \"select d.state from deliveries d join messages m on m.id = d.message_id where m.control_id = 'BOOM'\"" error
case $(dstate BOOM) in
*"transform at line 11 (script): "*"add_nte.lua:4: "*) ok "... with the script's file and line" ;;
*) bad "... error: $(dstate BOOM)" ;;
esac
check "filter script error: stored, deliveries in the error queue" wait_for "sqlite3 -cmd '.timeout 5000' '$db' \"select d.state from deliveries d join messages m on m.id = d.message_id where m.control_id = 'FBOOM'\"" error
case $(dstate FBOOM) in
*"filter script failed: "*"filter.lua:1: cannot decide"*) ok "... with the script's file and line" ;;
*) bad "... error: $(dstate FBOOM)" ;;
esac
"$tern" messages -c "$tmp/tern.yaml" list --state error --channel scripted >"$tmp/errq" 2>&1
[ "$(grep -c 'scripted' "$tmp/errq")" = 3 ] && ok "tern messages list --state error shows the three" || bad "error queue: $(cat "$tmp/errq")"
# fix the data: after the map gets the code, reprocessing delivers M3
kill -TERM "$serve_pid"
wait "$serve_pid"
check "SIGTERM: exit 0" [ $? -eq 0 ]

# 4. config check names the line of a bad step
cat >"$tmp/bad.yaml" <<'YAML'
store: { path: ./var/tern.db }
channels:
  - name: lab
    source: { type: file, dir: ./in, after: delete }
    transform:
      - { set: PID-8 }
      - { copy: PID-3, to: nope }
      - { convert: { code: X, to: furlongs } }
      - { set: PID-8, value: U, delete: ZPI }
YAML
"$tern" config check -c "$tmp/bad.yaml" >"$tmp/check.out" 2>&1
check "config check: exit 1 on bad steps" [ $? -eq 1 ]
grep -q "bad.yaml:6:.*value" "$tmp/check.out" && ok "... set without value (line 6)" || bad "... line 6: $(cat "$tmp/check.out")"
grep -q "bad.yaml:7:.*nope.*not an HL7 path" "$tmp/check.out" && ok "... bad path (line 7)" || bad "... line 7"
grep -q "bad.yaml:8:.*furlongs.*not a UCUM unit" "$tmp/check.out" && ok "... bad unit (line 8)" || bad "... line 8"
grep -q "bad.yaml:9:.*exactly one" "$tmp/check.out" && ok "... two kinds in one step (line 9)" || bad "... line 9"
printf 'source_code,target_code\nA,1\n"B,2\n' >"$tmp/broken.csv"
printf 'if then\n' >"$tmp/syntax.lua"
cat >"$tmp/bad2.yaml" <<'YAML'
store: { path: ./var/tern.db }
maps:
  - { name: broken, file: ./broken.csv }
  - { name: odd, file: ./broken.csv, unmapped: sometimes }
channels:
  - name: lab
    source: { type: file, dir: ./in, after: delete }
    filter: { script: ./syntax.lua }
    transform:
      - { map: OBX-3, with: nosuchmap }
YAML
"$tern" config check -c "$tmp/bad2.yaml" >"$tmp/check2.out" 2>&1
grep -q "bad2.yaml:3:.*code map 'broken'.*broken.csv:3:1: quoted field is never closed" "$tmp/check2.out" && ok "... a bad CSV row, with its line" || bad "... CSV: $(cat "$tmp/check2.out")"
grep -q "bad2.yaml:4:.*'unmapped' is error, warning or pass" "$tmp/check2.out" && ok "... an unknown policy" || bad "... policy"
grep -q "bad2.yaml:8:.*syntax.lua:1:" "$tmp/check2.out" && ok "... a Lua syntax error, with the script's line" || bad "... lua syntax"
grep -q "bad2.yaml:10:.*no code map named 'nosuchmap'" "$tmp/check2.out" && ok "... an unknown map" || bad "... unknown map"

[ $fail -eq 0 ] || { echo "--- serve.log"; cat "$tmp/serve.log"; echo "--- check.out"; cat "$tmp/check.out"; }
exit $fail
