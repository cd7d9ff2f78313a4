'use strict';
// examples/node/server.js: registers the port it really got, speaks MCP's streamable HTTP
// transport as the spec says (sessions, version negotiation, status codes), and leaves the
// registry on SIGTERM/SIGINT. tests/examples drives the same server with the official MCP SDK.

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');

const peerRegistry = require('..');
const { REPO_DIR, tempRegistry, spawnNode, throwsCode } = require('../test-support/helpers');

const SERVER = path.join(REPO_DIR, 'examples', 'node', 'server.js');
const ACCEPT = 'application/json, text/event-stream';

async function post(url, body, headers = {}) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: ACCEPT, ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : null };
}

const initialize = (protocolVersion) => ({
  jsonrpc: '2.0', id: 1, method: 'initialize',
  params: { protocolVersion, capabilities: {}, clientInfo: { name: 'raw-test', version: '0' } },
});

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

    assert.equal((await added).id, 'example-under-test');
    const stored = registry.get('example-under-test');
    assert.equal(stored.port, port, 'the port it actually got, not 0');
    assert.equal(stored.url, `http://127.0.0.1:${port}/mcp`);
    assert.equal(stored.transport, 'http');
    assert.equal(stored.pid, server.child.pid);
    assert.equal(stored.requiresSession, true);
    assert.equal(stored.health.status, 'HEALTHY');
    assert.deepEqual(stored.capabilities.tools.sort(), ['add', 'echo']);
    assert.equal(registry.resolveTool('echo').id, 'example-under-test');

    const init = await post(stored.url, initialize('2025-06-18'));
    assert.equal(init.status, 200);
    assert.equal(init.body.result.protocolVersion, '2025-06-18');
    const session = init.headers.get('mcp-session-id');
    assert.match(session, /^[\x21-\x7e]+$/, 'a visible-ASCII session id');
    const headers = { 'mcp-session-id': session, 'mcp-protocol-version': '2025-06-18' };
    assert.equal((await post(stored.url, { jsonrpc: '2.0', method: 'notifications/initialized' },
      headers)).status, 202);
    const echoed = await post(stored.url, {
      jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'echo', arguments: { text: 'hi' } },
    }, headers);
    assert.equal(echoed.body.result.content[0].text, 'hi');

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

test('the example server follows the streamable HTTP transport rules', async (t) => {
  const { file } = tempRegistry(t);
  const server = spawnNode(t, SERVER, ['transport-rules'], {
    env: { PEER_REGISTRY_PATH: file },
    readyPrefix: 'registered ',
  });
  const url = /(http:\S+)/.exec(await server.ready)[1];

  // Version negotiation: a supported version is echoed, an unknown one gets the newest.
  const old = await post(url, initialize('2025-03-26'));
  assert.equal(old.body.result.protocolVersion, '2025-03-26');
  const future = await post(url, initialize('2099-01-01'));
  assert.equal(future.body.result.protocolVersion, '2025-11-25');
  assert.equal(future.body.result.serverInfo.name, 'peer-registry-node-example');
  assert.deepEqual(future.body.result.capabilities, { tools: { listChanged: false } });
  const session = old.headers.get('mcp-session-id');
  assert.notEqual(session, future.headers.get('mcp-session-id'), 'one session per initialize');

  const ping = { jsonrpc: '2.0', id: 7, method: 'ping' };
  const withSession = { 'mcp-session-id': session };
  assert.deepEqual((await post(url, ping, withSession)).body, { jsonrpc: '2.0', id: 7, result: {} });
  assert.equal((await post(url, ping)).status, 400, 'no Mcp-Session-Id');
  assert.equal((await post(url, ping, { 'mcp-session-id': 'nobody' })).status, 404, 'unknown session');
  assert.equal((await post(url, ping, { ...withSession, 'mcp-protocol-version': '2025-06-18' })).status,
    400, 'a protocol version header other than the negotiated one');
  assert.equal((await post(url, ping, { ...withSession, 'mcp-protocol-version': '2025-03-26' })).status,
    200);
  assert.equal((await post(url, 'not json', withSession)).body.error.code, -32700);
  const batch = await post(url, [ping, ping], withSession);
  assert.equal(batch.status, 400);
  assert.equal(batch.body.error.code, -32600);
  assert.equal((await post(url, { jsonrpc: '2.0', id: 8, method: 'nope' }, withSession)).body.error.code,
    -32601);
  const unknownTool = await post(url, { jsonrpc: '2.0', id: 9, method: 'tools/call',
    params: { name: 'nope', arguments: {} } }, withSession);
  assert.equal(unknownTool.body.error.code, -32602);
  const badArguments = await post(url, { jsonrpc: '2.0', id: 10, method: 'tools/call',
    params: { name: 'add', arguments: { a: 1 } } }, withSession);
  assert.equal(badArguments.body.result.isError, true);
  assert.equal((await post(url, ping, { ...withSession, origin: 'http://evil.example' })).status, 403);
  assert.equal((await post(url, ping, { ...withSession, origin: 'http://localhost:3000' })).status, 200);

  const get = await fetch(url, { headers: { accept: 'text/event-stream', ...withSession } });
  assert.equal(get.status, 405);
  assert.equal(get.headers.get('allow'), 'POST, DELETE');
  assert.equal((await fetch(url.replace('/mcp', '/other'), { method: 'POST' })).status, 404);

  assert.equal((await fetch(url, { method: 'DELETE', headers: withSession })).status, 200);
  assert.equal((await post(url, ping, withSession)).status, 404, 'a deleted session is gone');

  server.child.kill('SIGTERM');
  assert.equal((await server.exited).code, 0);
});
