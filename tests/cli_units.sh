#!/bin/sh
# End-to-end tests of `tern units` through the real binary: the conversions
# docs/units.md shows, negative values and ranges, exit 1 with the reason on
# stderr for unknown or non-commensurable units, exit 2 for usage errors,
# and --help.
set -u
tern=$1
src=$2
fail=0
. "$src/tests/lib/common.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

conv() { # expected-stdout args...: exit 0, that line, nothing on stderr
    want=$1; shift
    "$tern" units "$@" >"$tmp/out" 2>"$tmp/err"; rc=$?
    got=$(cat "$tmp/out")
    if [ "$rc" = 0 ] && [ "$got" = "$want" ] && [ ! -s "$tmp/err" ]; then
        ok "units $*"
    else
        bad "units $*: exit $rc, got '$got', want '$want'"; cat "$tmp/err"
    fi
}

conv "5.55 mmol/L" 100 mg/dL mmol/L --mw 180.156
conv "5.55 mmol/L" --mw=180.156 100 mg/dL mmol/L
conv "100 mg/dL" 5.55 mmol/L mg/dL --mw 180.156
conv "1 10*9/L" 1 10*3/uL 10*9/L
conv "0.0100 g/L" 1.00 mg/dL g/L
conv "454 g" 1 '[lb_av]' g
conv "37.0 Cel" 98.6 '[degF]' Cel
conv "310.15 K" 37 Cel K
conv "-40 [degF]" -40 Cel '[degF]'
conv "-40 [degF]" -- -40 Cel '[degF]'
conv "16.0 kPa" 120 'mm[Hg]' kPa
conv "0.0167 Hz" 1 /min Hz
conv "60 min" 1 h min
conv "5 mg/L" 5 ug/mL mg/L
conv "0.50 1" 50 % 1
conv "5000000 /L" 5 '{cells}/uL' /L
conv "<0.05 g/L" '<5' mg/dL g/L
conv ">=12 g/L" '>=1.2E3' mg/dL g/L
conv "63.1-90.1 mg/dL" --range 3.5-5.0 mmol/L mg/dL --mw 180.156
conv "-18.0 - -9.01 mg/dL" --range '-1.0 - -0.5' mmol/L mg/dL --mw 180.156
conv "<0.05 g/L" --range '<5' mg/dL g/L

fails() { # exit-code stderr-pattern args...: that exit, one line naming the reason
    want_rc=$1; pattern=$2; shift 2
    "$tern" units "$@" >"$tmp/out" 2>"$tmp/err"; rc=$?
    if [ "$rc" = "$want_rc" ] && grep -q -- "$pattern" "$tmp/err" && [ ! -s "$tmp/out" ]; then
        ok "units $* (exit $rc)"
    else
        bad "units $*: exit $rc (want $want_rc), stderr:"; cat "$tmp/err"; cat "$tmp/out"
    fi
}

fails 1 "^tern units: mg/dL (mass/volume) and mmol/L (amount of substance/volume) are not commensurable; give the analyte's molar mass to convert mass to moles (--mw G/MOL)\$" \
    100 mg/dL mmol/L
fails 1 "mg (mass) and s (time) are not commensurable\$" 1 mg s
fails 1 "unknown unit 'xyz' at position 4" 1 mg/xyz g
fails 1 "did you mean 'meq'" 1 mEq/L mmol/L
fails 1 "can only be used alone" 1 Cel/h K/h
fails 1 "position" 1 'm^2' m2
fails 1 "are not commensurable" 1 meq/L mmol/L --mw 58.44
fails 2 "'POS' is not a number" POS mg/dL g/L
fails 2 "is not a range" --range 3.5-abc mg/dL g/L
fails 2 "needs VALUE FROM TO" 100 mg/dL
fails 2 "needs VALUE FROM TO"
fails 2 "one argument too many" 1 g mg kg
fails 2 "unknown option '--bogus'" --bogus 1 g mg
fails 2 "--mw 'abc'" 1 g mol --mw abc
fails 2 "--mw '-5'" 1 g mol --mw -5
fails 2 "--mw '0'" 1 g mol --mw 0
fails 2 "needs a value" 1 g mol --mw
fails 2 "Try 'tern units --help'" --bogus

"$tern" units --help >"$tmp/out" 2>&1; rc=$?
[ $rc = 0 ] && grep -q '^usage: tern units' "$tmp/out" && grep -q -- '--mw' "$tmp/out" \
    && ok "--help" || bad "--help (exit $rc)"
"$tern" help units >"$tmp/out" 2>&1; rc=$?
[ $rc = 0 ] && grep -q -- '--range' "$tmp/out" && ok "help units" || bad "help units (exit $rc)"
"$tern" help >"$tmp/out" 2>&1
grep -q '^  units ' "$tmp/out" && ok "listed in tern help" || bad "not listed in tern help"

[ $fail = 0 ] && echo "all cli_units tests passed"
exit $fail
