'use strict';
// Where the library is found: explicit path argument, then $PEER_REGISTRY_LIB, then the
// repository's build/lib/libpeerregistry.so, then the system loader (libpeerregistry.so.0).
// Loading happens once per process, so every case runs in a child process.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const peerRegistry = require('..');
const { PACKAGE_DIR, REPO_DIR, tempRegistry, runNode } = require('../test-support/helpers');

const REPO_LIBRARY = path.join(REPO_DIR, 'build', 'lib', 'libpeerregistry.so');

/** Env without any variable that would influence the lookup. */
function cleanEnv(extra = {}) {
  const env = { ...process.env };
  delete env.PEER_REGISTRY_LIB;
  delete env.LD_LIBRARY_PATH;
  return { ...env, ...extra };
}

/** Runs `code` in a child with `pr` bound to the package at `packageDir`; returns its JSON. */
async function inChild(code, { env = cleanEnv(), packageDir = PACKAGE_DIR } = {}) {
  const script = `
    const pr = require(${JSON.stringify(packageDir)});
    const out = (() => { ${code} })();
    process.stdout.write(JSON.stringify(out));
  `;
  const result = await runNode(['-e', script], { env });
  assert.equal(result.code, 0, `child failed: ${result.stderr}`);
  return { value: JSON.parse(result.stdout), stderr: result.stderr };
}

/** Copies the real library under a new name in a temp dir. */
function libraryCopy(t, name = 'libpeerregistry-copy.so') {
  const { dir } = tempRegistry(t, 'peerreg-lib-');
  const copy = path.join(dir, name);
  fs.copyFileSync(fs.realpathSync(REPO_LIBRARY), copy);
  return copy;
}

/** The package (JS + built addon) copied where ../../build/lib does not exist. */
function packageCopy(t) {
  const { dir } = tempRegistry(t, 'peerreg-pkg-');
  const target = path.join(dir, 'a', 'b', 'peer-registry');
  fs.mkdirSync(path.join(target, 'build'), { recursive: true });
  for (const file of ['package.json', 'index.js', 'index.mjs', 'index.d.ts']) {
    fs.copyFileSync(path.join(PACKAGE_DIR, file), path.join(target, file));
  }
  fs.copyFileSync(
    path.join(PACKAGE_DIR, 'build', 'peer_registry.node'),
    path.join(target, 'build', 'peer_registry.node'),
  );
  return target;
}

test('the library is not loaded by require(); open() loads it', async () => {
  const { value } = await inChild(`
    const before = pr.libraryPath();
    const dir = require('fs').mkdtempSync(require('os').tmpdir() + '/peerreg-node-');
    const r = pr.open(dir + '/servers.json');
    r.close();
    require('fs').rmSync(dir, { recursive: true });
    return { before, after: pr.libraryPath() };
  `);
  assert.equal(value.before, null);
  assert.equal(value.after, fs.realpathSync(REPO_LIBRARY));
});

test('default: the repository build', async () => {
  const { value } = await inChild('return pr.loadLibrary();');
  assert.equal(value, fs.realpathSync(REPO_LIBRARY));
});

test('PEER_REGISTRY_LIB beats the repository build', async (t) => {
  const copy = libraryCopy(t);
  const { value } = await inChild('return pr.loadLibrary();', {
    env: cleanEnv({ PEER_REGISTRY_LIB: copy }),
  });
  assert.equal(value, copy);
});

test('an explicit path beats PEER_REGISTRY_LIB, through loadLibrary() and open({lib})', async (t) => {
  const fromEnv = libraryCopy(t, 'libpeerregistry-env.so');
  const explicit = libraryCopy(t, 'libpeerregistry-explicit.so');
  const env = cleanEnv({ PEER_REGISTRY_LIB: fromEnv });
  assert.equal((await inChild(`return pr.loadLibrary(${JSON.stringify(explicit)});`, { env })).value,
    explicit);
  const { file } = tempRegistry(t);
  const { value } = await inChild(
    `const r = pr.open({ path: ${JSON.stringify(file)}, lib: ${JSON.stringify(explicit)} });
     r.register({ id: 'loaded-explicitly', url: 'http://127.0.0.1:1/mcp', liveness: 'none' });
     r.close();
     return pr.libraryPath();`,
    { env },
  );
  assert.equal(value, explicit);
  const registry = peerRegistry.open(file);
  t.after(() => registry.close());
  assert.equal(registry.get('loaded-explicitly').id, 'loaded-explicitly');
});

test('the system loader is the last resort (libpeerregistry.so.0 on LD_LIBRARY_PATH)', async (t) => {
  const copy = libraryCopy(t, 'libpeerregistry.so.0');
  const pkg = packageCopy(t);
  const { value } = await inChild('return pr.loadLibrary();', {
    packageDir: pkg,
    env: cleanEnv({ LD_LIBRARY_PATH: path.dirname(copy) }),
  });
  assert.equal(value, copy);
});

test('a configured place that fails is reported as a warning, and the search goes on', async (t) => {
  const missing = path.join(tempRegistry(t).dir, 'no-such-lib.so');
  const { value, stderr } = await inChild('return pr.loadLibrary();', {
    env: cleanEnv({ PEER_REGISTRY_LIB: missing }),
  });
  assert.equal(value, fs.realpathSync(REPO_LIBRARY));
  assert.match(stderr, /PEERREG_LIBRARY_FALLBACK/);
  assert.ok(stderr.includes(missing), stderr);
});

test('not found: the error names every place tried and why', async (t) => {
  const pkg = packageCopy(t);
  const { dir } = tempRegistry(t);
  const explicit = path.join(dir, 'explicit-missing.so');
  const fromEnv = path.join(dir, 'env-missing.so');
  const notElf = path.join(dir, 'not-a-library.so');
  fs.writeFileSync(notElf, 'this is not an ELF file');
  const { value } = await inChild(
    `try { pr.open({ path: ${JSON.stringify(path.join(dir, 'servers.json'))},
                     lib: ${JSON.stringify(explicit)} }); return null; }
     catch (e) { return { code: e.code, message: e.message, tried: e.tried }; }`,
    { packageDir: pkg, env: cleanEnv({ PEER_REGISTRY_LIB: fromEnv }) },
  );
  assert.equal(value.code, 'ERR_PEERREG_LIBRARY_NOT_FOUND');
  const repoCandidate = path.resolve(pkg, '..', '..', 'build', 'lib', 'libpeerregistry.so');
  const expected = [
    ['explicit path argument', explicit],
    ['PEER_REGISTRY_LIB', fromEnv],
    ['repository build', repoCandidate],
    ['system loader', 'libpeerregistry.so.0'],
  ];
  assert.deepEqual(value.tried.map((c) => [c.place, c.path]), expected);
  let lastIndex = -1;
  for (const [place, where] of expected) {
    const index = value.message.indexOf(`${place}: ${where}`);
    assert.ok(index > lastIndex, `message lists ${place} (${where}) in order:\n${value.message}`);
    lastIndex = index;
  }
  assert.match(value.message, /No such file or directory/);
  assert.ok(!fs.existsSync(path.join(dir, 'servers.json')), 'nothing was created');

  const notElfResult = await inChild(
    `try { pr.loadLibrary(${JSON.stringify(notElf)}); return null; }
     catch (e) { return e.message; }`,
    { packageDir: pkg },
  );
  assert.match(notElfResult.value, /not-a-library\.so.*(invalid ELF header|file too short)/);
});

test('a file without the peerreg_* symbols is refused, naming the missing symbol', async (t) => {
  const pkg = packageCopy(t);
  // Any real shared library that is not libpeerregistry will do: the addon itself.
  const { value } = await inChild(
    `try { pr.loadLibrary(${JSON.stringify(path.join(pkg, 'build', 'peer_registry.node'))});
           return null; }
     catch (e) { return e.message; }`,
    { packageDir: pkg },
  );
  assert.match(value, /symbol peerreg_version not found/);
});

test('another library file cannot be loaded over the one in use', async (t) => {
  const copy = libraryCopy(t);
  const { value } = await inChild(`
    const first = pr.loadLibrary();
    const again = pr.loadLibrary(first);
    let conflict = null;
    try { pr.loadLibrary(${JSON.stringify(copy)}); } catch (e) { conflict = e.code; }
    return { first, again, conflict };
  `);
  assert.equal(value.first, fs.realpathSync(REPO_LIBRARY));
  assert.equal(value.again, value.first);
  assert.equal(value.conflict, 'ERR_PEERREG_LIBRARY_CONFLICT');
});

test('libraryCandidates() lists the lookup order', (t) => {
  const saved = process.env.PEER_REGISTRY_LIB;
  process.env.PEER_REGISTRY_LIB = '/env/lib.so';
  t.after(() => {
    if (saved === undefined) delete process.env.PEER_REGISTRY_LIB;
    else process.env.PEER_REGISTRY_LIB = saved;
  });
  assert.deepEqual(
    peerRegistry.libraryCandidates('/explicit/lib.so').map((c) => [c.place, c.path]),
    [
      ['explicit path argument', '/explicit/lib.so'],
      ['PEER_REGISTRY_LIB', '/env/lib.so'],
      ['repository build', REPO_LIBRARY],
      ['system loader', 'libpeerregistry.so.0'],
    ],
  );
});
