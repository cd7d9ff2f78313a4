#!/usr/bin/env bash
# The npm tarball installed as a user would, outside this repository: a fresh npm project in a
# temp dir, HOME a temp dir too, `npm install /path/peer-registry-<ver>.tgz` (offline: the
# tarball has no dependencies), then CommonJS and ESM programs in that project run
# register -> list -> watch event -> unregister, the promise API included, with no
# PEER_REGISTRY_LIB: the library must be the one inside the installed package. Then the same
# tarball without its prebuilt parts: npm's install step builds the addon from the tarball's
# own source and header.
# Run from the repository root after `make lib dist-node`. Exits non-zero on any failure.
set -euo pipefail
repo="$(pwd)"
version="$(cat "$repo/VERSION")"
tarball="$repo/build/dist/peer-registry-$version.tgz"
if [[ ! -f "$tarball" ]]; then
    echo "test_node.sh: $tarball is missing; run from the repository root after make lib dist-node" >&2
    exit 1
fi
for tool in node npm; do
    command -v "$tool" >/dev/null || { echo "test_node.sh: $tool is missing: apt-get install -y nodejs npm" >&2; exit 1; }
done

work="$(mktemp -d /tmp/peer-registry-install-node.XXXXXX)"
trap 'rm -rf "$work"' EXIT
case "$work/" in "$repo"/*) echo "test_node.sh: temp dir $work is inside the repository" >&2; exit 1;; esac
mkdir -p "$work/home" "$work/project"
export HOME="$work/home"
unset PEER_REGISTRY_LIB PEER_REGISTRY_PATH LD_LIBRARY_PATH NODE_PATH
export npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false

cd "$work/project"
npm init -y >/dev/null
npm install --offline --no-audit --no-fund "$tarball" >/dev/null
echo "test_node.sh: installed $(basename "$tarball") into $work/project"

cat > check.cjs <<'JS'
'use strict';
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const peerRegistry = require('peer-registry');

const registryFile = path.join(process.env.HOME, '.peer-plan', 'servers.json');
const registry = peerRegistry.open(); // the default: ~/.peer-plan/servers.json under this HOME
const installed = fs.realpathSync(path.join(__dirname, 'node_modules', 'peer-registry'));
if (process.env.EXPECT_LIBRARY) {
  assert.equal(peerRegistry.libraryPath(), process.env.EXPECT_LIBRARY);
} else {
  assert.ok(peerRegistry.libraryPath().startsWith(installed + path.sep),
    `library loaded from ${peerRegistry.libraryPath()}, not from the installed package`);
}

const watch = registry.watch();
const timeout = setTimeout(() => { console.error('no watch event within 5 s'); process.exit(1); }, 5000);
watch.once('added', async (entry) => {
  assert.equal(entry.id, 'installed-cjs');
  const removed = new Promise((resolve) => watch.once('removed', resolve));
  await registry.promises.unregister('installed-cjs');
  assert.equal((await removed).id, 'installed-cjs');
  assert.deepEqual(registry.list(), []);
  watch.close();
  registry.close();
  clearTimeout(timeout);
  assert.ok(fs.existsSync(registryFile), `${registryFile} was written`);
  console.log(`cjs: register -> list -> watch -> unregister ok (library ${peerRegistry.libraryPath()})`);
});
const stored = registry.register({ id: 'installed-cjs', url: 'http://127.0.0.1:45678/mcp',
  capabilities: { tools: ['echo'] } });
assert.equal(stored.pid, process.pid);
assert.deepEqual(registry.list().map((e) => e.id), ['installed-cjs']);
assert.equal(registry.resolveTool('echo').id, 'installed-cjs');
JS
node check.cjs

cat > check.mjs <<'JS'
import assert from 'node:assert/strict';
import peerRegistry, { version } from 'peer-registry';
import { open } from 'peer-registry/promises';

assert.equal(version(), peerRegistry.HEADER_VERSION);
const registry = await open();
const watch = registry.watch();
const added = new Promise((resolve) => watch.once('added', resolve));
await registry.register({ id: 'installed-esm', url: 'http://127.0.0.1:45679/mcp' });
assert.deepEqual((await registry.list()).map((e) => e.id), ['installed-esm']);
assert.equal((await added).id, 'installed-esm');
const removed = new Promise((resolve) => watch.once('removed', resolve));
await registry.unregister('installed-esm');
assert.equal((await removed).id, 'installed-esm');
watch.close();
await registry.close();
console.log('esm: register -> list -> watch -> unregister ok (promise API)');
JS
node check.mjs

# The source route, for a platform the tarball has no prebuilt parts for: the same tarball
# without prebuilds/ installs into another fresh project, where npm's install step builds the
# addon with build.sh from what the tarball holds (src/addon.c, include/peer_registry.h; cc and
# Node's headers are all it needs) and the library comes from PEER_REGISTRY_LIB.
command -v cc >/dev/null || { echo "test_node.sh: cc is missing: apt-get install -y gcc" >&2; exit 1; }
mkdir -p "$work/unpacked" "$work/source-only" "$work/lib" "$work/project2"
tar -xzf "$tarball" -C "$work/unpacked"
rm -rf "$work/unpacked/package/prebuilds"
(cd "$work/unpacked/package" && npm pack --silent --pack-destination "$work/source-only" >/dev/null)
cp "$(readlink -f "$repo/build/lib/libpeerregistry.so.0")" "$work/lib/libpeerregistry.so.0"
cd "$work/project2"
npm init -y >/dev/null
npm install --offline --no-audit --no-fund "$work/source-only/peer-registry-$version.tgz" >/dev/null
test -f node_modules/peer-registry/build/peer_registry.node
cp ../project/check.cjs ../project/check.mjs .
EXPECT_LIBRARY="$work/lib/libpeerregistry.so.0" PEER_REGISTRY_LIB="$work/lib/libpeerregistry.so.0" node check.cjs
echo "test_node.sh: ok"
