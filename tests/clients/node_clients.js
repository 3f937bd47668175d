// tests/clients/node_clients.js — node-redis (the current major, and 4) and ioredis,
// unchanged, connecting to a server and running a few commands of each type. Prints one
// JSON object: for each client setup, what the library returned for each step (or the
// error it raised). clients_test.py runs it against redis-server and against hmdb in the
// same run and requires the same results, so every expectation is Redis' own behaviour.
//
//   node node_clients.js <port>
//
// Each step is bounded: a client that hangs fails the step after STEP_TIMEOUT_MS.
'use strict';
const redis = require('redis');    // node-redis, the current major (sends HELLO 3)
const redis4 = require('redis4');  // node-redis 4 (RESP2)
const IORedis = require('ioredis');

const STEP_TIMEOUT_MS = 5000;
const port = Number(process.argv[2]);

function bounded(promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timeout: ${what}`)), STEP_TIMEOUT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Runs the steps in order; a step's value, or its error's message, is recorded.
async function run(steps) {
  const out = {};
  for (const [name, fn] of steps) {
    try {
      out[name] = await bounded(Promise.resolve().then(fn), name);
    } catch (e) {
      out[name] = { error: String(e && e.message) };
    }
  }
  return out;
}

// node-redis 4 and the current major share one API.
function nodeRedisSteps(c, prefix) {
  const k = (s) => `${prefix}:${s}`;
  return [
    ['ping', () => c.ping()],
    ['protocol', async () => /resp=(\d)/.exec(String(await c.sendCommand(['CLIENT', 'INFO'])))[1]],
    ['getname', () => c.clientGetName()],
    ['select0', () => c.sendCommand(['SELECT', '0'])],
    ['set', () => c.set(k('s'), 'v1')],
    ['get', () => c.get(k('s'))],
    ['get_missing', () => c.get(k('nope'))],
    ['incr', () => c.incr(k('n'))],
    ['incrby', () => c.incrBy(k('n'), 41)],
    ['mget', () => c.mGet([k('s'), k('nope'), k('n')])],
    ['hset', () => c.hSet(k('h'), { f1: 'a', f2: 'b' })],
    ['hgetall', () => c.hGetAll(k('h'))],
    ['hgetall_missing', () => c.hGetAll(k('nope'))],
    ['hget_missing', () => c.hGet(k('h'), 'nope')],
    ['sadd', () => c.sAdd(k('set'), ['x', 'y', 'z'])],
    ['smembers', async () => (await c.sMembers(k('set'))).sort()],
    ['sismember', () => c.sIsMember(k('set'), 'y')],
    ['zadd', () => c.zAdd(k('z'), [{ score: 1.5, value: 'a' }, { score: 2, value: 'b' }, { score: -Infinity, value: 'c' }])],
    ['zscore', () => c.zScore(k('z'), 'a')],
    ['zscore_missing', () => c.zScore(k('z'), 'nope')],
    ['zrange', () => c.zRange(k('z'), 0, -1)],
    ['zrange_withscores', () => c.zRangeWithScores(k('z'), 0, -1)],
    ['zrange_withscores_raw', () => c.sendCommand(['ZRANGE', k('z'), '0', '-1', 'WITHSCORES'])],
    ['zmpop', () => c.zmPop([k('nope'), k('z')], 'MIN')],
    ['zmpop_empty', () => c.zmPop(k('nope'), 'MAX', { COUNT: 2 })],
    ['zpopmin_count', () => c.zPopMinCount(k('z'), 2)],
    ['lpush', () => c.lPush(k('l'), ['a', 'b', 'c'])],
    ['lrange', () => c.lRange(k('l'), 0, -1)],
    ['lmpop', () => c.lmPop([k('nope'), k('l')], 'LEFT')],
    ['lmpop_empty', () => c.lmPop(k('nope'), 'RIGHT', { COUNT: 2 })],
    ['lpop_count', () => c.lPopCount(k('l'), 2)],
    ['expire', () => c.expire(k('s'), 100)],
    ['ttl', () => c.ttl(k('s'))],
    ['type', () => c.type(k('h'))],
    ['exists', () => c.exists([k('s'), k('nope')])],
    ['wrongtype', () => c.hGet(k('s'), 'f')],
    ['pipeline', () => Promise.all([c.set(k('p'), '1'), c.incr(k('p')), c.get(k('p'))])],
    ['del', () => c.del([k('s'), k('h'), k('set'), k('z'), k('l'), k('n'), k('p')])],
  ];
}

function ioredisSteps(c, prefix) {
  const k = (s) => `${prefix}:${s}`;
  return [
    ['ping', () => c.ping()],
    ['protocol', async () => /resp=(\d)/.exec(String(await c.client('INFO')))[1]],
    ['getname', () => c.client('GETNAME')],
    ['select0', () => c.select(0)],
    ['set', () => c.set(k('s'), 'v1')],
    ['get', () => c.get(k('s'))],
    ['get_missing', () => c.get(k('nope'))],
    ['incr', () => c.incr(k('n'))],
    ['mget', () => c.mget(k('s'), k('nope'), k('n'))],
    ['hset', () => c.hset(k('h'), { f1: 'a', f2: 'b' })],
    ['hgetall', () => c.hgetall(k('h'))],
    ['hgetall_missing', () => c.hgetall(k('nope'))],
    ['sadd', () => c.sadd(k('set'), 'x', 'y', 'z')],
    ['smembers', async () => (await c.smembers(k('set'))).sort()],
    ['zadd', () => c.zadd(k('z'), 1.5, 'a', 2, 'b', '-inf', 'c')],
    ['zscore', () => c.zscore(k('z'), 'a')],
    ['zrange_withscores', () => c.zrange(k('z'), 0, -1, 'WITHSCORES')],
    ['zmpop', () => c.zmpop(2, k('nope'), k('z'), 'MIN')],
    ['zmpop_empty', () => c.zmpop(1, k('nope'), 'MAX', 'COUNT', 2)],
    ['zadd_incr', () => c.zadd(k('z'), 'INCR', 0.25, 'a')],
    ['zpopmin', () => c.zpopmin(k('z'), 2)],
    ['lpush', () => c.lpush(k('l'), 'a', 'b', 'c')],
    ['lrange', () => c.lrange(k('l'), 0, -1)],
    ['lmpop', () => c.lmpop(2, k('nope'), k('l'), 'LEFT')],
    ['lmpop_empty', () => c.lmpop(1, k('nope'), 'RIGHT', 'COUNT', 2)],
    ['lpop_count', () => c.lpop(k('l'), 2)],
    ['expire', () => c.expire(k('s'), 100)],
    ['ttl', () => c.ttl(k('s'))],
    ['wrongtype', () => c.hget(k('s'), 'f')],
    ['pipeline', () => c.pipeline().set(k('p'), '1').incr(k('p')).get(k('p')).exec()],
    ['del', () => c.del(k('s'), k('h'), k('set'), k('z'), k('l'), k('n'), k('p'))],
  ];
}

async function nodeRedis(mod, options, prefix) {
  const c = mod.createClient({ socket: { host: '127.0.0.1', port, reconnectStrategy: false }, ...options });
  const errors = [];
  c.on('error', (e) => errors.push(String(e && e.message)));
  try {
    await bounded(c.connect(), 'connect');
  } catch (e) {
    return { connect: { error: String(e && e.message) } };
  }
  const out = await run(nodeRedisSteps(c, prefix));
  await bounded(c.quit(), 'quit').catch(() => {});
  if (errors.length) out.client_errors = errors;
  return out;
}

async function ioredis(options, prefix) {
  const c = new IORedis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0,
                          retryStrategy: () => null, ...options });
  c.on('error', () => {});
  try {
    await bounded(c.connect(), 'connect');
  } catch (e) {
    c.disconnect();
    return { connect: { error: String(e && e.message) } };
  }
  const out = await run(ioredisSteps(c, prefix));
  await bounded(c.quit(), 'quit').catch(() => {});
  return out;
}

// Resolves once `count` messages were collected into `into` (or fails the step at its bound).
function messagesArrived(into, count) {
  return new Promise((resolve) => {
    const check = () => (into.length >= count ? resolve(into.slice()) : setTimeout(check, 5));
    check();
  });
}

// Pub/sub: a subscriber connection and a publisher, as an application uses them. The
// messages are collected by the library's own listeners.
async function nodeRedisPubSub(mod, options, prefix) {
  const pub = mod.createClient({ socket: { host: '127.0.0.1', port, reconnectStrategy: false }, ...options });
  pub.on('error', () => {});
  await bounded(pub.connect(), 'connect');
  const sub = pub.duplicate();
  sub.on('error', () => {});
  await bounded(sub.connect(), 'connect subscriber');
  const got = [];
  const c = (s) => `${prefix}:${s}`;
  const out = await run([
    ['subscribe', () => sub.subscribe([c('a'), c('b')], (message, channel) => got.push([channel, message]))],
    ['psubscribe', () => sub.pSubscribe(`${prefix}:p*`, (message, channel) => got.push(['p', channel, message]))],
    ['publish_a', () => pub.publish(c('a'), 'hello')],
    ['publish_pa', () => pub.publish(c('pa'), 'pattern')],
    ['publish_none', () => pub.publish(c('none'), 'nobody')],
    ['messages', () => messagesArrived(got, 2)],
    ['numsub', () => pub.pubSubNumSub([c('a'), c('none')])],
    ['numpat', () => pub.pubSubNumPat()],
    ['channels', async () => (await pub.pubSubChannels(`${prefix}:*`)).sort()],
    ['unsubscribe', () => sub.unsubscribe([c('a'), c('b')])],
    ['punsubscribe', () => sub.pUnsubscribe(`${prefix}:p*`)],
    ['publish_after', () => pub.publish(c('a'), 'late')],
    ['ping_after', () => sub.ping()],
  ]);
  await bounded(sub.quit(), 'quit').catch(() => {});
  await bounded(pub.quit(), 'quit').catch(() => {});
  return out;
}

async function ioredisPubSub(prefix) {
  const options = { host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null };
  const pub = new IORedis(options);
  const sub = new IORedis(options);
  pub.on('error', () => {});
  sub.on('error', () => {});
  await bounded(Promise.all([pub.connect(), sub.connect()]), 'connect');
  const got = [];
  sub.on('message', (channel, message) => got.push([channel, message]));
  sub.on('pmessage', (pattern, channel, message) => got.push([pattern, channel, message]));
  const c = (s) => `${prefix}:${s}`;
  const out = await run([
    ['subscribe', () => sub.subscribe(c('a'), c('b'))],
    ['psubscribe', () => sub.psubscribe(`${prefix}:p*`)],
    ['get_refused', () => sub.get(c('k'))],
    ['publish_a', () => pub.publish(c('a'), 'hello')],
    ['publish_pa', () => pub.publish(c('pa'), 'pattern')],
    ['messages', () => messagesArrived(got, 2)],
    ['numsub', () => pub.pubsub('NUMSUB', c('a'), c('none'))],
    ['numpat', () => pub.pubsub('NUMPAT')],
    ['channels', async () => (await pub.pubsub('CHANNELS', `${prefix}:*`)).sort()],
    ['unsubscribe_one', () => sub.unsubscribe(c('b'))],
    ['unsubscribe', () => sub.unsubscribe()],
    ['punsubscribe', () => sub.punsubscribe()],
    ['get_after', () => sub.get(c('k'))],
  ]);
  await bounded(Promise.all([sub.quit(), pub.quit()]), 'quit').catch(() => {});
  return out;
}

// INFO clients' blocked_clients, read by another connection.
async function blockedClients(c) {
  return Number(/blocked_clients:(\d+)/.exec(await c.info('clients'))[1]);
}

// Resolves once fn() is true, polled (the step's bound fails it otherwise).
function until(fn) {
  return new Promise((resolve) => {
    const check = async () => ((await fn()) ? resolve(true) : setTimeout(check, 5));
    check();
  });
}

// Blocking commands (ioredis' blpop & co.): data present, a short timeout on an empty key,
// and a waiter woken by another connection's push once INFO shows it blocked.
async function ioredisBlocking(options, prefix) {
  const all = { host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null,
                ...options };
  const waiter = new IORedis(all);
  const other = new IORedis(all);
  waiter.on('error', () => {});
  other.on('error', () => {});
  await bounded(Promise.all([waiter.connect(), other.connect()]), 'connect');
  const k = (s) => `${prefix}:${s}`;
  let pending;
  const out = await run([
    ['rpush', () => other.rpush(k('l'), 'a', 'b')],
    ['blpop_data', () => waiter.blpop(k('none'), k('l'), 0)],
    ['brpop_timeout', () => waiter.brpop(k('none'), 0.01)],
    ['bzpopmin_timeout', () => waiter.bzpopmin(k('z'), 0.01)],
    ['blmove_data', () => waiter.blmove(k('l'), k('d'), 'LEFT', 'RIGHT', 0)],
    ['blpop_start', () => { pending = waiter.blpop(k('q'), 0); return 'sent'; }],
    ['blocked', () => until(async () => (await blockedClients(other)) === 1)],
    ['push', () => other.lpush(k('q'), 'woken')],
    ['blpop_woken', () => pending],
    ['blocked_after', () => blockedClients(other)],
    ['bzpopmax_start', () => { pending = waiter.bzpopmax(k('z'), 5); return 'sent'; }],
    ['blocked_z', () => until(async () => (await blockedClients(other)) === 1)],
    ['zadd', () => other.zadd(k('z'), 2.5, 'm')],
    ['bzpopmax_woken', () => pending],
    ['del', () => other.del(k('l'), k('d'), k('q'), k('z'))],
  ]);
  await bounded(Promise.all([waiter.quit(), other.quit()]), 'quit').catch(() => {});
  return out;
}

(async () => {
  const results = {};
  const auth = { username: 'default', password: 'secret' };
  results['node-redis-current RESP3 (default), AUTH default, SETNAME'] =
      await nodeRedis(redis, { ...auth, name: 'nr-current', database: 0 }, 'nr3');
  results['node-redis-current RESP2'] = await nodeRedis(redis, { RESP: 2, name: 'nr-current-2' }, 'nr2');
  results['node-redis-current password only'] = await nodeRedis(redis, { password: 'secret' }, 'nrp');
  results['node-redis-4, AUTH default, SETNAME'] = await nodeRedis(redis4, { ...auth, name: 'nr-4' }, 'nr4');
  results['ioredis, AUTH default, connectionName'] = await ioredis({ ...auth, connectionName: 'io-1', db: 0 }, 'io1');
  results['ioredis password only'] = await ioredis({ password: 'secret' }, 'io2');
  results['node-redis-current RESP3 pub/sub'] = await nodeRedisPubSub(redis, {}, 'ps3');
  results['node-redis-current RESP2 pub/sub'] = await nodeRedisPubSub(redis, { RESP: 2 }, 'ps2');
  results['node-redis-4 pub/sub'] = await nodeRedisPubSub(redis4, {}, 'ps4');
  results['ioredis pub/sub'] = await ioredisPubSub('psio');
  results['ioredis blocking'] = await ioredisBlocking({}, 'blk');
  process.stdout.write(JSON.stringify({
    versions: {
      redis: require('redis/package.json').version,
      redis4: require('redis4/package.json').version,
      ioredis: require('ioredis/package.json').version,
    },
    results,
  }, (key, value) => (value === Infinity ? 'Infinity' : value === -Infinity ? '-Infinity' : value)) + '\n');
})().catch((e) => {
  process.stderr.write(`node_clients.js: ${e && e.stack}\n`);
  process.exit(1);
});
