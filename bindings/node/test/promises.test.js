'use strict';
// The promise API (require('peer-registry/promises'), registry.promises): every call runs on
// libuv's thread pool. The point of it is shown with a real second process holding
// servers.json.lock (flock(1) from util-linux, the same flock(2) lock the library takes): a
// promised write waits for the lock while timers keep firing; a synchronous write, the control,
// freezes the loop for as long.

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn, spawnSync } = require('node:child_process');

// Read at open: long enough for the 5 s wait below to end in success, not PEERREG_ETIMEOUT.
process.env.PEER_REGISTRY_LOCK_TIMEOUT_MS = '15000';

const peerRegistry = require('..');
const promises = require('../promises');
const { tempRegistry, throwsCode } = require('../test-support/helpers');

if (spawnSync('flock', ['--version']).error) {
  throw new Error('these tests need flock(1): apt-get install -y util-linux');
}

async function rejectsCode(promise, code) {
  await assert.rejects(promise, (error) => {
    assert.ok(error instanceof peerRegistry.PeerRegistryError, String(error && error.stack));
    assert.equal(error.code, code);
    return true;
  });
}

/**
 * Another process holding servers.json.lock for `seconds`; resolves once it holds it.
 * `released` resolves when it exits.
 */
async function holdLock(t, file, seconds) {
  // --no-fork and exec: the holder is this one process, so killing it releases the lock.
  const script = `echo held; exec sleep ${seconds}`;
  const child = spawn('flock', ['--exclusive', '--no-fork', `${file}.lock`, '-c', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.after(() => child.kill('SIGKILL'));
  const released = new Promise((resolve) => child.on('exit', resolve));
  await new Promise((resolve, reject) => {
    child.stdout.once('data', resolve);
    child.once('error', reject);
    released.then(() => reject(new Error('flock exited before holding the lock')));
  });
  return { released };
}

/** Counts a 20 ms interval's ticks and the longest gap between them until stop(). */
function loopMonitor() {
  let ticks = 0;
  let last = performance.now();
  let longestGap = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    longestGap = Math.max(longestGap, now - last);
    last = now;
    ticks += 1;
  }, 20);
  return {
    stop() {
      clearInterval(timer);
      longestGap = Math.max(longestGap, performance.now() - last);
      return { ticks, longestGap };
    },
  };
}

test('open() from peer-registry/promises; every call resolves like its synchronous twin', async (t) => {
  const { file } = tempRegistry(t);
  const registry = await promises.open(file);
  t.after(() => registry.close());
  assert.ok(registry instanceof promises.Registry);
  assert.equal(registry.path, file);
  assert.equal(registry.sync.promises, registry, 'one promise view per handle');

  const stored = await registry.register({
    id: 'async-one', url: 'http://127.0.0.1:4100/mcp', capabilities: { tools: ['t1'], prompts: ['p1'],
      resources: ['resource://one/'] },
  });
  assert.equal(stored.id, 'async-one');
  assert.equal(stored.pid, process.pid);
  assert.deepEqual(await registry.get('async-one'), registry.sync.get('async-one'));
  assert.deepEqual((await registry.list()).map((e) => e.id), ['async-one']);
  const { generation, servers } = await registry.listWithGeneration({ tool: 't1' });
  assert.equal(generation, registry.sync.listWithGeneration().generation);
  assert.equal(servers.length, 1);
  assert.equal((await registry.resolveTool('t1')).id, 'async-one');
  assert.equal((await registry.resolvePrompt('p1')).id, 'async-one');
  assert.equal((await registry.resolveResource('resource://one/x')).id, 'async-one');
  assert.equal((await registry.resolve(peerRegistry.kinds.TOOL, 'async-one.t1')).id, 'async-one');

  assert.equal(await registry.setHealth('async-one', 'DEGRADED', 'slow'), undefined);
  assert.equal((await registry.get('async-one')).health.status, 'DEGRADED');
  const before = (await registry.get('async-one')).lastSeen;
  await new Promise((resolve) => setTimeout(resolve, 5));
  assert.equal(await registry.heartbeat('async-one'), undefined);
  assert.notEqual((await registry.get('async-one')).lastSeen, before);
  assert.equal(await registry.prune(), 0);

  assert.equal(await registry.unregister('async-one'), undefined);
  await rejectsCode(registry.get('async-one'), 'PEERREG_ENOTFOUND');
  await rejectsCode(registry.unregister('async-one'), 'PEERREG_ENOTFOUND');
  await rejectsCode(registry.probe('async-one', { timeoutMs: 100 }), 'PEERREG_ENOTFOUND');
});

test('bad input rejects (never throws synchronously) and changes nothing', async (t) => {
  const { file } = tempRegistry(t);
  const registry = peerRegistry.open(file).promises;
  t.after(() => registry.close());
  const generation = (await registry.listWithGeneration()).generation;

  const calls = [
    () => registry.register('{"id": "broken"'),
    () => registry.register({ id: 'has space', url: 'http://127.0.0.1:1/mcp' }),
    () => registry.register({ url: 'http://127.0.0.1:1/mcp' }),
    () => registry.register(null),
    () => registry.list({ nonsense: true }),
    () => registry.resolve(99, 'x'),
    () => registry.setHealth('x', 42),
  ];
  for (const call of calls) {
    let promise;
    assert.doesNotThrow(() => (promise = call()));
    await rejectsCode(promise, 'PEERREG_EINVAL');
  }
  for (const call of [
    () => registry.register(42),
    () => registry.unregister('a\0b'),
    () => registry.setHealth('x', 'SICK'),
    () => registry.resolve('tool', 'x'),
    () => registry.probe('x', { timeoutMs: 1.5 }),
  ]) {
    let promise;
    assert.doesNotThrow(() => (promise = call()));
    await assert.rejects(promise, TypeError);
  }
  assert.equal((await registry.listWithGeneration()).generation, generation, 'nothing was written');

  await registry.close();
  assert.equal(registry.closed, true);
  await rejectsCode(registry.register({ id: 'late', url: 'http://127.0.0.1:1/mcp' }), 'PEERREG_ECLOSED');
  await rejectsCode(registry.list(), 'PEERREG_ECLOSED');
});

test('a write waiting 5 s for a lock another process holds does not freeze the event loop',
  async (t) => {
    const { file } = tempRegistry(t);
    const registry = peerRegistry.open(file);
    t.after(() => registry.close());
    registry.register({ id: 'first', url: 'http://127.0.0.1:4101/mcp' }); // creates the lock file

    // The control: the synchronous write blocks the loop while it waits (here 1 s).
    const short = await holdLock(t, file, 1);
    let monitor = loopMonitor();
    const syncStarted = performance.now();
    registry.register({ id: 'sync-write', url: 'http://127.0.0.1:4102/mcp' });
    const syncWaited = performance.now() - syncStarted;
    await new Promise((resolve) => setTimeout(resolve, 0));
    const control = monitor.stop();
    await short.released;
    assert.ok(syncWaited >= 800, `the synchronous write waited for the lock (${syncWaited} ms)`);
    assert.ok(control.longestGap >= 800, `and froze the loop meanwhile (${control.longestGap} ms)`);

    // The promise: the same kind of wait, five times as long, with timers firing throughout.
    const long = await holdLock(t, file, 5);
    monitor = loopMonitor();
    const started = performance.now();
    const writes = [
      registry.promises.register({ id: 'async-write', url: 'http://127.0.0.1:4103/mcp' }),
      registry.promises.setHealth('first', 'HEALTHY'),
    ];
    let settledEarly = false;
    writes[0].then(() => (settledEarly = performance.now() - started < 4000));
    const [stored] = await Promise.all(writes);
    const waited = performance.now() - started;
    const { ticks, longestGap } = monitor.stop();
    await long.released;

    assert.equal(stored.id, 'async-write');
    assert.equal(settledEarly, false, 'the write really waited for the lock');
    assert.ok(waited >= 4500, `the write waited for the holder (${waited} ms)`);
    assert.ok(ticks >= 100, `a 20 ms timer fired ${ticks} times in ${Math.round(waited)} ms`);
    assert.ok(longestGap < 1000, `the loop never stalled long (longest gap ${longestGap} ms)`);
    assert.equal(registry.get('first').health.status, 'HEALTHY');
    assert.deepEqual(registry.list().map((e) => e.id).sort(), ['async-write', 'first', 'sync-write']);
  });

test('a lock never released ends in PEERREG_ETIMEOUT, still without freezing the loop', async (t) => {
  const { file } = tempRegistry(t);
  const registry = peerRegistry.open(file);
  registry.register({ id: 'first', url: 'http://127.0.0.1:4104/mcp' });
  registry.close();
  process.env.PEER_REGISTRY_LOCK_TIMEOUT_MS = '1500';
  const impatient = (await promises.open(file));
  process.env.PEER_REGISTRY_LOCK_TIMEOUT_MS = '15000';
  t.after(() => impatient.close());

  await holdLock(t, file, 30);
  const monitor = loopMonitor();
  await rejectsCode(impatient.register({ id: 'never', url: 'http://127.0.0.1:4105/mcp' }),
    'PEERREG_ETIMEOUT');
  const { ticks, longestGap } = monitor.stop();
  assert.ok(ticks >= 30, `timers fired ${ticks} times while waiting`);
  assert.ok(longestGap < 1000, `longest gap ${longestGap} ms`);
  throwsCode(assert, () => impatient.sync.get('never'), 'PEERREG_ENOTFOUND');
});
