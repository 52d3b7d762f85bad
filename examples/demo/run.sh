#!/bin/sh
# make demo: shows what Tern does today on the example messages in
# examples/messages. When the engine (`tern serve`) lands, this script starts
# it on examples/demo/tern.yaml instead and prints where to point a sender and
# a browser.
set -eu
tern=${1:-build/tern}
here=$(cd "$(dirname "$0")/.." && pwd)
msgs="$here/messages"
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

echo "Tern $("$tern" version | cut -d' ' -f2) demo: the HL7 v2 core on examples/messages/"
step tern get "$msgs/adt_a01.hl7" PID-5.1 PID-5.2 PID-3[2].1 PID-11.3 AL1-5
"$tern" get "$msgs/adt_a01.hl7" PID-5.1 PID-5.2 'PID-3[2].1' PID-11.3 AL1-5
step tern get "$msgs/oru_r01.hl7" 'OBX[2]-3.2' 'OBX[2]-5' 'OBX[2]-8' 'OBX[3]-5'
"$tern" get "$msgs/oru_r01.hl7" 'OBX[2]-3.2' 'OBX[2]-5' 'OBX[2]-8' 'OBX[3]-5'
step tern parse "$msgs/lab_batch.hl7"
"$tern" parse "$msgs/lab_batch.hl7" | cut -c1-160 | sed 's/$/ .../'
step tern parse --stats "$msgs/lab_batch.hl7"
"$tern" parse --stats "$msgs/lab_batch.hl7"
step tern ack "$msgs/adt_a01.hl7"
"$tern" ack "$msgs/adt_a01.hl7"
step tern ack --code AE --text "Unknown patient" "$msgs/oru_r01.hl7"
"$tern" ack --code AE --text "Unknown patient" "$msgs/oru_r01.hl7"
echo
echo "The engine (tern serve: MLLP/HTTP/file channels, durable store) is issue #4 and"
echo "is not in this build yet; see README.md for what exists."
