// The ESM entry point: named and default exports, the same module instance as require().
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';

import peerRegistry, { open, Registry, Watch, PeerRegistryError, codes, kinds, health, version }
  from '../index.mjs';

const require = createRequire(import.meta.url);
const cjs = () => require('../index.js');

test('index.mjs exports the same objects as index.js', () => {
  const cjs = require('../index.js');
  assert.equal(peerRegistry, cjs);
  assert.equal(open, cjs.open);
  assert.equal(Registry, cjs.Registry);
  assert.equal(Watch, cjs.Watch);
  assert.equal(PeerRegistryError, cjs.PeerRegistryError);
  assert.equal(codes.ENOTFOUND, -2);
  assert.equal(kinds.TOOL, 1);
  assert.equal(health.HEALTHY, 1);
  assert.equal(version(), '0.2.0');
});

test('the package name resolves through the exports map (import and require)', async () => {
  const byName = await import('peer-registry');
  assert.equal(byName.default, peerRegistry);
  assert.equal(byName.open, open);
  assert.equal(require('peer-registry'), require('../index.js'));
  const promises = await import('peer-registry/promises');
  assert.equal(promises.default, require('peer-registry/promises'));
  assert.equal(promises.Registry, cjs().RegistryPromises);
  assert.equal(promises.open, cjs().promises.open);
  assert.equal(promises.PeerRegistryError, PeerRegistryError);
});

test('peer-registry/promises works from ESM', async (t) => {
  const { open: openAsync } = await import('peer-registry/promises');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peerreg-node-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const registry = await openAsync(path.join(dir, 'servers.json'));
  try {
    await registry.register({ id: 'esm-async', url: 'http://127.0.0.1:4001/mcp' });
    assert.deepEqual((await registry.list()).map((s) => s.id), ['esm-async']);
  } finally {
    await registry.close();
  }
});

test('a registry works from ESM', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peerreg-node-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const registry = open(path.join(dir, 'servers.json'));
  try {
    const watch = registry.watch();
    const added = new Promise((resolve) => watch.once('added', resolve));
    registry.register({ id: 'esm-entry', url: 'http://127.0.0.1:4000/mcp' });
    assert.equal((await added).id, 'esm-entry');
    watch.close();
    assert.deepEqual(registry.list().map((s) => s.id), ['esm-entry']);
    assert.throws(() => registry.get('nope'), (e) => e instanceof PeerRegistryError &&
      e.code === 'PEERREG_ENOTFOUND');
  } finally {
    registry.close();
  }
});
