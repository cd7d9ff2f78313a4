#!/usr/bin/env node
'use strict';
// A watch_writer reader in Node: the binding's EventEmitter ('change' events, libuv polling the
// watch fd). Usage: node watch_reader.js <path>. Prints "ready", then "<seq> <CLOCK_MONOTONIC ns>"
// per event (process.hrtime is CLOCK_MONOTONIC), stamped as the event reaches the listener.
const path = require('node:path');
const peerRegistry = require(path.join(__dirname, '..', 'bindings', 'node'));

const registry = peerRegistry.open(process.argv[2]);
const watch = registry.watch();
watch.on('change', (event) => {
  const t = process.hrtime.bigint();
  for (const entry of [...event.changed, ...event.added]) {
    if (entry.id === 'watched') process.stdout.write(`${entry.metadata.seq} ${t}\n`);
  }
});
watch.on('error', (error) => {
  console.error(error);
  process.exit(1);
});
process.on('SIGTERM', () => process.exit(0));
process.stdout.write('ready\n');
