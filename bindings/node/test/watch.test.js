'use strict';
// registry.watch(): events on the event loop for changes made here and by other processes,
// deaths seen through the lease, and a closed (or unref'd) watch not holding the process.

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');

const peerRegistry = require('..');
const {
  FIXTURES,
  PACKAGE_DIR,
  tempRegistry,
  spawnNode,
  runNode,
  nextEvent,
  throwsCode,
  waitFor,
} = require('../test-support/helpers');

const { open, Watch } = peerRegistry;
const REGISTER_AND_WAIT = path.join(FIXTURES, 'register-and-wait.js');

function entry(id, extra = {}) {
  return { id, url: 'http://127.0.0.1:7100/mcp', ...extra };
}

function openTemp(t) {
  const { file } = tempRegistry(t);
  const registry = open(file);
  t.after(() => registry.close());
  return { registry, file };
}

function watchTemp(t, registry) {
  const watch = registry.watch();
  t.after(() => watch.close());
  return watch;
}

test('watch() returns an EventEmitter; added, changed and removed arrive in order', async (t) => {
  const { registry } = openTemp(t);
  const watch = watchTemp(t, registry);
  assert.ok(watch instanceof Watch);
  assert.equal(watch.closed, false);
  const changes = [];
  watch.on('change', (event) => changes.push(event));

  const added = nextEvent(watch, 'added');
  const stored = registry.register(entry('watched'));
  const [addedEntry, addedEvent] = await added;
  assert.deepEqual(addedEntry, stored);
  assert.deepEqual(addedEvent.added, [stored]);
  assert.deepEqual(addedEvent.removed, []);
  assert.deepEqual(addedEvent.changed, []);
  assert.equal(addedEvent.generation, registry.listWithGeneration().generation);

  const changed = nextEvent(watch, 'changed');
  registry.setHealth('watched', 'HEALTHY', 'fine');
  const [changedEntry] = await changed;
  assert.equal(changedEntry.id, 'watched');
  assert.equal(changedEntry.health.status, 'HEALTHY');
  assert.equal(changedEntry.health.message, 'fine');

  const removed = nextEvent(watch, 'removed');
  registry.unregister('watched');
  const [removedEntry, removedEvent] = await removed;
  assert.equal(removedEntry.id, 'watched');
  assert.equal(removedEntry.health.status, 'HEALTHY', 'removed carries the last entry seen');
  assert.deepEqual(removedEvent.added, []);

  assert.equal(changes.length, 3, JSON.stringify(changes));
  for (let i = 1; i < changes.length; i++) {
    assert.ok(changes[i].generation > changes[i - 1].generation, 'generations increase');
  }
});

test('the first event is a change, not a replay of what was there', async (t) => {
  const { registry } = openTemp(t);
  registry.register(entry('already-there'));
  const watch = watchTemp(t, registry);
  const change = nextEvent(watch, 'change');
  registry.register(entry('new-one'));
  const event = await change;
  assert.deepEqual(event.added.map((e) => e.id), ['new-one']);
});

test('a burst of writes is coalesced, never missed', async (t) => {
  const { registry } = openTemp(t);
  const watch = watchTemp(t, registry);
  const seen = new Set();
  watch.on('added', (e) => seen.add(e.id));
  for (let i = 0; i < 20; i++) registry.register(entry(`burst-${i}`));
  await waitFor(() => seen.size === 20, { what: 'all 20 additions' });
  assert.equal(seen.size, 20);
});

test('a registration by another process is seen, and its SIGKILL death is reported', async (t) => {
  const { registry, file } = openTemp(t);
  const watch = watchTemp(t, registry);
  const added = nextEvent(watch, 'added', { filter: (e) => e.id === 'other-process' });

  const child = spawnNode(t, REGISTER_AND_WAIT, [
    file,
    JSON.stringify(entry('other-process', { capabilities: { tools: ['remote-tool'] } })),
  ]);
  const childStored = JSON.parse(await child.ready);
  const [addedEntry] = await added;
  assert.equal(addedEntry.pid, child.child.pid);
  assert.equal(addedEntry.liveness, 'lease');
  assert.deepEqual(addedEntry, childStored);
  assert.equal(registry.get('other-process').pid, child.child.pid);
  assert.equal(registry.resolveTool('remote-tool').id, 'other-process');

  const removed = nextEvent(watch, 'removed', {
    filter: (e) => e.id === 'other-process',
    timeout: 5000,
  });
  child.child.kill('SIGKILL');
  const { signal } = await child.exited;
  assert.equal(signal, 'SIGKILL');
  // No one wrote the file: the dead lease alone makes the entry disappear.
  assert.ok(!registry.list().some((e) => e.id === 'other-process'), 'no longer listed');
  throwsCode(assert, () => registry.get('other-process'), 'PEERREG_ENOTFOUND');
  throwsCode(assert, () => registry.resolveTool('remote-tool'), 'PEERREG_ENOTFOUND');
  const [removedEntry] = await removed;
  assert.equal(removedEntry.pid, child.child.pid);
  assert.equal(registry.prune(), 1, 'the dead entry was still in the file until pruned');
});

test('a child that exits cleanly on SIGTERM unregisters', async (t) => {
  const { registry, file } = openTemp(t);
  const child = spawnNode(t, REGISTER_AND_WAIT, [file, JSON.stringify(entry('polite'))]);
  await child.ready;
  assert.equal(registry.get('polite').pid, child.child.pid);
  child.child.kill('SIGTERM');
  const { code } = await child.exited;
  assert.equal(code, 0);
  throwsCode(assert, () => registry.get('polite'), 'PEERREG_ENOTFOUND');
  assert.equal(registry.prune(), 0, 'close() removed it from the file already');
});

// The header: "Watches opened on the handle keep working until they are closed."
test('a watch keeps working after its registry handle is closed', async (t) => {
  const { file } = tempRegistry(t);
  const watcherRegistry = open(file);
  const watch = watchTemp(t, watcherRegistry);
  watcherRegistry.close();
  const writer = open(file);
  t.after(() => writer.close());
  let failure = null;
  watch.on('error', (error) => (failure = error));
  const added = nextEvent(watch, 'added');
  writer.register(entry('after-close'));
  await waitFor(() => failure || watch.listenerCount('added') === 0, { what: "'added' or 'error'" });
  assert.equal(failure, null, `the watch failed: ${failure && `${failure.code}: ${failure.message}`}`);
  const [e] = await added;
  assert.equal(e.id, 'after-close');
});

test('a watch stops polling once the library reports it closed (no error storm)', async (t) => {
  const { file } = tempRegistry(t);
  const watcherRegistry = open(file);
  const watch = watchTemp(t, watcherRegistry);
  const errors = [];
  watch.on('error', (error) => errors.push(error));
  watcherRegistry.close();
  const writer = open(file);
  t.after(() => writer.close());
  for (let i = 0; i < 5; i++) {
    writer.register(entry(`write-${i}`));
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await new Promise((resolve) => setTimeout(resolve, 600));
  // Either the watch outlives its registry (the header's promise) and reports no error, or
  // the library answers PEERREG_ECLOSED — then exactly once, not at every wake-up.
  assert.ok(errors.length <= 1, `${errors.length} errors`);
  for (const error of errors) assert.equal(error.code, 'PEERREG_ECLOSED');
});

test('close() stops events, is idempotent and emits close once', async (t) => {
  const { registry } = openTemp(t);
  const watch = registry.watch();
  let closes = 0;
  let events = 0;
  watch.on('close', () => closes++);
  watch.on('change', () => events++);
  watch.close();
  watch.close();
  assert.equal(watch.closed, true);
  assert.equal(closes, 1);
  registry.register(entry('unseen'));
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal(events, 0);
  watch.unref(); // harmless on a closed watch
  watch.ref();
});

test('a listener may close the watch; nothing is delivered after that', async (t) => {
  const { registry } = openTemp(t);
  const watch = registry.watch();
  const seen = [];
  watch.on('added', (e) => {
    seen.push(e.id);
    watch.close();
  });
  const closed = nextEvent(watch, 'close');
  registry.register(entry('first-of-two', { capabilities: { tools: ['t'] } }));
  await closed;
  registry.register(entry('second-of-two'));
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.deepEqual(seen, ['first-of-two']);
});

test('several watches on one registry each get every event', async (t) => {
  const { registry } = openTemp(t);
  const a = watchTemp(t, registry);
  const b = watchTemp(t, registry);
  const both = Promise.all([nextEvent(a, 'added'), nextEvent(b, 'added')]);
  registry.register(entry('for-both'));
  const [[ea], [eb]] = await both;
  assert.equal(ea.id, 'for-both');
  assert.equal(eb.id, 'for-both');
});

// The remaining tests run in child processes: whether a process exits by itself is the point.

const CHILD_PRELUDE = `
  const peerRegistry = require(${JSON.stringify(PACKAGE_DIR)});
  const registry = peerRegistry.open(process.argv[1]);
`;

test('a process whose watch was closed exits by itself', async (t) => {
  const { file } = tempRegistry(t);
  const script = `${CHILD_PRELUDE}
    const watch = registry.watch();
    watch.on('added', (e) => {
      console.log('saw ' + e.id);
      watch.close();
      registry.close();
    });
    registry.register({ id: 'self', url: 'http://127.0.0.1:1/mcp', liveness: 'none' });
  `;
  const result = await runNode(['-e', script, file], { timeout: 10000 });
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /saw self/);
});

test('an open watch keeps the process alive; unref() lets it exit', async (t) => {
  const { file } = tempRegistry(t);
  const held = spawnNode(t, '-e', [
    `${CHILD_PRELUDE} registry.watch(); console.log('READY');`,
    file,
  ]);
  await held.ready;
  const stillRunning = await Promise.race([
    held.exited.then(() => false),
    new Promise((resolve) => setTimeout(() => resolve(true), 1000)),
  ]);
  assert.equal(stillRunning, true, 'an open watch holds the event loop');
  held.child.kill('SIGTERM');

  const result = await runNode(['-e', `${CHILD_PRELUDE} registry.watch().unref();`, file]);
  assert.equal(result.code, 0, result.stderr);
});

test('an exception thrown by a listener is an uncaught exception of the process', async (t) => {
  const { file } = tempRegistry(t);
  const script = `${CHILD_PRELUDE}
    process.on('uncaughtException', (error) => {
      console.log('uncaught: ' + error.message);
      process.exit(7);
    });
    registry.watch().on('added', () => { throw new Error('listener failed'); });
    registry.register({ id: 'boom', url: 'http://127.0.0.1:1/mcp' });
  `;
  const result = await runNode(['-e', script, file]);
  assert.equal(result.code, 7, result.stderr);
  assert.match(result.stdout, /uncaught: listener failed/);
});

test("a corrupt file is an 'error' event; the watch goes on once the file is good", async (t) => {
  const { registry, file } = openTemp(t);
  registry.register(entry('survivor', { liveness: 'none' }));
  const watch = watchTemp(t, registry);
  const errors = [];
  watch.on('error', (error) => errors.push(error));
  const fs = require('node:fs');
  const good = fs.readFileSync(file, 'utf8');
  // Replace the file the way a broken writer would (rename over it), then repair it.
  fs.writeFileSync(`${file}.garbage`, 'garbage{', { mode: 0o600 });
  fs.renameSync(`${file}.garbage`, file);
  await waitFor(() => errors.length > 0, { what: "an 'error' event" });
  assert.equal(errors[0].code, 'PEERREG_ECORRUPT');
  assert.ok(errors[0].message.includes(file), errors[0].message);

  const repaired = JSON.parse(good);
  repaired.generation += 10;
  repaired.servers.push({ id: 'after-repair', url: 'http://127.0.0.1:7200/mcp', liveness: 'none' });
  const added = nextEvent(watch, 'added');
  fs.writeFileSync(`${file}.repaired`, JSON.stringify(repaired), { mode: 0o600 });
  fs.renameSync(`${file}.repaired`, file);
  const [e] = await added;
  assert.equal(e.id, 'after-repair');
  assert.ok(errors.length <= 2, `${errors.length} errors for one corruption`);
});
