'use strict';
// Cluster scope through the binding (docs/CLUSTER.md): list, resolve and watch of the other
// machines' entries, as bindings/python/tests/test_cluster_scope.py checks them. The cluster
// view is written here by hand in its documented format; the agent lock is held by a child
// process (flock, as a running agent holds it: Node has no flock of its own). The real agent
// on a real etcd cluster is tested in tests/cluster.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');

const peerRegistry = require('..');
const { tempRegistry, nextEvent, throwsCode } = require('../test-support/helpers');

const { open, PeerRegistryError } = peerRegistry;

/** Replaces the cluster view beside `file` as the agent does (temp file, 0600, rename). */
function writeView(file, servers, etcd = 'connected') {
  const view = path.join(path.dirname(file), 'servers.cluster.json');
  const tmp = `${view}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify({ version: 1, generation: 1, node: 'here', etcd, revision: 5, servers }),
    { mode: 0o600 });
  fs.renameSync(tmp, view);
}

/** An entry of another node as the agent mirrors it. */
function remote(id, node, capabilities) {
  return { id, node, url: `http://10.0.0.9:${9000 + id.length}/mcp`, liveness: 'none', scope: 'cluster', capabilities };
}

/**
 * Holds servers.cluster.json.agent with flock(LOCK_EX) until the test ends, in a child running
 * util-linux's flock(1), which says READY once it holds the lock.
 */
async function holdAgentLock(t, file) {
  const lock = path.join(path.dirname(file), 'servers.cluster.json.agent');
  fs.writeFileSync(lock, '', { mode: 0o600 });
  const child = spawn('flock', ['--exclusive', lock, 'sh', '-c', 'echo READY; exec cat'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  t.after(() => child.kill('SIGKILL'));
  await new Promise((resolve, reject) => {
    let out = '';
    child.on('error', reject);
    child.on('exit', (code) => reject(new Error(`flock(1) exited (${code}) before holding ${lock}`)));
    child.stdout.on('data', (chunk) => {
      out += chunk;
      if (out.includes('READY')) resolve();
    });
  });
}

/** A fresh registry holding the local entry "mine" (tool "shared"), with the agent lock held. */
async function openCluster(t) {
  const { file } = tempRegistry(t);
  const registry = open(file);
  t.after(() => registry.close());
  registry.register({ id: 'mine', url: 'http://127.0.0.1:1/mcp', liveness: 'none', scope: 'cluster',
    capabilities: { tools: ['shared'] } });
  await holdAgentLock(t, file);
  return { registry, file };
}

test('resolve with {scope: "cluster"} finds a remote server; a local one wins a tie', async (t) => {
  const { registry, file } = await openCluster(t);
  writeView(file, [remote('far', 'B', { tools: ['shared', 'far-only'], prompts: ['far-prompt'],
    resources: ['resource://far/'] })]);

  throwsCode(assert, () => registry.resolveTool('far-only'), 'PEERREG_ENOTFOUND');
  throwsCode(assert, () => registry.resolveTool('far-only', {}), 'PEERREG_ENOTFOUND');
  throwsCode(assert, () => registry.resolveTool('far-only', { scope: 'local' }), 'PEERREG_ENOTFOUND');
  const far = registry.resolveTool('far-only', { scope: 'cluster' });
  assert.equal(far.id, 'far');
  assert.equal(far.node, 'B');
  assert.equal(far.stale, undefined, 'the agent lock is held: not stale');
  // Equal health (both UNKNOWN): the local server wins, and carries no node.
  const shared = registry.resolveTool('shared', { scope: 'cluster' });
  assert.equal(shared.id, 'mine');
  assert.equal(shared.node, undefined);
  assert.equal(registry.resolvePrompt('far-prompt', { scope: 'cluster' }).node, 'B');
  assert.equal(registry.resolveResource('resource://far/x', { scope: 'cluster' }).node, 'B');
  assert.equal(registry.resolve(peerRegistry.kinds.TOOL, 'far-only', { scope: 'cluster' }).id, 'far');
  throwsCode(assert, () => registry.resolvePrompt('far-prompt'), 'PEERREG_ENOTFOUND');

  // The promise API: the same answers, off the loop.
  const promises = registry.promises;
  assert.equal((await promises.resolveTool('far-only', { scope: 'cluster' })).node, 'B');
  assert.equal((await promises.resolveTool('shared', { scope: 'cluster' })).id, 'mine');
  assert.equal((await promises.resolvePrompt('far-prompt', { scope: 'cluster' })).id, 'far');
  assert.equal((await promises.resolveResource('resource://far/x', { scope: 'cluster' })).id, 'far');
  await assert.rejects(promises.resolveTool('far-only'), { code: 'PEERREG_ENOTFOUND' });
});

test('a bad scope is PEERREG_EINVAL (thrown, or rejected by the promise API), and nothing changes',
  async (t) => {
    const { registry, file } = await openCluster(t);
    writeView(file, [remote('far', 'B', { tools: ['far-only'] })]);
    for (const scope of ['galaxy', 'Cluster', 'LOCAL', '', 1, null]) {
      const error = throwsCode(assert, () => registry.resolveTool('shared', { scope }), 'PEERREG_EINVAL');
      assert.match(error.message, /use 'local' or 'cluster'/);
      throwsCode(assert, () => registry.resolveResource('resource://x', { scope }), 'PEERREG_EINVAL');
      await assert.rejects(registry.promises.resolveTool('shared', { scope }),
        (e) => e instanceof PeerRegistryError && e.code === 'PEERREG_EINVAL');
    }
    throwsCode(assert, () => registry.list({ scope: 'galaxy' }), 'PEERREG_EINVAL');
    throwsCode(assert, () => registry.watch({ scope: 'galaxy' }), 'PEERREG_EINVAL');
    assert.throws(() => registry.promises.watch({ scope: 'galaxy' }), { code: 'PEERREG_EINVAL' });
    // Options that are not an object are a TypeError, as in Node's own APIs.
    assert.throws(() => registry.resolveTool('shared', 'cluster'), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    await assert.rejects(registry.promises.resolveTool('shared', 'cluster'), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.deepEqual(registry.list().map((e) => e.id), ['mine']);
  });

test('list with {scope: "cluster"}: local entries first, then the remote ones with node', async (t) => {
  const { registry, file } = await openCluster(t);
  writeView(file, [remote('far', 'B', { tools: ['t'] }), remote('mine', 'C', { tools: ['t'] })]);
  assert.deepEqual(registry.list().map((e) => e.id), ['mine']);
  const listed = registry.list({ scope: 'cluster' });
  assert.deepEqual(listed.map((e) => [e.id, e.node]), [['mine', undefined], ['far', 'B'], ['mine', 'C']]);
  assert.ok(!listed.some((e) => e.stale));
  assert.deepEqual((await registry.promises.list({ scope: 'cluster' })).map((e) => e.id), ['mine', 'far', 'mine']);
});

test('remote entries are stale without a running agent', async (t) => {
  const { file } = tempRegistry(t);
  const registry = open(file);
  t.after(() => registry.close());
  writeView(file, [remote('far', 'B', { tools: ['t'] })]);
  assert.deepEqual(registry.list({ scope: 'cluster' }).map((e) => e.stale), [true]);
  assert.equal(registry.resolveTool('t', { scope: 'cluster' }).stale, true);
});

test('watch({scope: "cluster"}) sees a remote entry come and go; a local watch does not', async (t) => {
  const { registry, file } = await openCluster(t);
  const local = registry.watch();
  t.after(() => local.close());
  const cluster = registry.watch({ scope: 'cluster' });
  t.after(() => cluster.close());
  const localEvents = [];
  local.on('change', (event) => localEvents.push(event));

  const added = nextEvent(cluster, 'change');
  writeView(file, [remote('far', 'B', { tools: ['shared', 'far-only'] })]);
  const event = await added;
  assert.deepEqual(event.added.map((e) => [e.id, e.node]), [['far', 'B']]);

  // The local watch's first event is a local registration made after the view was written.
  const later = nextEvent(local, 'added', { filter: (e) => e.id === 'later' });
  const clusterLater = nextEvent(cluster, 'added', { filter: (e) => e.id === 'later' });
  registry.register({ id: 'later', url: 'http://127.0.0.1:2/mcp', liveness: 'none' });
  await later;
  await clusterLater;
  for (const e of localEvents.flatMap((ev) => [...ev.added, ...ev.changed, ...ev.removed])) {
    assert.equal(e.node, undefined, `the local watch reported the remote entry ${e.id}`);
  }
  assert.deepEqual(localEvents.flatMap((ev) => ev.added.map((e) => e.id)), ['later']);

  const removed = nextEvent(cluster, 'removed');
  writeView(file, []);
  const [gone] = await removed;
  assert.deepEqual([gone.id, gone.node], ['far', 'B']);

  // The promise API hands out the same kind of watch.
  const fromPromises = registry.promises.watch({ scope: 'cluster' });
  t.after(() => fromPromises.close());
  const again = nextEvent(fromPromises, 'added');
  writeView(file, [remote('near', 'C', { tools: ['x'] })]);
  assert.equal((await again)[0].node, 'C');
});

test('watch(filter) takes any list() filter, as an object or as JSON text', async (t) => {
  const { file } = tempRegistry(t);
  const registry = open(file);
  t.after(() => registry.close());
  for (const filter of [{ tool: 'wanted' }, '{"tool":"wanted"}']) {
    const watch = registry.watch(filter);
    t.after(() => watch.close());
    const change = nextEvent(watch, 'change');
    registry.register({ id: 'other', url: 'http://127.0.0.1:1/mcp', capabilities: { tools: ['unwanted'] } });
    registry.register({ id: 'match', url: 'http://127.0.0.1:2/mcp', capabilities: { tools: ['wanted'] } });
    assert.deepEqual((await change).added.map((e) => e.id), ['match']);
    // Losing the tool: no longer selected, so removed.
    const removed = nextEvent(watch, 'change');
    registry.register({ id: 'match', url: 'http://127.0.0.1:2/mcp' });
    const event = await removed;
    assert.deepEqual([event.added, event.changed, event.removed.map((e) => e.id)], [[], [], ['match']]);
    watch.close();
    registry.unregister('match');
    registry.unregister('other');
  }
  throwsCode(assert, () => registry.watch({ status: 'SPARKLING' }), 'PEERREG_EINVAL');
  throwsCode(assert, () => registry.watch('{not json'), 'PEERREG_EINVAL');
  assert.throws(() => registry.watch(42), { code: 'ERR_INVALID_ARG_TYPE' });
});
