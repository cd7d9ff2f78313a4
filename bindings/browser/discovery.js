/**
 * discovery.js — find the local MCP servers from a web page. A plain ES module: no build step,
 * no dependencies. Copy it next to your page or import it from where it is.
 *
 *   import { discover } from './discovery.js';
 *
 *   const found = await discover({
 *     registryUrl: 'http://127.0.0.1:3001',   // `peer-registry serve` (the default)
 *     onChange(servers, info) { render(servers); },
 *   });
 *   found.source;    // 'registry' or 'scan'
 *   found.servers;   // the entries, as in servers.json: {id, url, port, transport, health, ...}
 *   found.close();   // stop following changes
 *
 * How it finds them:
 * 1. GET {registryUrl}/servers ({"generation":N,"servers":[...]}), given up after `timeoutMs`.
 * 2. If the registry server cannot be reached (or refuses), it probes `scanPorts` on `scanHost`
 *    over WebSocket, all at once, each given up after `timeoutMs`: every port that accepts a
 *    WebSocket is reported as {id: 'port-<port>', url: 'ws://<host>:<port>', port, transport: 'ws'}
 *    (the id the registry gives an entry known only by its port). Seed 001's fallback: ports
 *    1234-1244, 500 ms.
 * 3. Either way it then follows {registryUrl}/events (Server-Sent Events, unless `watch` is
 *    false): a `state` event carries every live server, a `change` event what was added, removed
 *    or changed. EventSource reconnects by itself with Last-Event-ID, and the server answers with
 *    the full state if anything changed meanwhile. If the registry server comes up after a scan,
 *    the first `state` switches `source` to 'registry'. (While it is down, the browser logs each
 *    reconnection attempt in the console.)
 *
 * `onChange(servers, info)` is called with the initial list and after every change;
 * info = {source, generation, added, removed, changed} (the last three: arrays of entries, empty
 * for a full state). It may be called with an unchanged list (e.g. the `state` event that
 * follows the initial fetch).
 *
 * The registry server answers only pages served from loopback origins (http://localhost:*,
 * http://127.0.0.1:*, http://[::1]:*) unless it was started with --allow-origin ORIGIN.
 */

export const DEFAULT_REGISTRY_URL = 'http://127.0.0.1:3001';
export const DEFAULT_SCAN_PORTS = Object.freeze([1234, 1235, 1236, 1237, 1238, 1239, 1240, 1241, 1242, 1243, 1244]);
export const DEFAULT_TIMEOUT_MS = 500;

/**
 * @param {object} [options]
 * @param {string} [options.registryUrl]  base URL of `peer-registry serve`
 * @param {(servers: object[], info: object) => void} [options.onChange]
 * @param {number[]} [options.scanPorts]  ports to probe when the registry server is unreachable
 * @param {string} [options.scanHost]     host to probe ('localhost')
 * @param {number} [options.timeoutMs]    per request and per probe
 * @param {boolean} [options.watch]       follow /events (default true)
 * @returns {Promise<{source: string, servers: object[], generation: (number|null), registryError: (string|null), close: () => void}>}
 */
export async function discover({
  registryUrl = DEFAULT_REGISTRY_URL,
  onChange = () => {},
  scanPorts = DEFAULT_SCAN_PORTS,
  scanHost = 'localhost',
  timeoutMs = DEFAULT_TIMEOUT_MS,
  watch = true,
} = {}) {
  const base = registryUrl.replace(/\/+$/, '');
  const byId = new Map();
  const result = {
    source: 'registry',
    servers: [],
    generation: null,
    registryError: null,
    close() { events?.close(); },
  };
  let events = null;

  const publish = (info) => {
    result.servers = [...byId.values()];
    try {
      onChange(result.servers, { source: result.source, generation: result.generation, added: [], removed: [], changed: [], ...info });
    } catch (error) {
      console.error('discovery.js: onChange threw', error);
    }
  };

  try {
    const listing = await fetchServers(base, timeoutMs);
    for (const entry of listing.servers) byId.set(entry.id, entry);
    result.generation = listing.generation;
  } catch (error) {
    result.source = 'scan';
    result.registryError = String(error && error.message || error);
    for (const entry of await scanPortRange(scanPorts, { host: scanHost, timeoutMs })) byId.set(entry.id, entry);
  }
  publish({});

  if (watch && typeof EventSource !== 'undefined') {
    events = new EventSource(`${base}/events`);
    events.addEventListener('state', (e) => {
      const state = JSON.parse(e.data);
      byId.clear();
      for (const entry of state.servers) byId.set(entry.id, entry);
      result.source = 'registry';
      result.registryError = null;
      result.generation = state.generation;
      publish({});
    });
    events.addEventListener('change', (e) => {
      const change = JSON.parse(e.data);
      for (const entry of [...change.added, ...change.changed]) byId.set(entry.id, entry);
      for (const entry of change.removed) byId.delete(entry.id);
      result.source = 'registry';
      result.generation = change.generation;
      publish({ added: change.added, removed: change.removed, changed: change.changed });
    });
  }
  return result;
}

/** GET {base}/servers → {generation, servers}; rejects on a network error, a non-2xx status or after timeoutMs. */
export async function fetchServers(base, timeoutMs = DEFAULT_TIMEOUT_MS) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new Error(`no answer from ${base} within ${timeoutMs} ms`)), timeoutMs);
  try {
    const response = await fetch(`${base}/servers`, { signal: controller.signal, cache: 'no-store' });
    if (!response.ok) {
      let detail = '';
      try { detail = (await response.json()).error || ''; } catch { /* not JSON */ }
      throw new Error(`${base}/servers answered ${response.status}${detail ? `: ${detail}` : ''}`);
    }
    const listing = await response.json();
    if (!listing || !Array.isArray(listing.servers)) throw new Error(`${base}/servers: not a server list`);
    return listing;
  } finally {
    clearTimeout(timer);
  }
}

/** Probes every port at once over WebSocket; resolves with an entry per port that accepted. */
export async function scanPortRange(ports = DEFAULT_SCAN_PORTS, { host = 'localhost', timeoutMs = DEFAULT_TIMEOUT_MS } = {}) {
  const open = await Promise.all(ports.map((port) => probeWebSocket(`ws://${host}:${port}`, timeoutMs)));
  return ports.filter((_, i) => open[i]).map((port) => ({
    id: `port-${port}`,
    url: `ws://${host}:${port}`,
    port,
    transport: 'ws',
    health: { status: 'UNKNOWN' },
    discoveredBy: 'scan',
  }));
}

/** Resolves true when a WebSocket to `url` opens within timeoutMs (and closes it), else false. */
export function probeWebSocket(url, timeoutMs = DEFAULT_TIMEOUT_MS) {
  return new Promise((resolve) => {
    let socket = null;
    let settled = false;
    const settle = (ok) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      try { socket?.close(); } catch { /* already closed */ }
      resolve(ok);
    };
    const timer = setTimeout(() => settle(false), timeoutMs);
    try {
      socket = new WebSocket(url);
    } catch {
      settle(false);
      return;
    }
    socket.onopen = () => settle(true);
    socket.onerror = () => settle(false);
    socket.onclose = () => settle(false);
  });
}
