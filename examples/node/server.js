#!/usr/bin/env node
'use strict';
// A tiny MCP-style HTTP server that announces itself in the peer registry.
//
//   node examples/node/server.js [id]
//
// It listens on 127.0.0.1 with port 0 (the kernel picks a free port), registers the port it
// actually got only once 'listening' fired, answers JSON-RPC on POST /mcp (ping, tools/list,
// tools/call for "echo"), and unregisters on SIGINT/SIGTERM before exiting 0. The registry file
// is $PEER_REGISTRY_PATH, else ~/.peer-plan/servers.json. If the process dies without that
// (SIGKILL, crash), the kernel drops its lease and readers stop seeing the entry anyway.

const http = require('node:http');
const peerRegistry = require('../../bindings/node');

const id = process.argv[2] || process.env.EXAMPLE_SERVER_ID || 'example-node';
const tools = [
  {
    name: 'echo',
    description: 'Returns its "text" argument.',
    inputSchema: { type: 'object', properties: { text: { type: 'string' } }, required: ['text'] },
  },
];

function rpcResult(request, result) {
  return { jsonrpc: '2.0', id: request.id ?? null, result };
}

function rpcError(request, code, message) {
  return { jsonrpc: '2.0', id: request?.id ?? null, error: { code, message } };
}

function handleRpc(request) {
  switch (request.method) {
    case 'ping':
      return rpcResult(request, {});
    case 'tools/list':
      return rpcResult(request, { tools });
    case 'tools/call': {
      const { name, arguments: args = {} } = request.params ?? {};
      if (name !== 'echo') return rpcError(request, -32602, `unknown tool: ${name}`);
      return rpcResult(request, { content: [{ type: 'text', text: String(args.text ?? '') }] });
    }
    default:
      return rpcError(request, -32601, `method not found: ${request.method}`);
  }
}

const server = http.createServer((req, res) => {
  if (req.method !== 'POST' || req.url !== '/mcp') {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('POST /mcp\n');
    return;
  }
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (chunk) => {
    body += chunk;
    if (body.length > 1 << 20) req.destroy();
  });
  req.on('end', () => {
    let reply;
    try {
      const request = JSON.parse(body);
      reply = request && typeof request === 'object' && !Array.isArray(request)
        ? handleRpc(request)
        : rpcError(null, -32600, 'invalid request');
    } catch {
      reply = rpcError(null, -32700, 'parse error');
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(reply));
  });
});

const registry = peerRegistry.open();

server.on('listening', () => {
  const { port } = server.address();
  const url = `http://127.0.0.1:${port}/mcp`;
  registry.register({
    id,
    name: 'Node example server',
    url,
    port,
    transport: 'http',
    capabilities: { tools: tools.map((t) => t.name) },
    metadata: { example: 'examples/node/server.js' },
  });
  registry.setHealth(id, 'HEALTHY', 'listening');
  console.log(`registered ${id} at ${url}`);
});

let stopping = false;
function stop(signal) {
  if (stopping) return;
  stopping = true;
  try {
    registry.unregister(id);
  } catch (error) {
    // Not registered yet (signal before 'listening'), or already gone: nothing to undo.
    if (error.code !== 'PEERREG_ENOTFOUND') console.error(`unregister failed: ${error.message}`);
  }
  registry.close();
  console.log(`${signal}: unregistered ${id}`);
  server.close(() => process.exit(0));
  server.closeAllConnections();
}
process.on('SIGINT', stop);
process.on('SIGTERM', stop);

server.listen(0, '127.0.0.1');
