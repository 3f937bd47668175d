// tests/clients/apps/request_app.js — an application written with ioredis or node-redis that
// counts with retries that never apply twice: each increment is one request with its own id,
// sent as HMDB.REQ <prefix>-<n> INCR <prefix>:counter (docs/kv-commands.md, "Retries that
// never apply twice"); after any error the app sends the SAME words again until one attempt
// is answered, and only then goes on to n + 1. Driven by tests/clients/request_clients_test.py
// (the same output protocol as request_app.py).
//
//   node request_app.js --library ioredis|node-redis|node-redis4 --mode cluster|plain
//                       --addr HOST:PORT[,HOST:PORT...] --prefix P [--untagged 1]
//
// How each library sends a command it has no method for:
//   ioredis      client.call('HMDB.REQ', id, 'INCR', key)      (plain and Redis.Cluster: the
//                cluster client sends a command it cannot find keys in to a master)
//   node-redis   client.sendCommand(['HMDB.REQ', id, 'INCR', key]); a cluster client is told
//                the key that routes it: cluster.sendCommand(key, false, [...])
// --untagged sends plain INCR (the control: a retry after a lost reply may apply twice).
'use strict';

// An application's pause before it sends a request again.
const RETRY_PAUSE_MS = 10;
// node-redis 4: how long a new cluster client may take to connect before the app tries again.
const RECONNECT_TIMEOUT_MS = 250;

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i += 2) out[argv[i].replace(/^--/, '')] = argv[i + 1];
  for (const k of ['library', 'mode', 'addr', 'prefix']) {
    if (!out[k]) throw new Error(`missing --${k}`);
  }
  return out;
}

function emit(fields) {
  process.stdout.write(JSON.stringify(fields) + '\n');
}

const now = () => Number(process.hrtime.bigint());
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function withTimeout(promise, ms) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no connection within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function splitAddr(addr) {
  const colon = addr.lastIndexOf(':');
  return { host: addr.slice(0, colon).replace(/^\[|\]$/g, ''), port: Number(addr.slice(colon + 1)) };
}

// A client: { send(words, key) -> reply, version, close, recreate, discard }.
async function connect(args) {
  const addrs = args.addr.split(',');
  if (args.library === 'ioredis') {
    const Redis = require('ioredis');
    const c = args.mode === 'cluster' ? new Redis.Cluster([splitAddr(addrs[0])]) : new Redis(splitAddr(addrs[0]));
    c.on('error', (e) => emit({ ev: 'log', msg: `error event: ${e.message}` }));
    return {
      version: require('ioredis/package.json').version,
      send: (words) => c.call(...words),
      close: () => c.quit(),
    };
  }
  const moduleName = args.library === 'node-redis4' ? 'redis4' : 'redis';
  const redis = require(moduleName);
  const url = (a) => `redis://${a}`;
  const options = { rootNodes: addrs.map((a) => ({ url: url(a) })) };
  if (moduleName === 'redis') options.topologyRefreshOnReconnectionAttemptStrategy = 100;
  const cluster = args.mode === 'cluster';
  const c = cluster ? redis.createCluster(options) : redis.createClient({ url: url(addrs[0]) });
  c.on('error', (e) => emit({ ev: 'log', msg: `error event: ${e.message}` }));
  await c.connect();
  return {
    version: require(`${moduleName}/package.json`).version,
    send: (words, key) => (cluster ? c.sendCommand(key, false, words) : c.sendCommand(words)),
    close: () => (c.close ? c.close() : c.quit()),
    // node-redis 4's cluster client never rediscovers after its master dies (node_app.js):
    // the app replaces it after an error.
    recreate: moduleName === 'redis4' && cluster,
    discard: () => c.disconnect().catch(() => {}),
  };
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  let client = await connect(args);
  emit({ ev: 'ready', version: client.version });
  let stop = false;
  process.stdin.on('data', () => {});
  process.stdin.on('end', () => {
    stop = true;
  });
  const counter = `${args.prefix}:counter`;
  let n = 0;
  while (!stop) {
    const words = args.untagged ? ['INCR', counter] : ['HMDB.REQ', `${args.prefix}-${n}`, 'INCR', counter];
    const start = now();
    let value;
    for (;;) {  // the same request until it is answered
      try {
        value = await client.send(words, counter);
        break;
      } catch (e) {
        emit({ ev: 'err', n, t: now(), msg: `${e.name}: ${e.message}` });
        await sleep(RETRY_PAUSE_MS);
        if (client.recreate) {
          client.discard();
          try {
            client = await withTimeout(connect(args), RECONNECT_TIMEOUT_MS);
          } catch (e2) {
            emit({ ev: 'err', n, t: now(), msg: `reconnect: ${e2.name}: ${e2.message}` });
          }
        }
      }
    }
    emit({ ev: 'ack', n, v: Number(value), s: start, t: now() });
    n++;
  }
  emit({ ev: 'done', acked: n });
  await client.close().catch(() => {});
  process.exit(0);
}

main().catch((e) => {
  emit({ ev: 'fatal', msg: `${e.name}: ${e.message}` });
  process.exit(1);
});
