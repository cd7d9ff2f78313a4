#!/usr/bin/env node
'use strict';
// Per-call overhead of the binding: time per registry.get() (JS -> N-API -> library lookup
// against an unchanged file -> JSON string -> JSON.parse) versus per versionNumber() (the
// cheapest possible crossing: JS -> N-API -> a C function returning an int), and the cost of
// require() + loading the library. Usage: node bindings/node/bench-overhead.js [iterations]

const { performance } = require('node:perf_hooks');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const t0 = performance.now();
const peerRegistry = require('.');
const t1 = performance.now();
const libraryPath = peerRegistry.loadLibrary();
const t2 = performance.now();

const iterations = Number(process.argv[2]) || 200000;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peerreg-bench-'));
const registry = peerRegistry.open(path.join(dir, 'servers.json'));
try {
  for (let i = 0; i < 10; i++) {
    registry.register({
      id: `bench-${i}`,
      url: `http://127.0.0.1:${9000 + i}/mcp`,
      capabilities: { tools: [`tool-${i}`] },
    });
  }

  function perCall(fn, n) {
    for (let i = 0; i < Math.min(n, 10000); i++) fn(); // warm-up (JIT, file cache)
    const start = process.hrtime.bigint();
    for (let i = 0; i < n; i++) fn();
    return Number(process.hrtime.bigint() - start) / n; // ns per call
  }

  let sink = 0;
  const versionNs = perCall(() => (sink += peerRegistry.versionNumber()), iterations);
  const getNs = perCall(() => (sink += registry.get('bench-5').port ?? 1), iterations / 4);
  // The same call without JSON.parse: the addon's module object is the one index.js uses.
  const native = require('./build/peer_registry.node');
  const rawGetNs = perCall(() => (sink += native.get(registry._handle, 'bench-5').length),
    iterations / 4);
  const listNs = perCall(() => (sink += registry.list().length), iterations / 20);
  const resolveNs = perCall(() => (sink += registry.resolveTool('tool-7').id.length), iterations / 4);
  const writeNs = perCall(() => registry.heartbeat('bench-3'), 200);

  const us = (ns) => `${(ns / 1000).toFixed(3)} µs`;
  console.log(`library: ${libraryPath} (${peerRegistry.version()})`);
  console.log(`require('peer-registry'):      ${(t1 - t0).toFixed(2)} ms`);
  console.log(`loadLibrary() (dlopen+dlsym):  ${(t2 - t1).toFixed(2)} ms`);
  console.log(`require + load, total:         ${(t2 - t0).toFixed(2)} ms`);
  console.log(`versionNumber():               ${us(versionNs)} per call`);
  console.log(`get(id) (10 entries):          ${us(getNs)} per call`);
  console.log(`get / versionNumber ratio:     ${(getNs / versionNs).toFixed(1)}x`);
  console.log(`  of which JSON text only:     ${us(rawGetNs)} per call (no JSON.parse)`);
  console.log(`list() (10 entries):           ${us(listNs)} per call`);
  console.log(`resolveTool(name):             ${us(resolveNs)} per call`);
  console.log(`heartbeat(id) (durable write): ${us(writeNs)} per call`);
  if (sink === 0.5) console.log(sink); // keep the results alive
} finally {
  registry.close();
  fs.rmSync(dir, { recursive: true, force: true });
}
