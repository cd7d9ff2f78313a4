#!/usr/bin/env node
'use strict';
// Registration workers in Node for benchmarks/sections.py (alternatives):
//   node workers.js <approach> <mode> <path> <worker> <count>
// approach: rmw — seed 000's hand-written registration: fs.readFileSync + JSON.parse (a read
//                 that fails counts as an empty registry) + push + fs.writeFileSync, no lock;
//           lib — the library through the Node binding (registry.register, liveness "none").
// mode: time  — re-register the same entry <count> times; prints {"lat_us":[...]}
//       crowd — print "ready", wait for a line on stdin, then register <count> distinct entries
//               (ids w<worker>-<j>); prints {"acked":[ids],"errors":n,"error":"first message"}
const fs = require('node:fs');
const path = require('node:path');

const [approach, mode, file, worker, countArg] = process.argv.slice(2);
const count = Number(countArg);

function entry(id, port) {
  return {
    id,
    name: `Benchmark server ${id}`,
    url: `http://127.0.0.1:${port}/mcp`,
    capabilities: { tools: [`search-${id}`, `fetch-${id}`, 'summarize'], resources: [`resource://${id}/`], prompts: [`plan-${id}`] },
    metadata: { team: 'bench', region: 'local' },
  };
}

// What seed 000's WebSocket servers do at startup: read, parse, push, write. No lock, no temp
// file, no fsync; an unreadable or half-written file is taken as an empty registry.
function registerRMW(e) {
  let registry;
  try {
    registry = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    registry = { servers: [] };
  }
  if (!Array.isArray(registry.servers)) registry.servers = [];
  const port = Number(new URL(e.url).port);
  registry.servers = registry.servers.filter((s) => s.port !== port);
  registry.servers.push({ ...e, port, pid: process.pid, startedAt: new Date().toISOString() });
  fs.writeFileSync(file, JSON.stringify(registry, null, 2));
}

let register;
if (approach === 'rmw') {
  register = registerRMW;
} else if (approach === 'lib') {
  const registry = require(path.join(__dirname, '..', 'bindings', 'node')).open(file);
  register = (e) => registry.register({ ...e, liveness: 'none' });
} else {
  throw new Error(`unknown approach ${approach}`);
}

if (mode === 'time') {
  const e = entry('bench', 9999);
  for (let i = 0; i < 5; i++) register(e); // warm-up (JIT)
  const lat = [];
  for (let i = 0; i < count; i++) {
    const a = process.hrtime.bigint();
    register(e);
    lat.push(Number(process.hrtime.bigint() - a) / 1000);
  }
  process.stdout.write(JSON.stringify({ lat_us: lat }) + '\n');
} else if (mode === 'crowd') {
  process.stdout.write('ready\n');
  const buf = Buffer.alloc(16);
  fs.readSync(0, buf, 0, 16, null); // the start line
  const acked = [];
  let errors = 0;
  let firstError = '';
  for (let j = 0; j < count; j++) {
    const id = `w${worker}-${j}`;
    try {
      register(entry(id, 20000 + Number(worker) * 1000 + j));
      acked.push(id);
    } catch (error) {
      errors++;
      firstError ||= String(error.message || error).slice(0, 200);
    }
  }
  process.stdout.write(JSON.stringify({ acked, errors, error: firstError }) + '\n');
} else {
  throw new Error(`unknown mode ${mode}`);
}
