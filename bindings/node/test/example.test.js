'use strict';
// examples/node/server.js: registers the port it really got, answers ping, and leaves the
// registry on SIGTERM.

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');

const peerRegistry = require('..');
const { REPO_DIR, tempRegistry, spawnNode, throwsCode } = require('../test-support/helpers');

const SERVER = path.join(REPO_DIR, 'examples', 'node', 'server.js');

async function rpc(url, body) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  assert.equal(response.status, 200);
  return response.json();
}

for (const signal of ['SIGTERM', 'SIGINT']) {
  test(`the example server registers its real port and unregisters on ${signal}`, async (t) => {
    const { file } = tempRegistry(t);
    const registry = peerRegistry.open(file);
    t.after(() => registry.close());
    const watch = registry.watch();
    t.after(() => watch.close());
    const added = new Promise((resolve) => watch.once('added', resolve));

    const server = spawnNode(t, SERVER, ['example-under-test'], {
      env: { PEER_REGISTRY_PATH: file },
      readyPrefix: 'registered ',
    });
    const announced = await server.ready;
    const port = Number(/127\.0\.0\.1:(\d+)\/mcp/.exec(announced)[1]);
    assert.ok(port > 0);

    const addedEntry = await added;
    assert.equal(addedEntry.id, 'example-under-test');
    const stored = registry.get('example-under-test');
    assert.equal(stored.port, port, 'the port it actually got, not 0');
    assert.equal(stored.url, `http://127.0.0.1:${port}/mcp`);
    assert.equal(stored.transport, 'http');
    assert.equal(stored.pid, server.child.pid);
    assert.equal(stored.health.status, 'HEALTHY');
    assert.equal(registry.resolveTool('echo').id, 'example-under-test');

    const pong = await rpc(stored.url, { jsonrpc: '2.0', id: 1, method: 'ping' });
    assert.deepEqual(pong, { jsonrpc: '2.0', id: 1, result: {} });
    const echoed = await rpc(stored.url, {
      jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'echo', arguments: { text: 'hi' } },
    });
    assert.equal(echoed.result.content[0].text, 'hi');
    const unknown = await rpc(stored.url, { jsonrpc: '2.0', id: 3, method: 'nope' });
    assert.equal(unknown.error.code, -32601);

    const removed = new Promise((resolve) => watch.once('removed', resolve));
    server.child.kill(signal);
    const { code, signal: killedBy } = await server.exited;
    assert.equal(code, 0);
    assert.equal(killedBy, null);
    throwsCode(assert, () => registry.get('example-under-test'), 'PEERREG_ENOTFOUND');
    assert.equal((await removed).id, 'example-under-test');
    assert.equal(registry.prune(), 0, 'unregistered, not merely dead');
  });
}
