'use strict';
// Child process for the tests: registers one entry and stays alive (holding its lease) until
// killed; on SIGTERM it closes the registry (unregistering) and exits 0.
// argv: registry path, entry JSON. Prints "READY <stored entry JSON>" once registered.
const peerRegistry = require('..');

const [registryPath, entryJson] = process.argv.slice(2);
const registry = peerRegistry.open(registryPath);
// The handler goes in before READY: the parent may signal as soon as it reads that line.
process.on('SIGTERM', () => {
  registry.close();
  process.exit(0);
});
setInterval(() => {}, 1 << 30);
const stored = registry.register(JSON.parse(entryJson));
process.stdout.write(`READY ${JSON.stringify(stored)}\n`);
