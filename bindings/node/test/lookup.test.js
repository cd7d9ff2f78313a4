'use strict';
// Where the library is found: the explicit path argument, else $PEER_REGISTRY_LIB, else the
// copy the package ships (prebuilds/<platform>-<arch>/libpeerregistry.so.0), else the system
// loader (libpeerregistry.so.0). A place given (or, for the package copy, present) that does
// not load is an error, never a reason to load another build. Loading happens once per
// process, so every case runs in a child process. Nothing guesses the repository: the
// repository's build is used only when PEER_REGISTRY_LIB names it (run-tests.sh does).

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const peerRegistry = require('..');
const { PACKAGE_DIR, REPO_DIR, tempRegistry, runNode } = require('../test-support/helpers');

const REPO_LIBRARY = path.join(REPO_DIR, 'build', 'lib', 'libpeerregistry.so');
const PLATFORM = `${process.platform}-${process.arch}`;

/** Env without any variable that would influence the lookup. */
function cleanEnv(extra = {}) {
  const env = { ...process.env };
  delete env.PEER_REGISTRY_LIB;
  delete env.LD_LIBRARY_PATH;
  return { ...env, ...extra };
}

/** The env the other tests run with: the repository's build named explicitly. */
function repoEnv() {
  return cleanEnv({ PEER_REGISTRY_LIB: REPO_LIBRARY });
}

/** Runs `code` in a child with `pr` bound to the package at `packageDir`; returns its JSON. */
async function inChild(code, { env = repoEnv(), packageDir = PACKAGE_DIR } = {}) {
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

/**
 * The package laid out as npm installs it, outside the repository: the JS, the addon as the
 * prebuilt one for this platform and, with `withLibrary`, the library copy it ships beside it.
 */
function packageCopy(t, { withLibrary = false } = {}) {
  const { dir } = tempRegistry(t, 'peerreg-pkg-');
  const target = path.join(dir, 'node_modules', 'peer-registry');
  const platformDir = path.join(target, 'prebuilds', PLATFORM);
  fs.mkdirSync(platformDir, { recursive: true });
  for (const file of ['package.json', 'index.js', 'index.mjs', 'index.d.ts', 'promises.js']) {
    fs.copyFileSync(path.join(PACKAGE_DIR, file), path.join(target, file));
  }
  fs.copyFileSync(
    path.join(PACKAGE_DIR, 'build', 'peer_registry.node'),
    path.join(platformDir, 'peer_registry.node'),
  );
  if (withLibrary) {
    fs.copyFileSync(fs.realpathSync(REPO_LIBRARY), path.join(platformDir, 'libpeerregistry.so.0'));
  }
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

test('installed package, nothing set: the library it ships beside its addon', async (t) => {
  const pkg = packageCopy(t, { withLibrary: true });
  const { value } = await inChild('return pr.loadLibrary();', { packageDir: pkg, env: cleanEnv() });
  assert.equal(value, fs.realpathSync(path.join(pkg, 'prebuilds', PLATFORM, 'libpeerregistry.so.0')));
});

test('the package copy works: register, list, unregister from an installed layout', async (t) => {
  const pkg = packageCopy(t, { withLibrary: true });
  const { file } = tempRegistry(t);
  const { value } = await inChild(
    `const r = pr.open(${JSON.stringify(file)});
     r.register({ id: 'from-package-copy', url: 'http://127.0.0.1:1/mcp' });
     const ids = r.list().map((e) => e.id);
     r.unregister('from-package-copy');
     const after = r.list().length;
     r.close();
     return { ids, after };`,
    { packageDir: pkg, env: cleanEnv() },
  );
  assert.deepEqual(value, { ids: ['from-package-copy'], after: 0 });
});

test('PEER_REGISTRY_LIB beats the package copy', async (t) => {
  const copy = libraryCopy(t);
  const pkg = packageCopy(t, { withLibrary: true });
  const { value } = await inChild('return pr.loadLibrary();', {
    packageDir: pkg,
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

test('no repository path is guessed: the package inside the repository, nothing set, is not found',
  async () => {
    // bindings/node sits two levels below the repository's build/lib: the old lookup loaded
    // that; now only PEER_REGISTRY_LIB, the package copy or the system loader count.
    const error = await errorInChild('pr.loadLibrary()', { env: cleanEnv() });
    assert.equal(error.code, 'ERR_PEERREG_LIBRARY_NOT_FOUND');
    assert.ok(!error.message.includes(path.join(REPO_DIR, 'build')), error.message);
  });

/** The error a child got from `call` (a JS expression that should throw). */
async function errorInChild(call, options) {
  const { value } = await inChild(
    `try { ${call}; return null; }
     catch (e) { return { code: e.code, message: e.message, tried: e.tried }; }`,
    options,
  );
  assert.ok(value, 'expected an error');
  return value;
}

test('not found: the error names every place tried, in order, and why', async (t) => {
  const pkg = packageCopy(t);
  const packageLibrary = path.join(pkg, 'prebuilds', PLATFORM, 'libpeerregistry.so.0');
  const error = await errorInChild('pr.loadLibrary()', { packageDir: pkg, env: cleanEnv() });
  assert.equal(error.code, 'ERR_PEERREG_LIBRARY_NOT_FOUND');
  assert.deepEqual(error.tried.map((a) => [a.place, a.path]), [
    ['explicit path argument', null],
    ['PEER_REGISTRY_LIB', null],
    ['package copy', packageLibrary],
    ['system loader', 'libpeerregistry.so.0'],
  ]);
  const lines = [
    'explicit path argument: none given',
    'PEER_REGISTRY_LIB: not set',
    `package copy: ${packageLibrary}: does not exist`,
    'system loader: libpeerregistry.so.0: ',
  ];
  let lastIndex = -1;
  for (const line of lines) {
    const index = error.message.indexOf(line);
    assert.ok(index > lastIndex, `message has "${line}" in order:\n${error.message}`);
    lastIndex = index;
  }
  assert.match(error.message, /libpeerregistry\.so\.0: cannot open shared object file/);
});

test('an explicit path that does not load is an error, even with a working library elsewhere',
  async (t) => {
    const { dir } = tempRegistry(t);
    const explicit = path.join(dir, 'explicit-missing.so');
    const registryFile = path.join(dir, 'servers.json');
    const error = await errorInChild(
      `pr.open({ path: ${JSON.stringify(registryFile)}, lib: ${JSON.stringify(explicit)} })`,
      { env: cleanEnv({ PEER_REGISTRY_LIB: fs.realpathSync(REPO_LIBRARY) }) },
    );
    assert.equal(error.code, 'ERR_PEERREG_LIBRARY_NOT_FOUND');
    assert.deepEqual(error.tried.map((a) => a.place), ['explicit path argument']);
    assert.ok(error.message.includes(`explicit path argument: ${explicit}: cannot open`),
      error.message);
    assert.ok(!fs.existsSync(registryFile), 'nothing was opened');
  });

test('a $PEER_REGISTRY_LIB that does not load is an error, not a fall-through', async (t) => {
  const { dir } = tempRegistry(t);
  const notElf = path.join(dir, 'not-a-library.so');
  fs.writeFileSync(notElf, 'this is not an ELF file');
  const pkg = packageCopy(t, { withLibrary: true });
  const error = await errorInChild('pr.loadLibrary()', {
    packageDir: pkg,
    env: cleanEnv({ PEER_REGISTRY_LIB: notElf }),
  });
  assert.equal(error.code, 'ERR_PEERREG_LIBRARY_NOT_FOUND');
  assert.deepEqual(error.tried.map((a) => [a.place, a.path]), [
    ['explicit path argument', null],
    ['PEER_REGISTRY_LIB', notElf],
  ]);
  assert.match(error.message,
    /PEER_REGISTRY_LIB: .*not-a-library\.so: (invalid ELF header|file too short)/);
  assert.ok(!error.message.includes('package copy'), error.message);
});

test('a package copy that exists but does not load is an error, not a fall-through',
  async (t) => {
    const pkg = packageCopy(t);
    const packageLibrary = path.join(pkg, 'prebuilds', PLATFORM, 'libpeerregistry.so.0');
    fs.writeFileSync(packageLibrary, 'a broken copy');
    // A working libpeerregistry.so.0 for the system loader, which must not be used.
    const systemCopy = libraryCopy(t, 'libpeerregistry.so.0');
    const error = await errorInChild('pr.loadLibrary()', {
      packageDir: pkg,
      env: cleanEnv({ LD_LIBRARY_PATH: path.dirname(systemCopy) }),
    });
    assert.equal(error.code, 'ERR_PEERREG_LIBRARY_NOT_FOUND');
    assert.deepEqual(error.tried.map((a) => a.place), [
      'explicit path argument',
      'PEER_REGISTRY_LIB',
      'package copy',
    ]);
    assert.ok(error.message.includes(`package copy: ${packageLibrary}: `), error.message);
  });

test('a file without the peerreg_* symbols is refused, naming the missing symbol', async (t) => {
  const pkg = packageCopy(t);
  // Any real shared library that is not libpeerregistry will do: the addon itself.
  const { value } = await inChild(
    `try {
       pr.loadLibrary(${JSON.stringify(path.join(pkg, 'prebuilds', PLATFORM, 'peer_registry.node'))});
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

/**
 * A stand-in library exporting every peerreg_* symbol of 0.1.0 (each returning 0, i.e. PEERREG_OK
 * with nothing handed out) and none of 0.2.0, with the given version number; built in `dir` with
 * the same compiler as the addon.
 */
function fakeLibrary(dir, versionNumber, name) {
  const symbols = [
    'open', 'close', 'register', 'unregister', 'get', 'list', 'resolve', 'set_health',
    'heartbeat', 'prune', 'probe', 'watch_open', 'watch_fd', 'watch_next', 'watch_close', 'free',
    'error_code', 'error_message', 'error_free', 'errstr',
  ];
  const source = path.join(dir, `${name}.c`);
  fs.writeFileSync(source, [
    `const char *peerreg_version(void) { return "fake"; }`,
    `int peerreg_version_number(void) { return ${versionNumber}; }`,
    ...symbols.map((s) => `int peerreg_${s}(void) { return 0; }`),
  ].join('\n'));
  const library = path.join(dir, `${name}.so`);
  const cc = spawnSync(process.env.CC || 'cc', ['-shared', '-fPIC', source, '-o', library]);
  assert.equal(cc.status, 0, String(cc.stderr));
  return library;
}

test('a library of another major version, or an older minor, is refused', async (t) => {
  const { dir } = tempRegistry(t, 'peerreg-fake-');
  const fake = (versionNumber, name) => fakeLibrary(dir, versionNumber, name);
  const header = peerRegistry.HEADER_VERSION_NUMBER;
  const nextMajor = fake((Math.floor(header / 1000000) + 1) * 1000000, 'next-major');
  const error = await errorInChild(`pr.loadLibrary(${JSON.stringify(nextMajor)})`);
  assert.equal(error.code, 'ERR_PEERREG_LIBRARY_NOT_FOUND');
  assert.match(error.message, /not compatible with this binding/);
  if (header % 1000000 >= 1000) {
    const olderMinor = fake(header - 1000, 'older-minor');
    const older = await errorInChild(`pr.loadLibrary(${JSON.stringify(olderMinor)})`);
    assert.match(older.message, /not compatible with this binding/);
  }
  const newerMinor = fake(header + 1000, 'newer-minor');
  const { value } = await inChild(`return pr.loadLibrary(${JSON.stringify(newerMinor)});`);
  assert.equal(value, newerMinor, 'a later minor of the same major is accepted');
});

test('a library without the 0.2.0 functions still loads; only cluster-scope resolve and a filtered watch need them',
  async (t) => {
    // The 0.2.0 functions (peerreg_resolve_scoped, peerreg_watch_open_filtered) are looked up
    // optionally. The stand-in reports the header's version (an older one is refused above).
    const { dir, file } = tempRegistry(t, 'peerreg-fake-');
    const library = fakeLibrary(dir, peerRegistry.HEADER_VERSION_NUMBER, 'without-cluster');
    const { value } = await inChild(`
      const r = pr.open({ path: ${JSON.stringify(file)}, lib: ${JSON.stringify(library)} });
      const outcome = (f) => {
        try { return { value: f() }; }
        catch (e) { return { name: e.name, code: e.code, message: e.message }; }
      };
      return {
        local: outcome(() => r.resolveTool('t')),
        localExplicit: outcome(() => r.resolveTool('t', { scope: 'local' })),
        cluster: outcome(() => r.resolveTool('t', { scope: 'cluster' })),
        prompt: outcome(() => r.resolvePrompt('p', { scope: 'cluster' })),
        watch: outcome(() => r.watch({ scope: 'cluster' })),
        list: outcome(() => r.list({ scope: 'cluster' })),
      };
    `);
    // peerreg_resolve was reached: the stand-in answers OK with no entry, which is null here.
    assert.deepEqual(value.local, { value: null });
    assert.deepEqual(value.localExplicit, { value: null });
    for (const [what, symbol] of [
      ['cluster', 'peerreg_resolve_scoped'],
      ['prompt', 'peerreg_resolve_scoped'],
      ['watch', 'peerreg_watch_open_filtered'],
    ]) {
      assert.deepEqual(value[what], {
        name: 'PeerRegistryError',
        code: 'PEERREG_EINVAL',
        message: `${symbol} needs libpeerregistry >= 0.2.0; the library loaded from ${library} is fake`,
      }, what);
    }
    assert.equal(value.list.code, undefined, 'peerreg_list is 0.1.0; the library judges the filter');
  });

test('a package without an addon for this platform says so, and how to build one', async (t) => {
  const pkg = packageCopy(t, { withLibrary: true });
  fs.rmSync(path.join(pkg, 'prebuilds', PLATFORM, 'peer_registry.node'));
  const script = `try { require(${JSON.stringify(pkg)}); process.stdout.write('null'); }
    catch (e) { process.stdout.write(JSON.stringify({ code: e.code, message: e.message })); }`;
  const result = await runNode(['-e', script], { env: cleanEnv() });
  assert.equal(result.code, 0, result.stderr);
  const error = JSON.parse(result.stdout);
  assert.equal(error.code, 'ERR_PEERREG_ADDON');
  assert.match(error.message, new RegExp(`no native addon for ${PLATFORM}`));
  assert.ok(error.message.includes(path.join(pkg, 'build.sh')), error.message);
});
