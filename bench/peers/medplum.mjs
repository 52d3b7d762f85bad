// medplum.mjs - parse-benchmark peer: Hl7Message.parse from npm @medplum/core.
//
//     node bench/peers/medplum.mjs CORPUS
//
// Needs bench/peers/node_modules (npm ci --no-audit --no-fund in bench/peers;
// the version is pinned in package.json / package-lock.json).
//
// Reads CORPUS as a Buffer (not timed), then times, in one go:
//   * decoding the bytes as UTF-8 into a JS string;
//   * splitting into lines at CR, LF or CRLF; a message starts at a line whose
//     first 3 characters are "MSH"; empty lines and FHS/BHS/BTS/FTS lines are
//     not part of any message;
//   * joining each message's lines with CR and Hl7Message.parse() on it.
//     Medplum splits segments on /[\r\n]+/ itself, so CR is enough; joining
//     (rather than passing the raw slice) also keeps a trailing line end from
//     becoming an empty extra segment. Medplum splits segments, fields,
//     repetitions and components eagerly; sub-components are split on access
//     and escapes are never decoded.
//   * counting the segments of each parsed message.
// Prints one line of JSON (MB = 10^6 bytes).
import { readFileSync } from 'node:fs';
import { Hl7Message } from '@medplum/core';

const ENVELOPE = new Set(['FHS', 'BHS', 'BTS', 'FTS']);

function main() {
  if (process.argv.length !== 3) {
    process.stderr.write('usage: node medplum.mjs CORPUS\n');
    process.exit(2);
  }
  const data = readFileSync(process.argv[2]);

  const t0 = process.hrtime.bigint();
  const text = data.toString('utf8');
  const lines = text.split(/\r\n|\r|\n/);
  let messages = 0;
  let segments = 0;
  let cur = null; // lines of the message being collected
  const flush = () => {
    segments += Hl7Message.parse(cur.join('\r')).segments.length;
    messages++;
  };
  for (const line of lines) {
    const id = line.slice(0, 3);
    if (id === 'MSH') {
      if (cur !== null) flush();
      cur = [line];
    } else if (line.length === 0 || ENVELOPE.has(id)) {
      continue;
    } else if (cur !== null) {
      cur.push(line);
    }
    // A non-empty line before the first MSH belongs to no message: skipped.
  }
  if (cur !== null) flush();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;

  const round = (x, d) => Math.round(x * 10 ** d) / 10 ** d;
  console.log(JSON.stringify({
    peer: 'medplum',
    messages,
    segments,
    bytes: data.length,
    seconds: round(seconds, 4),
    mb_per_s: round(data.length / 1e6 / seconds, 2),
    messages_per_s: round(messages / seconds, 1),
  }));
}

main();
