'use strict';
// Every PEERREG_* error code, reached through what the library really does, arrives in JS as a
// PeerRegistryError with .code (name), .errno (value) and the library's message.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');

const peerRegistry = require('..');
const { tempRegistry, throwsCode, waitFor } = require('../test-support/helpers');

const { open, PeerRegistryError } = peerRegistry;

function entry(id, extra = {}) {
  return { id, url: 'http://127.0.0.1:7000/mcp', ...extra };
}

test('PeerRegistryError is an Error with name, code and errno', (t) => {
  const { file } = tempRegistry(t);
  const registry = open(file);
  t.after(() => registry.close());
  const error = throwsCode(assert, () => registry.get('missing'), 'PEERREG_ENOTFOUND');
  assert.equal(error.name, 'PeerRegistryError');
  assert.equal(error.errno, -2);
  assert.ok(error instanceof PeerRegistryError);
  assert.ok(error.stack.includes('PeerRegistryError'));
  assert.match(error.message, /missing/, 'the library names the id it did not find');
});

test('PEERREG_ENOTFOUND: get, unregister, setHealth, heartbeat, resolve of nothing', (t) => {
  const { file } = tempRegistry(t);
  const registry = open(file);
  t.after(() => registry.close());
  throwsCode(assert, () => registry.get('ghost'), 'PEERREG_ENOTFOUND');
  throwsCode(assert, () => registry.unregister('ghost'), 'PEERREG_ENOTFOUND');
  throwsCode(assert, () => registry.setHealth('ghost', 'HEALTHY'), 'PEERREG_ENOTFOUND');
  throwsCode(assert, () => registry.heartbeat('ghost'), 'PEERREG_ENOTFOUND');
  throwsCode(assert, () => registry.resolveTool('ghost-tool'), 'PEERREG_ENOTFOUND');
  throwsCode(assert, () => registry.resolvePrompt('ghost-prompt'), 'PEERREG_ENOTFOUND');
  throwsCode(assert, () => registry.resolveResource('resource://ghost/'), 'PEERREG_ENOTFOUND');
});

test('PEERREG_EEXISTS: the same id from a second handle; the first entry is unchanged', (t) => {
  const { file } = tempRegistry(t);
  const first = open(file);
  const second = open(file);
  t.after(() => {
    first.close();
    second.close();
  });
  first.register(entry('taken', { url: 'http://127.0.0.1:1001/mcp' }));
  const error = throwsCode(
    assert,
    () => second.register(entry('taken', { url: 'http://127.0.0.1:1002/mcp' })),
    'PEERREG_EEXISTS',
  );
  assert.match(error.message, /taken/);
  assert.equal(second.get('taken').url, 'http://127.0.0.1:1001/mcp');
  // Once the holder lets go, the id is free again.
  first.unregister('taken');
  assert.equal(second.register(entry('taken', { url: 'http://127.0.0.1:1002/mcp' })).url,
    'http://127.0.0.1:1002/mcp');
});

test('PEERREG_ECORRUPT: garbage in the registry file; reads and writes refuse, file kept', (t) => {
  const { file } = tempRegistry(t);
  const registry = open(file);
  t.after(() => registry.close());
  registry.register(entry('before-corruption', { liveness: 'none' }));
  const garbage = '{"version":1,"servers":[{"id": oops this is not JSON';
  fs.writeFileSync(file, garbage, { mode: 0o600 });

  const listError = throwsCode(assert, () => registry.list(), 'PEERREG_ECORRUPT');
  assert.ok(listError.message.includes(file), `message names the file: ${listError.message}`);
  throwsCode(assert, () => registry.get('before-corruption'), 'PEERREG_ECORRUPT');
  throwsCode(assert, () => registry.register(entry('after-corruption')), 'PEERREG_ECORRUPT');
  assert.equal(fs.readFileSync(file, 'utf8'), garbage, 'a corrupt file is never overwritten');

  // A fresh handle opens fine (open does not fail on a corrupt file), then reports it too.
  const other = open(file);
  t.after(() => other.close());
  throwsCode(assert, () => other.list(), 'PEERREG_ECORRUPT');
});

test('PEERREG_EPERM: registry directory writable by others (chmod 0777)', (t) => {
  const { dir, file } = tempRegistry(t);
  fs.chmodSync(dir, 0o777);
  const error = throwsCode(assert, () => open(file), 'PEERREG_EPERM');
  assert.ok(error.message.includes(dir), `message names the directory: ${error.message}`);
  fs.chmodSync(dir, 0o700);
  open(file).close();
});

test('PEERREG_EPERM: group-writable file, symlinked file, hard-linked file', (t) => {
  {
    const { file } = tempRegistry(t);
    open(file).close();
    fs.writeFileSync(file, '{"version":1,"generation":1,"servers":[]}', { mode: 0o600 });
    fs.chmodSync(file, 0o666);
    throwsCode(assert, () => open(file), 'PEERREG_EPERM');
  }
  {
    const { dir, file } = tempRegistry(t);
    const real = path.join(dir, 'real.json');
    fs.writeFileSync(real, '{"version":1,"generation":1,"servers":[]}', { mode: 0o600 });
    fs.symlinkSync(real, file);
    throwsCode(assert, () => open(file), 'PEERREG_EPERM');
  }
  {
    const { dir, file } = tempRegistry(t);
    fs.writeFileSync(file, '{"version":1,"generation":1,"servers":[]}', { mode: 0o600 });
    fs.linkSync(file, path.join(dir, 'second-link.json'));
    throwsCode(assert, () => open(file), 'PEERREG_EPERM');
  }
});

test('PEERREG_ELIMIT: an oversized entry is refused and changes nothing', (t) => {
  const { file } = tempRegistry(t);
  const registry = open(file);
  t.after(() => registry.close());
  registry.register(entry('small'));
  const generation = registry.listWithGeneration().generation;

  throwsCode(
    assert,
    () => registry.register(entry('huge-name', { name: 'x'.repeat(4 * 1024 * 1024) })),
    'PEERREG_ELIMIT',
  );
  const manyTools = Array.from({ length: 100000 }, (_, i) => `tool${i}`);
  throwsCode(
    assert,
    () => registry.register(entry('many-tools', { capabilities: { tools: manyTools } })),
    'PEERREG_ELIMIT',
  );
  assert.equal(registry.listWithGeneration().generation, generation, 'nothing was written');
  assert.deepEqual(registry.list().map((s) => s.id), ['small']);
});

test('PEERREG_ECLOSED: every call on a closed handle (answered by the library)', (t) => {
  const { file } = tempRegistry(t);
  const registry = open(file);
  registry.register(entry('x'));
  registry.close();
  const calls = {
    register: () => registry.register(entry('y')),
    unregister: () => registry.unregister('x'),
    get: () => registry.get('x'),
    list: () => registry.list(),
    listWithGeneration: () => registry.listWithGeneration(),
    resolveTool: () => registry.resolveTool('t'),
    resolveResource: () => registry.resolveResource('resource://r/'),
    resolvePrompt: () => registry.resolvePrompt('p'),
    setHealth: () => registry.setHealth('x', 'HEALTHY'),
    heartbeat: () => registry.heartbeat('x'),
    prune: () => registry.prune(),
    watch: () => registry.watch(),
  };
  for (const [name, call] of Object.entries(calls)) {
    const error = throwsCode(assert, call, 'PEERREG_ECLOSED');
    assert.match(error.message, /closed/, name);
  }
  registry.close(); // still a no-op
});

test('PEERREG_EINVAL: bad JSON, missing arguments, bad fields, unknown filters', (t) => {
  const { file } = tempRegistry(t);
  const registry = open(file);
  t.after(() => registry.close());
  registry.register(entry('valid'));
  const generation = registry.listWithGeneration().generation;

  throwsCode(assert, () => registry.register('{"id": "broken", '), 'PEERREG_EINVAL');
  throwsCode(assert, () => registry.register('[1, 2, 3]'), 'PEERREG_EINVAL');
  throwsCode(assert, () => registry.register(undefined), 'PEERREG_EINVAL');
  throwsCode(assert, () => registry.register(null), 'PEERREG_EINVAL');
  throwsCode(assert, () => registry.register({ url: 'http://127.0.0.1:1/mcp' }), 'PEERREG_EINVAL');
  throwsCode(assert, () => registry.register({ id: 'no-url' }), 'PEERREG_EINVAL');
  throwsCode(assert, () => registry.register(entry('bad/id')), 'PEERREG_EINVAL');
  throwsCode(assert, () => registry.register(entry('dotted.id')), 'PEERREG_EINVAL');
  throwsCode(assert, () => registry.register(entry('-leading-dash')), 'PEERREG_EINVAL');
  throwsCode(assert, () => registry.register(entry('x'.repeat(65))), 'PEERREG_EINVAL');
  throwsCode(assert, () => registry.register(entry('bad-transport', { transport: 'carrier-pigeon' })),
    'PEERREG_EINVAL');
  throwsCode(assert, () => registry.register(entry('bad-liveness', { liveness: 'sometimes' })),
    'PEERREG_EINVAL');

  throwsCode(assert, () => registry.get(undefined), 'PEERREG_EINVAL');
  throwsCode(assert, () => registry.unregister(null), 'PEERREG_EINVAL');
  throwsCode(assert, () => registry.heartbeat(), 'PEERREG_EINVAL');
  throwsCode(assert, () => registry.resolveTool(undefined), 'PEERREG_EINVAL');
  throwsCode(assert, () => registry.resolve(99, 'x'), 'PEERREG_EINVAL');
  throwsCode(assert, () => registry.setHealth('valid', 42), 'PEERREG_EINVAL');
  throwsCode(assert, () => registry.setHealth('valid', -1), 'PEERREG_EINVAL');
  throwsCode(assert, () => registry.list({ colour: 'blue' }), 'PEERREG_EINVAL');
  throwsCode(assert, () => registry.list('{not json'), 'PEERREG_EINVAL');

  assert.equal(registry.listWithGeneration().generation, generation, 'nothing was written');
  assert.deepEqual(registry.list().map((s) => s.id), ['valid']);
});

test('PEERREG_ETIMEOUT: the lock file held by another process',
  { skip: spawnSync('flock', ['--version']).error ? 'flock(1) not installed' : false },
  async (t) => {
    const { file } = tempRegistry(t);
    const registry = open(file);
    t.after(() => registry.close());
    // flock(1) holds LOCK_EX on the lock file the way a stuck writer would (--no-fork: the
    // process killed below is the one holding the lock, not a parent of it).
    const holder = spawn('flock', ['--exclusive', '--no-fork', `${file}.lock`, 'sleep', '60'], {
      stdio: 'ignore',
    });
    t.after(() => holder.kill('SIGKILL'));
    await waitFor(() => spawnSync('flock', ['--nonblock', `${file}.lock`, 'true']).status !== 0, {
      what: 'flock(1) to hold the lock',
    });
    const started = Date.now();
    const error = throwsCode(assert, () => registry.register(entry('blocked')), 'PEERREG_ETIMEOUT');
    const waited = Date.now() - started;
    assert.ok(waited >= 1000 && waited < 30000, `waited ${waited} ms`);
    assert.ok(error.message.includes(`${file}.lock`), error.message);
    holder.kill('SIGKILL');
    await new Promise((resolve) => holder.on('exit', resolve));
    assert.equal(registry.register(entry('unblocked')).id, 'unblocked');
  });

test('PEERREG_EIO: the registry directory cannot be created', (t) => {
  const { dir } = tempRegistry(t);
  const notADirectory = path.join(dir, 'plain-file');
  fs.writeFileSync(notADirectory, '');
  throwsCode(assert, () => open(path.join(notADirectory, 'servers.json')), 'PEERREG_EIO');
});
