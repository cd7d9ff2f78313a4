'use strict';
// Child process for the tests: registers one entry and stays alive (holding its lease) until
// killed. argv: registry path, entry JSON. Prints "READY <stored entry JSON>" once registered.
const peerRegistry = require('..');

const [registryPath, entryJson] = process.argv.slice(2);
const registry = peerRegistry.open(registryPath);
const stored = registry.register(JSON.parse(entryJson));
process.stdout.write(`READY ${JSON.stringify(stored)}\n`);
setInterval(() => {}, 1 << 30);
process.on('SIGTERM', () => {
  registry.close();
  process.exit(0);
});
