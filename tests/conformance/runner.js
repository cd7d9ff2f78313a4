'use strict';
// The Node runner of tests/conformance/cases.json (tests/conformance/README.md): every step
// through the peer-registry package's API (which takes objects or JSON text alike).
// Usage: node runner.js cases.json (PEER_REGISTRY_LIB set, the addon built).
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const clockDir = fs.mkdtempSync(path.join(os.tmpdir(), 'peerreg-conformance-'));
const clockFile = path.join(clockDir, 'clock');
// Before the library first reads the time (docs/FORMAT.md, "Environment").
process.env.PEER_REGISTRY_TEST_CLOCK_FILE = clockFile;

const { Registry, PeerRegistryError } = require('../../bindings/node');

const KINDS = { tool: 'resolveTool', resource: 'resolveResource', prompt: 'resolvePrompt' };

function substitute(value) {
  if (value === '$pid') return process.pid;
  if (Array.isArray(value)) return value.map(substitute);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substitute(v)]));
  }
  return value;
}

function matches(expected, actual) {
  if (Array.isArray(expected)) {
    return Array.isArray(actual) && expected.length === actual.length &&
      expected.every((e, i) => matches(e, actual[i]));
  }
  if (expected !== null && typeof expected === 'object') {
    return actual !== null && typeof actual === 'object' && !Array.isArray(actual) &&
      Object.entries(expected).every(([k, v]) =>
        v === null ? actual[k] === undefined || actual[k] === null : k in actual && matches(v, actual[k]));
  }
  return expected === actual;
}

class Mismatch extends Error {}
function check(ok, what) {
  if (!ok) throw new Mismatch(what);
}
const show = (v) => JSON.stringify(v);

class Case {
  constructor(c) {
    this.dir = fs.mkdtempSync(path.join(clockDir, 'case-'));
    this.path = path.join(this.dir, 'servers.json');
    if ('file' in c) {
      const text = typeof c.file === 'string' ? c.file : JSON.stringify(substitute(c.file));
      fs.writeFileSync(this.path, text, { mode: 0o600, flag: 'wx' });
    }
    this.handles = { a: new Registry(this.path) };
    this.mark = 0;
  }

  close() {
    for (const handle of Object.values(this.handles)) handle.close();
  }

  run(step) {
    const reg = this.handles[step.handle ?? 'a'];
    switch (step.op) {
      case 'register': return reg.register('json' in step ? step.json : step.entry);
      case 'get': return reg.get(step.id);
      case 'list': return reg.listWithGeneration('filter_json' in step ? step.filter_json : step.filter);
      case 'resolve': return reg[KINDS[step.kind]](step.name);
      case 'set_health': return reg.setHealth(step.id, step.status, step.message);
      case 'heartbeat': return reg.heartbeat(step.id);
      case 'unregister': return reg.unregister(step.id);
      case 'prune': return reg.prune();
      case 'clock':
        fs.writeFileSync(`${clockFile}.tmp`, String(step.ms));
        fs.renameSync(`${clockFile}.tmp`, clockFile);
        return undefined;
      case 'open': this.handles[step.handle] = new Registry(this.path); return undefined;
      case 'close': return reg.close();
      case 'mark': this.mark = reg.listWithGeneration().generation; return undefined;
      case 'read_file': return fs.readFileSync(this.path, 'utf8');
      default: throw new Mismatch(`unknown op ${step.op}`);
    }
  }

  verify(step, result) {
    if ('expect' in step && step.op !== 'read_file') {
      check(matches(substitute(step.expect), result), `expected ${show(step.expect)}, got ${show(result)}`);
    }
    if (step.op === 'list') {
      if ('ids' in step) {
        const got = result.servers.map((s) => s.id);
        check(show(got) === show(step.ids), `expected ids ${show(step.ids)}, got ${show(got)}`);
      }
      if ('generation_since_mark' in step) {
        const delta = result.generation - this.mark;
        check(delta === step.generation_since_mark,
          `expected generation mark+${step.generation_since_mark}, got mark+${delta}`);
      }
    }
    if (step.op === 'resolve' && 'id' in step) check(result.id === step.id, `expected ${step.id}, got ${result.id}`);
    if (step.op === 'prune') check(result === step.removed, `expected ${step.removed} removed, got ${result}`);
    if (step.op === 'read_file') {
      if ('text' in step) check(result === step.text, `expected the file ${show(step.text)}, got ${show(result)}`);
      if ('expect' in step) {
        check(matches(substitute(step.expect), JSON.parse(result)), `expected file ${show(step.expect)}, got ${result}`);
      }
    }
  }
}

function runCase(c) {
  const outcomes = [];
  let failure = null;
  fs.rmSync(clockFile, { force: true });
  const runner = new Case(c);
  try {
    c.steps.forEach((step, i) => {
      try {
        let result;
        try {
          result = runner.run(step);
        } catch (e) {
          if (!(e instanceof PeerRegistryError)) throw e;
          outcomes.push(e.code);
          check(step.error === e.code, `expected ${step.error ?? 'success'}, got ${e.code}: ${e.message}`);
          for (const word of step.message_contains ?? []) {
            check(e.message.includes(word), `message ${show(e.message)} does not name ${show(word)}`);
          }
          return;
        }
        outcomes.push('ok');
        check(!('error' in step), `expected ${step.error}, got success`);
        runner.verify(step, result);
      } catch (e) {
        if (!(e instanceof Mismatch)) throw e;
        failure = failure ?? `step ${i + 1} (${step.op}): ${e.message}`;
      }
    });
  } finally {
    runner.close();
  }
  return { outcomes, failure };
}

const { cases } = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
let failed = 0;
for (const c of cases) {
  const { outcomes, failure } = runCase(c);
  if (failure !== null) failed += 1;
  console.log(`${c.name}: ${outcomes.join(' ')} => ${failure === null ? 'pass' : `FAIL ${failure}`}`);
}
console.log(`${cases.length} cases, ${failed} failed`);
fs.rmSync(clockDir, { recursive: true, force: true });
process.exitCode = failed ? 1 : 0;
