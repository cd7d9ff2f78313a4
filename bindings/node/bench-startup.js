#!/usr/bin/env node
'use strict';
// What peer-registry adds to a Node process's start: `node -e 0` side by side with
// `require('peer-registry')` and with require + the first call (open() + list(), which loads
// the library) and with require of an empty N-API addon (what loading any native addon costs),
// each in fresh processes, alternated round by round so that machine load hits all alike.
// Reports medians of wall time and of each process's own CPU time (which machine load does not
// inflate), the differences to the bare start, and where the time of the first call goes
// (require, dlopen of the library, open, the first list).
//
//   node bindings/node/bench-startup.js [PACKAGE | TARBALL.tgz] [ROUNDS]
//
// PACKAGE defaults to this directory (then PEER_REGISTRY_LIB must name the library); a .tgz is
// first installed into a temporary npm project, so the package is measured as users get it.

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const target = process.argv[2] || __dirname;
const rounds = Number(process.argv[3]) || 30;
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'peerreg-startup-'));
process.on('exit', () => fs.rmSync(work, { recursive: true, force: true }));

let pkg = path.resolve(target);
if (target.endsWith('.tgz')) {
  const project = path.join(work, 'project');
  fs.mkdirSync(project);
  const env = { ...process.env, HOME: path.join(work, 'home') };
  for (const args of [['init', '-y'], ['install', '--offline', '--no-audit', '--no-fund', pkg]]) {
    const r = spawnSync('npm', args, { cwd: project, env, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`npm ${args.join(' ')} failed: ${r.stderr}`);
  }
  pkg = path.join(project, 'node_modules', 'peer-registry');
}

// A registry with a few entries, written once (static entries outlive the writer).
const registryDir = path.join(work, 'registry');
const registryFile = path.join(registryDir, 'servers.json');
const setup = `const r = require(${JSON.stringify(pkg)}).open(${JSON.stringify(registryFile)});
  for (let i = 0; i < 5; i++) r.register({ id: 's' + i, url: 'http://127.0.0.1:' + (9000 + i) + '/mcp', liveness: 'none' });
  r.close();`;
const prepared = spawnSync(process.execPath, ['-e', setup], { encoding: 'utf8' });
if (prepared.status !== 0) throw new Error(`setting up the registry failed: ${prepared.stderr}`);

// Timed with process.hrtime (built in), not perf_hooks: loading a module to time would add to
// what is timed.
const firstCall = `const now = () => Number(process.hrtime.bigint()) / 1e6;
  const t0 = now(); const pr = require(${JSON.stringify(pkg)}); const t1 = now();
  pr.loadLibrary(); const t2 = now();
  const r = pr.open(${JSON.stringify(registryFile)}); const t3 = now();
  const n = r.list().length; const t4 = now();
  if (n !== 5) process.exit(3);
  process.stdout.write(JSON.stringify([t1 - t0, t2 - t1, t3 - t2, t4 - t3]));`;
const variants = {
  'node -e 0': '0',
  "require('peer-registry')": `require(${JSON.stringify(pkg)})`,
  'require + open() + list()': firstCall,
};

// The floor under any native addon: an empty N-API module, built here with the same compiler
// and headers as build.sh. Loading the first addon of a process costs Node itself this much.
const minimal = path.join(work, 'minimal.node');
const source = path.join(work, 'minimal.c');
fs.writeFileSync(source, '#include <node_api.h>\nNAPI_MODULE_INIT() { return exports; }\n');
const nodeInclude = process.env.NODE_INCLUDE ||
  [path.join(path.dirname(path.dirname(fs.realpathSync(process.execPath))), 'include', 'node'), '/usr/include/node']
    .find((dir) => fs.existsSync(path.join(dir, 'node_api.h')));
const cc = spawnSync(process.env.CC || 'cc', ['-O2', '-fPIC', '-shared', `-I${nodeInclude}`, source, '-o', minimal],
  { encoding: 'utf8' });
if (cc.status === 0) {
  variants['require(empty N-API addon)'] = `const t0 = process.hrtime.bigint(); require(${JSON.stringify(minimal)});
    process.stdout.write(String(Number(process.hrtime.bigint() - t0) / 1e6));`;
} else {
  console.log(`(no empty-addon floor: cc failed: ${cc.stderr || cc.error})`);
}

// Each child ends by printing, after its own output and a newline, the CPU time (user + system)
// it used since it started: unlike wall time, that does not grow when other processes compete
// for the CPU.
const CPU_SUFFIX = ";{ const u = process.cpuUsage(); process.stdout.write('\\n' + (u.user + u.system) / 1000); }";

function wallMs(code) {
  const start = process.hrtime.bigint();
  const r = spawnSync(process.execPath, ['-e', code + CPU_SUFFIX], { encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (r.status !== 0) throw new Error(`node -e failed (${r.status}): ${r.stderr}`);
  const lines = r.stdout.split('\n');
  return { ms, cpu: Number(lines.pop()), stdout: lines.join('\n') };
}

const samples = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
const cpuSamples = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
const parts = [];
const emptyAddon = [];
for (const code of Object.values(variants)) wallMs(code); // warm the page cache
for (let i = 0; i < rounds; i++) {
  for (const [name, code] of Object.entries(variants)) {
    const { ms, cpu, stdout } = wallMs(code);
    samples[name].push(ms);
    cpuSamples[name].push(cpu);
    if (code === firstCall) parts.push(JSON.parse(stdout));
    if (name === 'require(empty N-API addon)') emptyAddon.push(Number(stdout));
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
console.log(`package: ${pkg}`);
for (const [what, table] of [['wall time', samples], ['CPU time (user + system) of the process', cpuSamples]]) {
  const base = median(table['node -e 0']);
  console.log(`${rounds} rounds, fresh process each, medians of ${what}:`);
  for (const [name, xs] of Object.entries(table)) {
    const m = median(xs);
    const delta = m - base;
    const extra = name === 'node -e 0' ? '' : `  (${delta >= 0 ? '+' : ''}${delta.toFixed(2)} ms, ${(m / base).toFixed(2)}x)`;
    console.log(`  ${name.padEnd(28)} ${m.toFixed(2)} ms${extra}`);
  }
}
const names = ['require (JS + addon)', 'loadLibrary (dlopen)', 'open()', 'first list()'];
console.log('inside the first-call process, medians:');
names.forEach((name, i) => console.log(`  ${name.padEnd(28)} ${median(parts.map((p) => p[i])).toFixed(2)} ms`));
if (emptyAddon.length) {
  console.log(`  (require of an empty N-API addon, in its own process: ${median(emptyAddon).toFixed(2)} ms)`);
}
