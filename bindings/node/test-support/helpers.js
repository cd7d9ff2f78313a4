'use strict';
// Shared by the tests: temporary registries, child processes, waiting for a condition.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');

const PACKAGE_DIR = path.resolve(__dirname, '..');
const REPO_DIR = path.resolve(PACKAGE_DIR, '..', '..');
const FIXTURES = __dirname;

/**
 * Removes a temporary directory. A registry handle still open on it (node:test runs after
 * hooks in the order they were added, so a test's own close() comes later) restores its lease
 * entries when servers.json disappears — the library's anti-entropy — and may recreate the
 * file while it is being removed: then try again shortly, and a last time at exit.
 */
const leftovers = new Set();
function removeDir(dir) {
  try {
    fs.chmodSync(dir, 0o700);
  } catch {}
  try {
    fs.rmSync(dir, { recursive: true, force: true });
    leftovers.delete(dir);
    return true;
  } catch {
    leftovers.add(dir);
    return false;
  }
}
function removeDirSoon(dir, attempt = 0) {
  if (removeDir(dir) || attempt >= 20) return;
  setTimeout(() => removeDirSoon(dir, attempt + 1), 25).unref();
}
process.on('exit', () => {
  for (const dir of leftovers) removeDir(dir);
});

/** A fresh registry path (<tmp>/peerreg-node-XXXX/servers.json), removed after the test. */
function tempRegistry(t, prefix = 'peerreg-node-') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  if (t) t.after(() => removeDirSoon(dir));
  return { dir, file: path.join(dir, 'servers.json') };
}

/** Polls `check` (which returns a truthy value when done) until it does or time runs out. */
async function waitFor(check, { timeout = 5000, interval = 10, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}

/**
 * Spawns `node script args...`; resolves once the child printed a line starting with
 * `readyPrefix` (the rest of that line is returned as `ready`). The child is killed at the end
 * of the test if still running.
 */
function spawnNode(t, script, args = [], { env = {}, readyPrefix = 'READY', timeout = 10000 } = {}) {
  const child = spawn(process.execPath, [script, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`child ${script} not ready after ${timeout} ms; stderr: ${stderr}`));
    }, timeout);
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
      const line = stdout.split('\n').find((l) => l.startsWith(readyPrefix));
      if (line !== undefined) {
        clearTimeout(timer);
        resolve(line.slice(readyPrefix.length).trim());
      }
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`child ${script} exited (${code ?? signal}) before ready; stderr: ${stderr}`));
    });
  });
  ready.catch(() => {});
  if (t) {
    t.after(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
  }
  return { child, ready, exited };
}

/** Runs `node -e code` (or a script) to completion; resolves {code, signal, stdout, stderr, ms}. */
function runNode(args, { env, cwd, timeout = 20000 } = {}) {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(process.execPath, args, {
      env: env ?? process.env,
      cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`node ${args.join(' ')} still running after ${timeout} ms; stderr: ${stderr}`));
    }, timeout);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      resolve({ code, signal, stdout, stderr, ms });
    });
  });
}

/** Resolves with the next `name` event of `emitter`, or rejects after `timeout` ms. */
function nextEvent(emitter, name, { timeout = 5000, filter = () => true } = {}) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(name, listener);
      reject(new Error(`no '${name}' event within ${timeout} ms`));
    }, timeout);
    function listener(...args) {
      if (!filter(...args)) return;
      clearTimeout(timer);
      emitter.off(name, listener);
      resolve(args.length > 1 ? args : args[0]);
    }
    emitter.on(name, listener);
  });
}

/** Asserts that fn throws a PeerRegistryError with `code` (e.g. 'PEERREG_ENOTFOUND'). */
function throwsCode(assert, fn, code, messagePattern) {
  const peerRegistry = require(PACKAGE_DIR);
  let caught;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught, `expected ${code}, nothing was thrown`);
  assert.ok(
    caught instanceof peerRegistry.PeerRegistryError,
    `expected a PeerRegistryError, got ${caught && caught.stack}`,
  );
  assert.equal(caught.code, code, `wrong code; message: ${caught.message}`);
  assert.equal(caught.errno, peerRegistry.codes[code.replace('PEERREG_', '')]);
  assert.ok(caught instanceof Error);
  assert.equal(typeof caught.message, 'string');
  assert.ok(caught.message.length > 0, 'empty message');
  if (messagePattern) assert.match(caught.message, messagePattern);
  return caught;
}

module.exports = {
  PACKAGE_DIR,
  REPO_DIR,
  FIXTURES,
  tempRegistry,
  waitFor,
  spawnNode,
  runNode,
  nextEvent,
  throwsCode,
};
