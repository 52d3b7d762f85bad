// server.mjs - MLLP-benchmark peer: an MLLP receiver built with npm
// @medplum/hl7's Hl7Server that answers every message with an AA ACK built by
// the library (Hl7Message.buildAck()) and stores nothing.
//
//     node bench/mllp/peer/server.mjs [PORT]
//
// Needs bench/mllp/peer/node_modules (npm ci --no-audit --no-fund in
// bench/mllp/peer; versions pinned in package.json / package-lock.json).
//
// Listens on 127.0.0.1 only. PORT 0 (the default) lets the kernel pick a free
// port. When listening it prints one line to stdout:
//     {"peer":"medplum-hl7","listening":"127.0.0.1","port":N}
// On SIGTERM or SIGINT it stops the server, prints
//     {"peer":"medplum-hl7","messages":N,"acks":N,"errors":N}
// and exits 0.
//
// Per message the library does, on its own: collect the socket chunks until
// one ends in FS CR, decode with iconv-lite (UTF-8), Hl7Message.parse(),
// queue and dispatch a 'message' event. This handler then calls
// message.buildAck() (AA) and connection.send(), which serialises the ACK,
// encodes it, frames it (VT ... FS CR) and writes it to the socket.
import net from 'node:net';
import { Hl7Server } from '@medplum/hl7';

const port = process.argv.length > 2 ? Number(process.argv[2]) : 0;
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write('usage: node server.mjs [PORT]\n');
  process.exit(2);
}

let messages = 0;
let acks = 0;
let errors = 0;

const server = new Hl7Server((connection) => {
  connection.addEventListener('message', ({ message }) => {
    messages++;
    connection.send(message.buildAck());
    acks++;
  });
  connection.addEventListener('error', (ev) => {
    errors++;
    if (errors <= 5) process.stderr.write(`connection error: ${ev.error?.message ?? ev.error}\n`);
  });
});

// Hl7Server.start(port) calls server.listen(port), which binds every
// interface. Keep the benchmark on loopback: while start() runs, servers
// created by node:net listen on 127.0.0.1. Nothing else of the library is
// changed.
const createServer = net.createServer;
net.createServer = (...args) => {
  const s = createServer(...args);
  const listen = s.listen;
  s.listen = (p, ...rest) => (typeof p === 'number' ? listen.call(s, p, '127.0.0.1', ...rest) : listen.call(s, p, ...rest));
  return s;
};
try {
  server.start(port);
} finally {
  net.createServer = createServer;
}

server.server.once('listening', () => {
  const a = server.server.address();
  process.stdout.write(JSON.stringify({ peer: 'medplum-hl7', listening: a.address, port: a.port }) + '\n');
});
server.server.on('error', (err) => {
  process.stderr.write(`server error: ${err.message}\n`);
  process.exit(1);
});

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  try {
    await server.stop({ forceDrainTimeoutMs: 2000 });
  } catch (err) {
    process.stderr.write(`stop: ${err.message}\n`);
  }
  process.stdout.write(JSON.stringify({ peer: 'medplum-hl7', messages, acks, errors }) + '\n');
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
