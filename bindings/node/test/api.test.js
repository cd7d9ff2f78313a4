'use strict';
// Every Registry method against the real library, each test on its own temporary registry.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');

const peerRegistry = require('..');
const { tempRegistry, throwsCode } = require('../test-support/helpers');

const { open, Registry, codes, kinds, health } = peerRegistry;

function openTemp(t) {
  const { file, dir } = tempRegistry(t);
  const registry = open(file);
  t.after(() => registry.close());
  return { registry, file, dir };
}

function entry(id, extra = {}) {
  return { id, url: `http://127.0.0.1:${8000 + id.length}/mcp`, ...extra };
}


test('version information comes from the loaded library and matches the header', () => {
  assert.equal(peerRegistry.version(), peerRegistry.HEADER_VERSION);
  assert.equal(peerRegistry.versionNumber(), peerRegistry.HEADER_VERSION_NUMBER);
  assert.equal(peerRegistry.HEADER_VERSION, '0.2.0');
  assert.equal(peerRegistry.HEADER_VERSION_NUMBER, 2000);
  assert.match(peerRegistry.errstr(codes.ENOTFOUND), /^PEERREG_ENOTFOUND/);
  assert.equal(peerRegistry.errstr(12345), 'PEERREG_UNKNOWN_CODE');
  assert.ok(fs.existsSync(peerRegistry.libraryPath()), 'libraryPath() names an existing file');
});

test('constants mirror the header', () => {
  assert.deepEqual(
    { ...codes },
    {
      OK: 0, EINVAL: -1, ENOTFOUND: -2, EEXISTS: -3, ECORRUPT: -4, EIO: -5, EPERM: -6,
      ETIMEOUT: -7, EAMBIGUOUS: -8, ELIMIT: -9, ECLOSED: -10,
    },
  );
  assert.deepEqual({ ...kinds }, { TOOL: 1, RESOURCE: 2, PROMPT: 3 });
  assert.deepEqual({ ...health }, { UNKNOWN: 0, HEALTHY: 1, DEGRADED: 2, DOWN: 3 });
});

test('open() and new Registry() create the directory 0700 and the file on first write', (t) => {
  const { dir } = tempRegistry(t);
  const nested = `${dir}/nested/servers.json`;
  const a = open(nested);
  const b = new Registry({ path: nested });
  t.after(() => {
    a.close();
    b.close();
  });
  assert.ok(a instanceof Registry);
  assert.equal(a.path, nested);
  assert.equal(fs.statSync(`${dir}/nested`).mode & 0o777, 0o700);
  a.register(entry('first'));
  assert.ok(fs.existsSync(nested));
  assert.equal(b.get('first').id, 'first');
});

test('open() without a path uses $PEER_REGISTRY_PATH', (t) => {
  const { file } = tempRegistry(t);
  const saved = process.env.PEER_REGISTRY_PATH;
  process.env.PEER_REGISTRY_PATH = file;
  t.after(() => {
    if (saved === undefined) delete process.env.PEER_REGISTRY_PATH;
    else process.env.PEER_REGISTRY_PATH = saved;
  });
  const registry = open();
  t.after(() => registry.close());
  registry.register(entry('from-env'));
  const onDisk = JSON.parse(fs.readFileSync(file, 'utf8'));
  assert.deepEqual(onDisk.servers.map((s) => s.id), ['from-env']);
});

test('register() returns the stored entry with the library defaults filled in', (t) => {
  const { registry, file } = openTemp(t);
  const stored = registry.register({
    id: 'journey-service',
    name: 'Journey Service',
    url: 'http://127.0.0.1:8080/mcp',
    port: 8080,
    capabilities: { tools: ['findTrips'], resources: ['resource://journey/'], prompts: ['plan-trip'] },
    metadata: { team: 'trips', nested: { deep: [1, 2, 3] } },
    futureField: { kept: true },
  });
  assert.equal(stored.id, 'journey-service');
  assert.equal(stored.name, 'Journey Service');
  assert.equal(stored.url, 'http://127.0.0.1:8080/mcp');
  assert.equal(stored.port, 8080);
  assert.equal(stored.transport, 'http', 'transport from the URL scheme');
  assert.equal(stored.liveness, 'lease', 'default liveness');
  assert.equal(stored.pid, process.pid, 'pid defaults to the caller');
  assert.equal(stored.health.status, 'UNKNOWN');
  assert.ok(!Number.isNaN(Date.parse(stored.startedAt)), `startedAt ${stored.startedAt}`);
  assert.deepEqual(stored.capabilities.tools, ['findTrips']);
  assert.deepEqual(stored.metadata, { team: 'trips', nested: { deep: [1, 2, 3] } });
  assert.deepEqual(stored.futureField, { kept: true }, 'unknown fields are kept');

  assert.deepEqual(registry.get('journey-service'), stored);
  const onDisk = JSON.parse(fs.readFileSync(file, 'utf8'));
  assert.equal(onDisk.version, 1);
  assert.deepEqual(onDisk.servers.find((s) => s.id === 'journey-service').futureField, {
    kept: true,
  });
});

test('register() accepts JSON text as well as an object', (t) => {
  const { registry } = openTemp(t);
  const stored = registry.register(JSON.stringify(entry('as-text', { transport: 'sse' })));
  assert.equal(stored.id, 'as-text');
  assert.equal(registry.get('as-text').transport, 'sse');
});

test('register() again from the same handle replaces the entry', (t) => {
  const { registry } = openTemp(t);
  registry.register(entry('replace-me', { url: 'http://127.0.0.1:1111/mcp' }));
  const replaced = registry.register(entry('replace-me', { url: 'http://127.0.0.1:2222/mcp' }));
  assert.equal(replaced.url, 'http://127.0.0.1:2222/mcp');
  assert.equal(registry.get('replace-me').url, 'http://127.0.0.1:2222/mcp');
  assert.equal(registry.list().length, 1);
});

test('unregister() removes the entry; get() then throws PEERREG_ENOTFOUND', (t) => {
  const { registry } = openTemp(t);
  registry.register(entry('short-lived'));
  assert.equal(registry.get('short-lived').id, 'short-lived');
  assert.equal(registry.unregister('short-lived'), undefined);
  throwsCode(assert, () => registry.get('short-lived'), 'PEERREG_ENOTFOUND');
  assert.deepEqual(registry.list(), []);
});

test('list() returns live entries; listWithGeneration() adds the file generation', (t) => {
  const { registry } = openTemp(t);
  const before = registry.listWithGeneration();
  assert.deepEqual(before.servers, []);
  assert.equal(typeof before.generation, 'number');

  registry.register(entry('one'));
  const afterOne = registry.listWithGeneration();
  assert.equal(afterOne.generation, before.generation + 1, 'one write, one generation');
  registry.register(entry('two'));
  const afterTwo = registry.listWithGeneration();
  assert.equal(afterTwo.generation, afterOne.generation + 1);
  assert.deepEqual(afterTwo.servers.map((s) => s.id).sort(), ['one', 'two']);
  assert.deepEqual(registry.list().map((s) => s.id).sort(), ['one', 'two']);
  assert.ok(Array.isArray(registry.list()));
});

// What list() filters and how resolution chooses are the core's, checked in every language by
// tests/conformance/cases.json; here: what this binding passes along.
test('list() takes a filter as an object, as JSON text, or none (null/undefined)', (t) => {
  const { registry } = openTemp(t);
  registry.register(entry('web', { capabilities: { tools: ['search'] } }));
  registry.register(entry('socket', { url: 'ws://127.0.0.1:9002/mcp', capabilities: { tools: ['chat'] } }));
  const ids = (filter) => registry.list(filter).map((s) => s.id).sort();
  assert.deepEqual(ids(), ['socket', 'web']);
  assert.deepEqual(ids(null), ['socket', 'web']);
  assert.deepEqual(ids({ tool: 'chat' }), ['socket']);
  assert.deepEqual(ids('{"transport":"http"}'), ['web'], 'a filter may be JSON text');
  assert.deepEqual(registry.listWithGeneration({ tool: 'chat' }).servers.map((s) => s.id), ['socket']);
});

test('resolve(kind, name) with the kinds constants is resolveTool/resolveResource/resolvePrompt', (t) => {
  const { registry } = openTemp(t);
  registry.register(entry('alpha', {
    capabilities: { tools: ['search'], resources: ['resource://alpha/'], prompts: ['plan'] },
  }));
  for (const [kind, name, method] of [
    [kinds.TOOL, 'search', 'resolveTool'],
    [kinds.RESOURCE, 'resource://alpha/x', 'resolveResource'],
    [kinds.PROMPT, 'plan', 'resolvePrompt'],
  ]) {
    assert.equal(registry.resolve(kind, name).id, 'alpha');
    assert.deepEqual(registry[method](name), registry.resolve(kind, name));
    throwsCode(assert, () => registry[method]('nothing'), 'PEERREG_ENOTFOUND');
  }
});

test('setHealth() accepts names and numbers and records message and lastCheck', (t) => {
  const { registry } = openTemp(t);
  registry.register(entry('patient'));
  registry.setHealth('patient', 'DEGRADED', 'disk 91% full');
  let h = registry.get('patient').health;
  assert.equal(h.status, 'DEGRADED');
  assert.equal(h.message, 'disk 91% full');
  assert.ok(!Number.isNaN(Date.parse(h.lastCheck)), `lastCheck ${h.lastCheck}`);

  registry.setHealth('patient', health.HEALTHY);
  h = registry.get('patient').health;
  assert.equal(h.status, 'HEALTHY');
  assert.ok(!h.message, 'no message given, none kept');

  registry.setHealth('patient', 'down', 'lower case works too');
  assert.equal(registry.get('patient').health.status, 'DOWN');
  registry.setHealth('patient', 'UNKNOWN');
  assert.equal(registry.get('patient').health.status, 'UNKNOWN');

  assert.throws(() => registry.setHealth('patient', 'SICK'), {
    name: 'TypeError',
    code: 'ERR_INVALID_ARG_VALUE',
  });
  throwsCode(assert, () => registry.setHealth('nobody', 'HEALTHY'), 'PEERREG_ENOTFOUND');
});

test('close() is idempotent, unregisters lease entries and keeps static ones', (t) => {
  const { file } = tempRegistry(t);
  const owner = open(file);
  const observer = open(file);
  t.after(() => observer.close());
  owner.register(entry('leased'));
  owner.register(entry('static', { liveness: 'none' }));
  assert.deepEqual(observer.list().map((s) => s.id).sort(), ['leased', 'static']);
  assert.equal(owner.closed, false);
  owner.close();
  assert.equal(owner.closed, true);
  owner.close();
  assert.equal(owner.closed, true);
  assert.deepEqual(observer.list().map((s) => s.id), ['static']);
  throwsCode(assert, () => observer.get('leased'), 'PEERREG_ENOTFOUND');
});

test('try/finally and Symbol.dispose close the handle', (t) => {
  const { file } = tempRegistry(t);
  const registry = open(file);
  try {
    registry.register(entry('scoped'));
  } finally {
    registry.close();
  }
  assert.equal(registry.closed, true);
  if (typeof Symbol.dispose === 'symbol') {
    const disposable = open(file);
    disposable[Symbol.dispose]();
    assert.equal(disposable.closed, true);
  }
});

test('two handles in one process see each other immediately', (t) => {
  const { file } = tempRegistry(t);
  const a = open(file);
  const b = open(file);
  t.after(() => {
    a.close();
    b.close();
  });
  a.register(entry('from-a'));
  assert.equal(b.get('from-a').id, 'from-a');
  b.register(entry('from-b'));
  assert.deepEqual(a.list().map((s) => s.id).sort(), ['from-a', 'from-b']);
});

test('string arguments with embedded NUL are refused before reaching the library', (t) => {
  const { registry } = openTemp(t);
  registry.register(entry('a'));
  assert.throws(() => registry.get('a\0b'), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
  assert.throws(() => registry.unregister('a\0'), { code: 'ERR_INVALID_ARG_VALUE' });
  assert.equal(registry.get('a').id, 'a', 'the entry "a" was not touched');
  assert.throws(() => registry.get(42), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
  assert.throws(() => registry.resolve('1', 'x'), { code: 'ERR_INVALID_ARG_TYPE' });
});
