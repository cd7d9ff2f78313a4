'use strict';
// A handle the program forgot to close is closed when garbage collected: its lease entries
// are unregistered, its watch stops holding the process.

const test = require('node:test');
const assert = require('node:assert/strict');

const { PACKAGE_DIR, tempRegistry, runNode } = require('../test-support/helpers');

test('an unreachable registry is closed by its finalizer (its lease entry goes)', async (t) => {
  const { file } = tempRegistry(t);
  const script = `
    const pr = require(${JSON.stringify(PACKAGE_DIR)});
    const observer = pr.open(process.argv[1]);
    (() => {
      const forgotten = pr.open(process.argv[1]);
      forgotten.register({ id: 'forgotten', url: 'http://127.0.0.1:1/mcp' });
    })();
    if (observer.get('forgotten').id !== 'forgotten') process.exit(2);
    (async () => {
      for (let i = 0; i < 100; i++) {
        global.gc();
        await new Promise((resolve) => setImmediate(resolve));
        try { observer.get('forgotten'); } catch (e) {
          if (e.code === 'PEERREG_ENOTFOUND') { console.log('finalized'); observer.close(); return; }
          throw e;
        }
      }
      console.log('still registered');
      process.exit(3);
    })();
  `;
  const result = await runNode(['--expose-gc', '-e', script, file]);
  assert.equal(result.code, 0, result.stderr + result.stdout);
  assert.match(result.stdout, /finalized/);
});

test('process exit with registries and watches still open is clean', async (t) => {
  const { file } = tempRegistry(t);
  const script = `
    const pr = require(${JSON.stringify(PACKAGE_DIR)});
    const r = pr.open(process.argv[1]);
    r.register({ id: 'left-open', url: 'http://127.0.0.1:1/mcp' });
    r.watch();
    r.watch().on('change', () => {});
    setTimeout(() => process.exit(0), 50);
  `;
  const result = await runNode(['-e', script, file]);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.signal, null);
  assert.equal(result.stderr, '');
});
