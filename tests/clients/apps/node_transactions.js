// tests/clients/apps/node_transactions.js — transactions as an application writes them with
// ioredis or node-redis: multi() ... exec() (MULTI/EXEC), a WATCH conflict between two
// clients (the watching client's EXEC fails: ioredis answers null, node-redis throws
// WatchError) and its retry, and a transaction over keys of different hash slots (which
// the cluster clients send to the one shard that owns every slot). Driven by
// tests/clients/transaction_clients_test.py; checks what it sees and exits 1 on the first
// surprise, printing one JSON line per step.
//
//   node node_transactions.js --library ioredis|node-redis|node-redis4 --mode plain|cluster
//                             --addr HOST:PORT[,HOST:PORT...] --prefix P
'use strict';

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

function expect(cond, what, got) {
  if (!cond) {
    emit({ ev: 'fail', what, got });
    process.exit(1);
  }
}

function splitAddr(addr) {
  const colon = addr.lastIndexOf(':');
  return { host: addr.slice(0, colon), port: Number(addr.slice(colon + 1)) };
}

// A client of the library: { multi(ops) -> replies or null (WATCH failed), watch(k),
// unwatch(), set, get, close, version }. ops: [[command, ...args], ...].
async function connect(args) {
  const addrs = args.addr.split(',');
  if (args.library === 'ioredis') {
    const Redis = require('ioredis');
    const c = args.mode === 'cluster' ? new Redis.Cluster([splitAddr(addrs[0])]) : new Redis(splitAddr(addrs[0]));
    c.on('error', (e) => emit({ ev: 'log', msg: `error event: ${e.message}` }));
    return {
      version: require('ioredis/package.json').version,
      // exec() answers [[err, reply], ...], or null when a WATCHed key changed.
      multi: async (ops) => {
        const replies = await c.multi(ops).exec();
        return replies === null ? null : replies.map(([err, reply]) => (err ? `error: ${err.message}` : reply));
      },
      watch: (k) => c.watch(k),
      set: (k, v) => c.set(k, v),
      get: (k) => c.get(k),
      close: () => c.quit(),
    };
  }
  const moduleName = args.library === 'node-redis4' ? 'redis4' : 'redis';
  const redis = require(moduleName);
  const url = (a) => `redis://${a}`;
  const c =
    args.mode === 'cluster'
      ? redis.createCluster({ rootNodes: addrs.map((a) => ({ url: url(a) })) })
      : redis.createClient({ url: url(addrs[0]) });
  c.on('error', (e) => emit({ ev: 'log', msg: `error event: ${e.message}` }));
  await c.connect();
  return {
    version: require(`${moduleName}/package.json`).version,
    // exec() answers the replies, or throws WatchError when a WATCHed key changed.
    multi: async (ops) => {
      // The typed command methods (a cluster client routes its transaction by their keys).
      const method = { incrby: 'incrBy' };
      let m = c.multi();
      for (const [cmd, ...rest] of ops) m = m[method[cmd] || cmd](...rest.map((x) => (typeof x === 'number' ? x : String(x))));
      try {
        return await m.exec();
      } catch (e) {
        if (e.name === 'WatchError' || e.constructor.name === 'WatchError') return null;
        throw e;
      }
    },
    watch: (k) => c.watch(k),
    set: (k, v) => c.set(k, v),
    get: (k) => c.get(k),
    close: () => (c.close ? c.close() : c.quit()),
  };
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const p = args.prefix;
  const a = await connect(args);
  emit({ ev: 'ready', version: a.version });

  // MULTI ... EXEC: every reply in order, the GET seeing the INCR before it.
  await a.set(`${p}:n`, '10');
  const out = await a.multi([['incr', `${p}:n`], ['get', `${p}:n`], ['set', `${p}:s`, 'x'], ['incrby', `${p}:n`, 5]]);
  expect(JSON.stringify(out) === JSON.stringify([11, '11', 'OK', 16]), 'multi().exec() replies', out);
  emit({ ev: 'step', step: 'multi', replies: out });

  // Keys of different hash slots in one transaction ({x} and {y} hash to different slots).
  const cross = await a.multi([['set', `{x}${p}`, '1'], ['set', `{y}${p}`, '2'], ['incr', `{x}${p}`]]);
  expect(JSON.stringify(cross) === JSON.stringify(['OK', 'OK', 2]), 'a transaction across slots', cross);
  emit({ ev: 'step', step: 'cross-slot', replies: cross });

  // A WATCH conflict: b changes the key a watches; a's EXEC fails, and its retry runs.
  // (The plain clients only: a cluster client's WATCH goes to a connection of its own.)
  if (args.mode === 'plain') {
    const b = await connect(args);
    const key = `${p}:w`;
    await a.set(key, '1');
    await a.watch(key);
    await b.set(key, '2');
    const failed = await a.multi([['set', key, '3']]);
    expect(failed === null, 'EXEC after a WATCHed key changed', failed);
    await a.watch(key);
    const retried = await a.multi([['set', key, '3']]);
    expect(JSON.stringify(retried) === JSON.stringify(['OK']), 'the retried transaction', retried);
    expect((await b.get(key)) === '3', 'the value after the retry', await b.get(key));
    emit({ ev: 'step', step: 'watch-conflict' });
    await b.close().catch(() => {});
  }
  await a.close().catch(() => {});
  emit({ ev: 'done' });
  process.exit(0);
}

main().catch((e) => {
  emit({ ev: 'fail', what: 'exception', got: `${e.name}: ${e.message}` });
  process.exit(1);
});
