'use strict';
// Crowd worker (Node, through the peer-registry binding). The protocol every worker of the
// crowd test follows is described in tests/crowd/driver.py; usage:
//
//   node worker.js <registry> <name> <iterations>
//
// Output goes through fs.writeSync(1): one write(2) per line, synchronous, so a line printed
// is in the pipe before the next call starts and a SIGKILL loses nothing printed. stdin is read
// with fs.readSync(0) for the same reason: the worker is sequential on purpose.

const fs = require('node:fs');
const path = require('node:path');
const { open, PeerRegistryError } = require(path.join(__dirname, '..', '..', 'bindings', 'node'));

const METADATA_TEXT = 'h\u00e9llo \u2713 "quoted" \\ </tag>';

function emit(line) {
  fs.writeSync(1, `${line}\n`);
}

function fail(message) {
  fs.writeSync(2, `worker ${process.argv[3]}: ${message}\n`);
  process.exit(1);
}

function check(condition, message) {
  if (!condition) fail(message);
}

function entryFor(langIndex, lang, name, w, i) {
  const id = `${name}-${i}`;
  return {
    id,
    name: `crowd ${name} #${i}`,
    url: `http://127.0.0.1:${10000 + langIndex * 10000 + w * 1000 + i}/mcp`,
    capabilities: {
      tools: [`tool-${id}`, `shared-${lang}`],
      resources: [`resource://${id}/`],
      prompts: [`prompt-${name}`],
    },
    metadata: {
      lang,
      worker: name,
      i,
      text: METADATA_TEXT,
      nested: { list: [1, 2.5, -3, true, null], empty: {} },
    },
  };
}

function* stdinLines() {
  const buffer = Buffer.alloc(65536);
  let pending = '';
  for (;;) {
    let n;
    try {
      n = fs.readSync(0, buffer, 0, buffer.length, null);
    } catch (error) {
      if (error.code === 'EAGAIN') continue;
      if (error.code === 'EOF') n = 0;
      else throw error;
    }
    if (n === 0) break;
    pending += buffer.toString('utf8', 0, n);
    let newline;
    while ((newline = pending.indexOf('\n')) >= 0) {
      yield pending.slice(0, newline);
      pending = pending.slice(newline + 1);
    }
  }
  if (pending) yield pending;
}

function main() {
  const [registryPath, name, iterationsText] = process.argv.slice(2);
  const iterations = Number(iterationsText);
  const dash = name.lastIndexOf('-');
  const lang = name.slice(0, dash);
  const w = Number(name.slice(dash + 1));
  const langIndex = { py: 0, node: 1, go: 2 }[lang];
  const counts = { register: 0, unregister: 0, health: 0, list: 0, resolve: 0 };
  const registry = open(registryPath);
  const commands = stdinLines();
  emit('READY');
  check(commands.next().value === 'GO', 'expected GO');
  const kept = [];
  const gone = [];
  for (let i = 0; i < iterations; i++) {
    const e = entryFor(langIndex, lang, name, w, i);
    const { id } = e;
    const stored = registry.register(e);
    counts.register++;
    check(stored.id === id && stored.pid === process.pid && stored.url === e.url,
      `register ${id} returned ${JSON.stringify(stored)}`);
    emit(`ACK ${id}`);
    const listed = registry.list({ tool: `tool-${id}` }).map((s) => s.id);
    counts.list++;
    check(listed.length === 1 && listed[0] === id, `list(tool=tool-${id}) = ${JSON.stringify(listed)}`);
    check(registry.resolveTool(`tool-${id}`).id === id, `resolve tool-${id}`);
    counts.resolve++;
    registry.setHealth(id, i % 4 === 0 ? 'HEALTHY' : 'DEGRADED', `${name} iteration ${i}`);
    counts.health++;
    if (i % 2 === 1) {
      registry.unregister(id);
      counts.unregister++;
      emit(`UNREG ${id}`);
      gone.push(id);
    } else {
      kept.push(id);
    }
    if (i % 25 === 24) {
      const ids = new Set(registry.list().map((s) => s.id));
      counts.list++;
      const missing = kept.filter((k) => !ids.has(k));
      check(missing.length === 0, `own entries missing from list: ${missing}`);
      const stale = gone.filter((g) => ids.has(g));
      check(stale.length === 0, `unregistered entries listed: ${stale}`);
    }
  }
  emit(`DONE ${JSON.stringify(counts)}`);

  for (const line of commands) {
    const words = line.split(' ');
    const command = words[0];
    try {
      if (command === 'GET') {
        emit(`GOT ${words[1]} ${JSON.stringify(registry.get(words[1]))}`);
      } else if (command === 'LIST') {
        emit(`LISTED ${JSON.stringify(registry.list().map((s) => s.id).sort())}`);
      } else if (command === 'HEALTH') {
        registry.setHealth(words[1], words[2], words.slice(3).join(' '));
        emit('OK');
      } else {
        fail(`unknown command ${JSON.stringify(line)}`);
      }
    } catch (error) {
      if (!(error instanceof PeerRegistryError)) throw error;
      emit(`ERR ${words[1] ?? '-'} ${error.errno} ${error.message}`);
    }
  }
  registry.close();
}

try {
  main();
} catch (error) {
  // The stack names the worker's line that made the failing call.
  fail(`${error.code ?? error.name}: ${error.stack}`);
}
