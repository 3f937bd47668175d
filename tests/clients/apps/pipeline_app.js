// tests/clients/apps/pipeline_app.js — several ioredis clients that each send one big pipeline
// at once, for tests/system/read_bound_test.py (the server's per-turn read bound met by real
// clients). Connects CLIENTS clients (each answers PING), prints "ready", waits for "go" on
// stdin (the test stops the server meanwhile), then sends every client's pipeline of SETS pairs
// (SET <prefix><n>:<i> <value>, INCR <prefix>seq:<n>) without waiting, prints "sent", and once
// every reply is in prints one JSON line: per client, the index of the first reply that was not
// OK / i + 1 in order (null if all were) and the replies counted.
//
//   node pipeline_app.js --port P --clients N --sets S --value-bytes B --prefix X
'use strict';
const readline = require('readline');
const Redis = require('ioredis');

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i += 2) out[argv[i].replace(/^--/, '')] = argv[i + 1];
  for (const k of ['port', 'clients', 'sets', 'value-bytes', 'prefix']) {
    if (out[k] === undefined) throw new Error(`missing --${k}`);
  }
  return out;
}

// The value of pair i of client n: its name, padded to B bytes (read back by the test).
function value(prefix, n, i, bytes) {
  const head = `${prefix}${n}:${i}:`;
  return head + 'v'.repeat(bytes - head.length);
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const clients = Number(a.clients), sets = Number(a.sets), bytes = Number(a['value-bytes']);
  const conns = [];
  for (let n = 0; n < clients; n++) {
    // No reconnect, no offline queue: a lost connection is the test's failure, not a retry.
    const c = new Redis({ host: '127.0.0.1', port: Number(a.port), maxRetriesPerRequest: 0,
                          enableOfflineQueue: false, retryStrategy: () => null });
    c.on('error', (e) => process.stderr.write(`client ${n}: ${e.message}\n`));
    await new Promise((resolve) => c.once('ready', resolve));
    if ((await c.ping()) !== 'PONG') throw new Error(`client ${n}: PING`);
    conns.push(c);
  }
  process.stdout.write('ready\n');
  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    if (line.trim() === 'go') break;
  }
  rl.close();
  const runs = conns.map((c, n) => {
    const p = c.pipeline();
    for (let i = 0; i < sets; i++) {
      p.set(`${a.prefix}${n}:${i}`, value(a.prefix, n, i, bytes));
      p.incr(`${a.prefix}seq:${n}`);
    }
    return p.exec();
  });
  process.stdout.write('sent\n');
  const results = await Promise.all(runs.map((r) => r.then((v) => v, (e) => e)));
  const out = results.map((replies, n) => {
    if (replies instanceof Error) return { client: n, error: replies.message };
    let bad = null;
    for (let k = 0; k < replies.length && bad === null; k++) {
      const [err, reply] = replies[k];
      const want = k % 2 === 0 ? 'OK' : Math.floor(k / 2) + 1;
      if (err || reply !== want) bad = { index: k, got: err ? `error: ${err.message}` : reply, want };
    }
    return { client: n, replies: replies.length, bad };
  });
  process.stdout.write(JSON.stringify(out) + '\n');
  for (const c of conns) c.disconnect();
  process.exit(0);  // stdin stays open (the test's pipe)
}

main().catch((e) => {
  process.stderr.write(`pipeline_app: ${e.stack || e}\n`);
  process.exit(1);
});
