#!/bin/sh
# `tern dictionary`: the data dictionary of a configuration, in Markdown and
# HTML, lists every field a channel reads or writes with the rules and
# transform steps that concern it; the demo configuration works too.
set -u
tern=$1
src=$2
. "$src/tests/lib/common.sh"
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/tern.yaml" <<'YAML'
store: { path: ./var/tern.db }
channels:
  - name: lab
    source: { type: mllp, listen: 127.0.0.1:2999 }
    filter: { types: [ORU^R01] }
    validation:
      profiles:
        - message: ORU^R01
          fields:
            - { path: PID-3, required: true, type: CX }
            - { path: OBX-5, type: NM, when: "OBX-2=NM", min: 0 }
    transform:
      - { set: MSH-5.1, value: "LIS|<X>" }
      - { copy: PID-3.1, to: PID-2 }
      - convert: { code: 2345-7, to: mmol/L, mw: 180.156 }
    destinations:
      - { name: archive, type: file, dir: ./out, filename: "${MSH-10}-${PID-3.1}.hl7" }
  - name: plain
    source: { type: file, dir: ./in, after: delete }
    validation: { baseline: false }
YAML
"$tern" dictionary -c "$tmp/tern.yaml" >"$tmp/d.md"
[ $? -eq 0 ] && ok "markdown: exit 0" || bad "markdown: exit code"
has() { grep -qF -- "$1" "$tmp/$3" && ok "$2" || bad "$2"; }
has '## Channel lab' "a section per channel" d.md
has '| `PID-3` |  | baseline: CX (ID, check digit, assigning authority, type in 0203); profile ORU^R01 (line 10): required, CX |  |' "PID-3: baseline and profile rules" d.md
has '| `PID-3.1` | patient id: stored, searchable; file name of destination archive |  | step 2: copied to PID-2 |' "PID-3.1: search key, file name, copy step" d.md
has '| `OBX-5` |  | baseline: NM when OBX-2 is NM; physiologic limits (physiologic); profile ORU^R01 (line 11): NM, at least 0, when OBX-2=NM | step 3: when OBX-3.1 = 2345-7: converted to mmol/L (molar mass given) |' "OBX-5: rules and the unit conversion" d.md
has 'step 1: set to "LIS\|<X>"' "a | in a value is escaped in Markdown" d.md
has 'Accepts: ORU^R01' "the filter" d.md
# the channel without baseline lists no baseline rule
sed -n '/## Channel plain/,$p' "$tmp/d.md" >"$tmp/plain.md"
grep -q 'baseline:' "$tmp/plain.md" && bad "baseline: false lists no baseline rule" || ok "baseline: false lists no baseline rule"
"$tern" dictionary -c "$tmp/tern.yaml" --format html -o "$tmp/d.html"
[ $? -eq 0 ] && ok "html: exit 0" || bad "html: exit code"
has '<td><code>PID-3.1</code></td>' "html: a row per field" d.html
has 'set to &quot;LIS|&lt;X&gt;&quot;' "html: text is escaped" d.html
python3 - "$tmp/d.html" <<'PY' && ok "html: tags balance" || bad "html: tags do not balance"
import sys, html.parser
class P(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(); self.stack = []; self.bad = False
    def handle_starttag(self, t, a):
        if t not in ("meta", "br"): self.stack.append(t)
    def handle_endtag(self, t):
        if not self.stack or self.stack.pop() != t: self.bad = True
p = P(); p.feed(open(sys.argv[1], encoding="utf-8").read())
sys.exit(1 if p.bad or p.stack else 0)
PY
"$tern" dictionary -c "$src/examples/demo/tern.yaml" >/dev/null && ok "the demo configuration" || bad "the demo configuration"
"$tern" dictionary -c "$tmp/tern.yaml" --format pdf 2>/dev/null; [ $? -eq 2 ] && ok "unknown format: exit 2" || bad "unknown format"
exit $fail
