'use strict';
// npm's install step. With a prebuilt addon for this platform in the package
// (prebuilds/<platform>-<arch>/peer_registry.node), or one already built, there is nothing to
// do. Otherwise the addon is built from the package's own src/addon.c and
// include/peer_registry.h with build.sh, which needs only cc and Node's headers; a failure
// fails the install, saying what is missing.

const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const platform = `${process.platform}-${process.arch}`;
const prebuilt = path.join(__dirname, 'prebuilds', platform, 'peer_registry.node');
const built = path.join(__dirname, 'build', 'peer_registry.node');
if (fs.existsSync(prebuilt) || fs.existsSync(built)) process.exit(0);

console.log(`peer-registry: no prebuilt addon for ${platform}; building it with build.sh`);
const result = spawnSync('bash', [path.join(__dirname, 'build.sh')], { stdio: 'inherit' });
if (result.status !== 0) {
  console.error(
    `peer-registry: building the addon failed (${result.error ? result.error.message : `exit ${result.status}`}); ` +
      'it needs a C compiler (cc) and Node\'s headers (node_api.h; set NODE_INCLUDE to their directory)',
  );
  process.exit(1);
}
if (!fs.existsSync(path.join(__dirname, 'prebuilds', platform, 'libpeerregistry.so.0'))) {
  console.log(
    `peer-registry: this package ships no libpeerregistry for ${platform}: install ` +
      'libpeerregistry.so.0 where the system loader finds it (make install) or set PEER_REGISTRY_LIB',
  );
}
