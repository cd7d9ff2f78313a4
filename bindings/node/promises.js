'use strict';
// require('peer-registry/promises'): the promise API, in the style of fs/promises. Every call
// runs on libuv's thread pool, so a write that waits for the file lock never blocks the loop.
//
//   const { open } = require('peer-registry/promises');
//   const registry = await open();
//   await registry.register({ id: 'journey', url: 'http://127.0.0.1:8080/mcp' });

const peerRegistry = require('./index.js');

module.exports = {
  open: peerRegistry.promises.open,
  Registry: peerRegistry.RegistryPromises,
  PeerRegistryError: peerRegistry.PeerRegistryError,
  codes: peerRegistry.codes,
  kinds: peerRegistry.kinds,
  health: peerRegistry.health,
};
module.exports.default = module.exports;
