'use strict';
// registry.probe() against real loopback listeners started by the test itself: an HTTP server
// answering the MCP ping, a port that refuses connections, and one that accepts but never
// answers. The listeners live on this process's event loop, so these tests also show that a
// probe does not block it.

const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const net = require('node:net');

const { open, PeerRegistryError } = require('..');
const { tempRegistry } = require('../test-support/helpers');

function openTemp(t) {
  const { file } = tempRegistry(t);
  const registry = open(file);
  const other = open(file);
  t.after(() => {
    registry.close();
    other.close();
  });
  return { registry, other, file };
}

function listen(t, server) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      t.after(() => new Promise((done) => server.close(done)));
      resolve(server.address().port);
    });
  });
}

/**
 * An HTTP server answering MCP on /mcp as servers do: initialize (with an Mcp-Session-Id),
 * notifications (202), ping, DELETE of the session; a bare ping is answered too, so the test
 * holds whether the probe pings directly or after the handshake. `pings` collects the pings.
 */
async function pingServer(t) {
  const pings = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      if (req.url !== '/mcp') return res.writeHead(404).end();
      if (req.method === 'DELETE') return res.writeHead(200).end();
      let request = null;
      try {
        request = JSON.parse(body);
      } catch {}
      const reply = (result, headers = {}) => {
        res.writeHead(200, { 'Content-Type': 'application/json', ...headers });
        res.end(JSON.stringify({ jsonrpc: '2.0', id: request.id, result }));
      };
      if (req.method !== 'POST' || typeof request?.method !== 'string') return res.writeHead(400).end();
      if (request.id === undefined) return res.writeHead(202).end();
      if (request.method === 'initialize') {
        return reply({ protocolVersion: request.params?.protocolVersion ?? '2025-06-18', capabilities: {},
          serverInfo: { name: 'probe-test', version: '0' } }, { 'Mcp-Session-Id': 'probe-session' });
      }
      if (request.method !== 'ping') return res.writeHead(400).end();
      pings.push(request);
      reply({});
    });
  });
  const port = await listen(t, server);
  return { url: `http://127.0.0.1:${port}/mcp`, pings };
}

/** A loopback port nothing listens on (taken from a listener that is then closed). */
async function refusedUrl() {
  const server = net.createServer();
  const port = await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
  await new Promise((done) => server.close(done));
  return `http://127.0.0.1:${port}/mcp`;
}

/** A listener that accepts connections and never answers them (nor closes them). */
async function silentServer(t) {
  const sockets = new Set();
  let count = 0;
  const server = net.createServer((socket) => {
    count++;
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
  });
  t.after(() => {
    for (const socket of sockets) socket.destroy();
  });
  const port = await listen(t, server);
  return { url: `http://127.0.0.1:${port}/mcp`, accepted: () => count };
}

test('a server answering the MCP ping becomes HEALTHY', async (t) => {
  const { registry, other } = openTemp(t);
  const { url, pings } = await pingServer(t);
  registry.register({ id: 'up', url, capabilities: { tools: ['upTool'] } });
  assert.equal(registry.get('up').health.status, 'UNKNOWN');

  const probed = await registry.probe('up', { timeoutMs: 2000 });

  assert.equal(probed.id, 'up');
  assert.equal(probed.url, url);
  assert.equal(probed.health.status, 'HEALTHY');
  assert.match(probed.health.message, /ping ok/);
  assert.equal(probed.health.consecutiveFailures, undefined);
  assert.match(probed.health.lastCheck, /Z$/);
  assert.equal(pings.length, 1, 'one ping per probe');
  // Recorded in the file, not just returned: another handle sees the same entry.
  assert.deepEqual(other.get('up'), probed);
  assert.equal(other.resolveTool('upTool').id, 'up');
});

test('a refused port is DEGRADED after 1 failure and DOWN after 3, and DOWN no longer resolves', async (t) => {
  const { registry, other } = openTemp(t);
  const url = await refusedUrl();
  registry.register({ id: 'gone', url, liveness: 'none', capabilities: { tools: ['goneTool'] } });
  const expected = ['DEGRADED', 'DEGRADED', 'DOWN'];
  for (const [i, status] of expected.entries()) {
    const probed = await registry.probe('gone', { timeoutMs: 1000 }); // recorded, not thrown
    assert.equal(probed.health.status, status, JSON.stringify(probed.health));
    assert.equal(probed.health.consecutiveFailures, i + 1);
    assert.ok(probed.health.message, 'a failed probe says what it saw');
    assert.deepEqual(other.get('gone').health, probed.health);
    if (status === 'DEGRADED') assert.equal(other.resolveTool('goneTool').id, 'gone');
  }
  assert.throws(() => other.resolveTool('goneTool'), { code: 'PEERREG_ENOTFOUND' });
  assert.deepEqual(other.list({ status: 'DOWN' }).map((e) => e.id), ['gone']);
});

test('a server that accepts but never answers is DEGRADED within the timeout', async (t) => {
  const { registry } = openTemp(t);
  const { url, accepted } = await silentServer(t);
  registry.register({ id: 'mute', url });
  const started = process.hrtime.bigint();
  const probed = await registry.probe('mute', { timeoutMs: 300 });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  assert.equal(probed.health.status, 'DEGRADED');
  assert.equal(probed.health.consecutiveFailures, 1);
  assert.match(probed.health.message, /300 ms/);
  assert.ok(ms >= 290 && ms < 5000, `a 300 ms probe took ${ms} ms`);
  assert.equal(accepted(), 1, 'the probe connected to this listener once');
});

test('the event loop keeps running while a probe waits', async (t) => {
  const { registry } = openTemp(t);
  const { url } = await silentServer(t);
  registry.register({ id: 'mute', url });
  let ticks = 0;
  const timer = setInterval(() => ticks++, 10);
  try {
    await registry.probe('mute', { timeoutMs: 300 });
  } finally {
    clearInterval(timer);
  }
  assert.ok(ticks >= 5, `only ${ticks} timer ticks ran during a 300 ms probe`);
});

test('probe errors are rejections', async (t) => {
  const { registry } = openTemp(t);
  await assert.rejects(registry.probe('nobody'), (error) => {
    assert.ok(error instanceof PeerRegistryError);
    assert.equal(error.code, 'PEERREG_ENOTFOUND');
    assert.match(error.message, /nobody/);
    return true;
  });
  await assert.rejects(registry.probe('nobody', { timeoutMs: 1.5 }), { code: 'ERR_OUT_OF_RANGE' });
  await assert.rejects(registry.probe('nobody', { timeoutMs: '2000' }), { code: 'ERR_INVALID_ARG_TYPE' });
  await assert.rejects(registry.probe(42), { code: 'ERR_INVALID_ARG_TYPE' });
  await assert.rejects(registry.probe(undefined), { code: 'PEERREG_EINVAL' });
  registry.close();
  await assert.rejects(registry.probe('nobody'), { code: 'PEERREG_ECLOSED' });
});

test('closing the registry while a probe runs is safe', async (t) => {
  const { file } = tempRegistry(t);
  const registry = open(file);
  const { url } = await silentServer(t);
  registry.register({ id: 'mute', url, liveness: 'none' });
  const pending = registry.probe('mute', { timeoutMs: 300 });
  registry.close();
  // Either the probe finished on the live handle or the library refused the closed one;
  // nothing crashes and the promise settles.
  await pending.then(
    (entry) => assert.equal(entry.id, 'mute'),
    (error) => assert.equal(error.code, 'PEERREG_ECLOSED'),
  );
});
