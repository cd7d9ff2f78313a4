#!/usr/bin/env node
'use strict';
// An MCP server over streamable HTTP that announces itself in the peer registry.
//
//   node examples/node/server.js [id]
//
// It speaks enough of MCP (2024-11-05 to 2025-11-25) for the official SDK clients: POST
// JSON-RPC on /mcp — initialize (version negotiation, an Mcp-Session-Id), notifications/
// initialized, ping, tools/list, tools/call — answered as application/json; DELETE ends a
// session; GET (a server-to-client SSE stream) is not offered: 405. It binds 127.0.0.1 port 0
// first, registers the port it actually got with the tool list taken from its own tool table,
// and unregisters on SIGINT/SIGTERM before exiting 0. The registry file is
// $PEER_REGISTRY_PATH, else ~/.peer-plan/servers.json. If the process dies without that
// (SIGKILL, crash), the kernel drops its lease and readers stop seeing the entry anyway.
//
// In your own project, require('peer-registry') instead of the repository path below.

const crypto = require('node:crypto');
const http = require('node:http');
const peerRegistry = require('../../bindings/node');

const id = process.argv[2] || process.env.EXAMPLE_SERVER_ID || 'example-node';
const SERVER_INFO = { name: 'peer-registry-node-example', version: '0.1.0' };
// Newest first: an initialize asking for one of these gets it, anything else gets the first.
const PROTOCOL_VERSIONS = ['2025-11-25', '2025-06-18', '2025-03-26', '2024-11-05'];
const MAX_BODY = 1 << 20;
const MAX_SESSIONS = 1000;

const tools = {
  echo: {
    description: 'Returns its "text" argument.',
    inputSchema: { type: 'object', properties: { text: { type: 'string' } }, required: ['text'] },
    call: ({ text }) => {
      if (typeof text !== 'string') throw new Error('"text" must be a string');
      return text;
    },
  },
  add: {
    description: 'Adds the numbers "a" and "b".',
    inputSchema: {
      type: 'object',
      properties: { a: { type: 'number' }, b: { type: 'number' } },
      required: ['a', 'b'],
    },
    call: ({ a, b }) => {
      if (typeof a !== 'number' || typeof b !== 'number') throw new Error('"a" and "b" must be numbers');
      return String(a + b);
    },
  },
};

/** Session id -> { protocolVersion, initialized }. */
const sessions = new Map();

class HttpError extends Error {
  constructor(status, message, rpcCode = -32000) {
    super(message);
    this.status = status;
    this.rpcCode = rpcCode;
  }
}

const result = (request, value) => ({ jsonrpc: '2.0', id: request.id, result: value });
const failure = (requestId, code, message) => ({ jsonrpc: '2.0', id: requestId ?? null, error: { code, message } });

function handleRequest(request, session) {
  const params = request.params ?? {};
  switch (request.method) {
    case 'ping':
      return result(request, {});
    case 'tools/list':
      return result(request, {
        tools: Object.entries(tools).map(([name, t]) => ({
          name, description: t.description, inputSchema: t.inputSchema,
        })),
      });
    case 'tools/call': {
      const tool = Object.hasOwn(tools, params.name) ? tools[params.name] : undefined;
      if (!tool) return failure(request.id, -32602, `unknown tool: ${params.name}`);
      try {
        const text = tool.call(params.arguments ?? {});
        return result(request, { content: [{ type: 'text', text }], isError: false });
      } catch (error) {
        // A tool's own failure is a result the model can read, not a protocol error.
        return result(request, { content: [{ type: 'text', text: error.message }], isError: true });
      }
    }
    default:
      return failure(request.id, -32601, `method not found: ${request.method}`);
  }
}

function initialize(request) {
  const requested = request.params?.protocolVersion;
  const protocolVersion = PROTOCOL_VERSIONS.includes(requested) ? requested : PROTOCOL_VERSIONS[0];
  if (sessions.size >= MAX_SESSIONS) throw new HttpError(503, 'too many sessions');
  const sessionId = crypto.randomUUID();
  sessions.set(sessionId, { protocolVersion, initialized: false });
  const reply = result(request, {
    protocolVersion,
    capabilities: { tools: { listChanged: false } },
    serverInfo: SERVER_INFO,
  });
  return { sessionId, reply };
}

/** The session a (non-initialize) message belongs to, checked as the transport spec says. */
function sessionOf(req) {
  const sessionId = req.headers['mcp-session-id'];
  if (!sessionId) throw new HttpError(400, 'Bad Request: Mcp-Session-Id header is required');
  const session = sessions.get(sessionId);
  if (!session) throw new HttpError(404, 'Session not found', -32001);
  const version = req.headers['mcp-protocol-version'];
  if (version !== undefined && version !== session.protocolVersion) {
    throw new HttpError(400, `Bad Request: unsupported MCP-Protocol-Version ${version} ` +
      `(this session negotiated ${session.protocolVersion})`);
  }
  return { sessionId, session };
}

/** Rejects a browser page on another origin (DNS rebinding): only loopback origins may call. */
function checkOrigin(req) {
  const origin = req.headers.origin;
  if (origin === undefined) return;
  let host = null;
  try {
    host = new URL(origin).hostname;
  } catch {}
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(host)) {
    throw new HttpError(403, `Forbidden: origin ${origin}`);
  }
}

function send(res, status, body, headers = {}) {
  if (body === undefined) {
    res.writeHead(status, headers).end();
    return;
  }
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => {
      body += chunk;
      if (body.length > MAX_BODY) {
        reject(new HttpError(413, 'request body too large'));
        req.destroy();
      }
    });
    req.on('end', () => resolve(body));
    req.on('error', reject);
  });
}

async function handlePost(req, res) {
  const body = await readBody(req);
  let message;
  try {
    message = JSON.parse(body);
  } catch {
    send(res, 400, failure(null, -32700, 'parse error'));
    return;
  }
  if (message === null || typeof message !== 'object' || Array.isArray(message) ||
      message.jsonrpc !== '2.0') {
    send(res, 400, failure(null, -32600, 'invalid request: one JSON-RPC 2.0 message per POST'));
    return;
  }
  const isRequest = typeof message.method === 'string' && message.id !== undefined && message.id !== null;
  if (isRequest && message.method === 'initialize') {
    const { sessionId, reply } = initialize(message);
    send(res, 200, reply, { 'mcp-session-id': sessionId });
    return;
  }
  const { session } = sessionOf(req);
  if (!isRequest) {
    // A notification or a response: accepted, nothing to answer.
    if (message.method === 'notifications/initialized') session.initialized = true;
    send(res, 202);
    return;
  }
  send(res, 200, handleRequest(message, session));
}

const server = http.createServer((req, res) => {
  const handled = (async () => {
    if (new URL(req.url, 'http://localhost').pathname !== '/mcp') throw new HttpError(404, 'not found: the MCP endpoint is /mcp');
    checkOrigin(req);
    switch (req.method) {
      case 'POST':
        return handlePost(req, res);
      case 'DELETE': {
        const { sessionId } = sessionOf(req);
        sessions.delete(sessionId);
        return send(res, 200);
      }
      default:
        // GET would open a server-to-client SSE stream; this server sends nothing unasked.
        throw new HttpError(405, `method ${req.method} not allowed`);
    }
  })();
  handled.catch((error) => {
    if (res.headersSent) return;
    const status = error instanceof HttpError ? error.status : 500;
    const headers = status === 405 ? { allow: 'POST, DELETE' } : {};
    send(res, status, failure(null, error.rpcCode ?? -32603, error.message), headers);
  });
});

const registry = peerRegistry.open().promises;

server.on('listening', async () => {
  const { port } = server.address();
  const url = `http://127.0.0.1:${port}/mcp`;
  try {
    await registry.register({
      id,
      name: 'Node example server',
      url,
      port,
      transport: 'http',
      requiresSession: true,
      capabilities: { tools: Object.keys(tools) },
      metadata: { example: 'examples/node/server.js' },
    });
    await registry.setHealth(id, 'HEALTHY', 'listening');
  } catch (error) {
    console.error(`register failed: ${error.message}`);
    process.exit(1);
  }
  console.log(`registered ${id} at ${url}`);
});

let stopping = false;
async function stop(signal) {
  if (stopping) return;
  stopping = true;
  try {
    await registry.unregister(id);
  } catch (error) {
    // Not registered yet (signal before 'listening'), or already gone: nothing to undo.
    if (error.code !== 'PEERREG_ENOTFOUND') console.error(`unregister failed: ${error.message}`);
  }
  await registry.close();
  console.log(`${signal}: unregistered ${id}`);
  server.close(() => process.exit(0));
  server.closeAllConnections();
}
process.on('SIGINT', stop);
process.on('SIGTERM', stop);

server.listen(0, '127.0.0.1');
