// tests/clients/apps/node_app.js — an application written with ioredis or node-redis, as a
// user would write it: the client test driver (tests/clients/client_test.py) starts it and
// reads what it did.
//
//   node node_app.js --library ioredis|node-redis|node-redis4 --mode cluster|plain
//                    --addr HOST:PORT --prefix P
//
// The libraries come from tests/clients/node_modules (scripts/install-deps.sh):
// ioredis, node-redis' current major as `redis`, node-redis 4 as `redis4`. Connecting:
//   ioredis      cluster: new Redis.Cluster([{host, port}])     plain: new Redis({host, port})
//   node-redis   cluster: createCluster({rootNodes: [{url: 'redis://HOST:PORT'}]})
//                plain:   createClient({url: 'redis://HOST:PORT'})
// each with the library's defaults, and an 'error' listener (node-redis requires one; an
// app logs what it gets).
//
// Output, one JSON object per line (the same protocol as redis_py_app.py):
//   {"ev":"ready"} · {"ev":"ack","n":N,"s":NS,"t":NS} (called at s, acknowledged at t) · {"ev":"err","n":N,"t":NS,"msg":...} ·
//   {"ev":"done","acked":K} after "stop" (or EOF) on stdin. NS is CLOCK_MONOTONIC
//   (process.hrtime), the clock the driver's time.monotonic_ns() reads.
// Writes go one at a time; after an error the app waits RETRY_PAUSE_MS and sends the same
// SET again (a SET is safe to repeat), as an application's own retry loop would.
'use strict';

// An application's pause before it retries a write the library gave up on.
const RETRY_PAUSE_MS = 10;

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

function now() {
  return Number(process.hrtime.bigint());
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// node-redis 4: how long a new cluster client may take to connect before the app tries again.
const RECONNECT_TIMEOUT_MS = 250;

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

function urlOf(addr) {
  const { host, port } = splitAddr(addr);
  return `redis://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

async function connect(args) {
  const { host, port } = splitAddr(args.addr.split(',')[0]);
  if (args.library === 'ioredis') {
    const Redis = require('ioredis');
    const client = args.mode === 'cluster' ? new Redis.Cluster([{ host, port }]) : new Redis({ host, port });
    client.on('error', (e) => emit({ ev: 'log', msg: `error event: ${e.message}` }));
    return {
      version: require('ioredis/package.json').version,
      set: (k, v) => client.set(k, v),
      get: (k) => client.get(k),
      close: () => client.quit(),
    };
  }
  const moduleName = args.library === 'node-redis4' ? 'redis4' : 'redis';
  const redis = require(moduleName);
  const rootNodes = args.addr.split(',').map((a) => ({ url: urlOf(a) }));
  const options = { rootNodes };
  if (moduleName === 'redis') options.topologyRefreshOnReconnectionAttemptStrategy = 100;
  const client = args.mode === 'cluster' ? redis.createCluster(options) : redis.createClient({ url: urlOf(args.addr) });
  client.on('error', (e) => emit({ ev: 'log', msg: `error event: ${e.message}` }));
  await client.connect();
  return {
    version: require(`${moduleName}/package.json`).version,
    set: (k, v) => client.set(k, v),
    get: (k) => client.get(k),
    close: () => (client.close ? client.close() : client.quit()),
    // node-redis 4's cluster client never rediscovers after its master dies: commands for
    // the dead master wait in that node client's queue for good (with Redis Cluster too).
    // The app replaces the whole cluster client after an error instead.
    recreate: moduleName === 'redis4' && args.mode === 'cluster',
    discard: () => client.disconnect().catch(() => {}),
  };
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  let client = await connect(args);
  await client.set(`${args.prefix}:smoke`, 'hello');
  const got = await client.get(`${args.prefix}:smoke`);
  if (got !== 'hello') {
    emit({ ev: 'fatal', msg: `GET read back ${JSON.stringify(got)}` });
    process.exit(1);
  }
  emit({ ev: 'ready', version: client.version });

  let stop = false;
  process.stdin.on('data', () => {});
  process.stdin.on('end', () => {
    stop = true;
  });
  let n = 0;
  let acked = 0;
  while (!stop) {
    const start = now();
    try {
      await client.set(`${args.prefix}:${n}`, String(n));
    } catch (e) {
      emit({ ev: 'err', n, t: now(), msg: `${e.name}: ${e.message}` });
      await sleep(RETRY_PAUSE_MS);
      if (client.recreate) {
        client.discard();
        try {
          // Its connect() waits for good while the master it was told of is dead (an
          // election is running): bounded, then tried again.
          client = await withTimeout(connect(args), RECONNECT_TIMEOUT_MS);
        } catch (e2) {
          emit({ ev: 'err', n, t: now(), msg: `reconnect: ${e2.name}: ${e2.message}` });
        }
      }
      continue;
    }
    emit({ ev: 'ack', n, s: start, t: now() });
    acked++;
    n++;
  }
  emit({ ev: 'done', acked });
  await client.close().catch(() => {});
  process.exit(0);
}

main().catch((e) => {
  emit({ ev: 'fatal', msg: `${e.name}: ${e.message}` });
  process.exit(1);
});
