'use strict';
// The package carries its own copy of the header (include/peer_registry.h), so that build.sh
// works from an installed package. It must be the repository's header, byte for byte.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const { PACKAGE_DIR, REPO_DIR } = require('../test-support/helpers');

test('include/peer_registry.h is identical to the repository header', () => {
  const ours = path.join(PACKAGE_DIR, 'include', 'peer_registry.h');
  const theirs = path.join(REPO_DIR, 'include', 'peer_registry.h');
  assert.ok(
    fs.readFileSync(ours).equals(fs.readFileSync(theirs)),
    `${ours} differs from ${theirs}; copy it: cp include/peer_registry.h bindings/node/include/`,
  );
});
