/**
 * discovery.js — find the local MCP servers from a web page. A plain ES module: no build step,
 * no dependencies. Copy it next to your page or import it from where it is. Types: discovery.d.ts.
 *
 *   import { discover } from './discovery.js';
 *
 *   const found = await discover({
 *     registryUrl: 'http://127.0.0.1:3001',   // `peer-registry serve` (the default)
 *     onChange(servers, info) { render(servers, info.source); },
 *   });
 *   found.source;    // 'registry', 'scan' or 'offline' (see below)
 *   found.servers;   // the entries, as in servers.json: {id, url, port, transport, health, ...}
 *   found.close();   // stop following changes and scanning
 *
 * The token. `peer-registry serve` answers only requests that carry its token (any local user
 * could read the registry otherwise). The page gets it at run time, never in its source (a page
 * served by a dev server is readable by every local user, as is a query string in its logs):
 * - `token` option, e.g. typed by the user; or
 * - the URL fragment `#peer-registry-token=<token>`: open the page as
 *   `http://localhost:5173/#peer-registry-token=<token>` (`peer-registry serve` prints the token
 *   in its URL, and keeps it in `<registry dir>/runtime/token`). A fragment is never sent to a
 *   server nor put in a Referer. discovery.js removes it from the address bar and keeps it in
 *   sessionStorage (this tab, this origin) so that a reload still has it.
 * It sends the token as `Authorization: Bearer` to /servers and as `?token=` to /events
 * (EventSource cannot send headers).
 *
 * How it finds them:
 * 1. GET {registryUrl}/servers ({"generation":N,"servers":[...]}), given up after `timeoutMs`.
 * 2. If the registry server cannot be reached (or refuses), it probes `scanPorts` on `scanHost`
 *    over WebSocket, all at once: a port counts only when an MCP `initialize` sent over the
 *    socket gets a JSON-RPC result within `timeoutMs` (an open socket alone proves nothing).
 *    Each is reported as {id, url: 'ws://<host>:<port>', port, transport: 'ws'} with the id the
 *    registry gives an entry known only by its port: `port-<port>`, or `port-<port>-2`, `-3`, ...
 *    when that is taken (`legacyId`). Seed 001's fallback: ports 1234-1244, 500 ms. It scans
 *    again every `rescanMs` while the registry server is unreachable.
 * 3. Meanwhile it follows {registryUrl}/events (Server-Sent Events, unless `watch` is false):
 *    a `state` event carries every live server, a `change` event what was added, removed or
 *    changed. EventSource reconnects by itself with Last-Event-ID, and the server answers with
 *    the full state if anything changed meanwhile (or it restarted).
 *
 * `source` / `info.source` is the connection state:
 * - 'registry': the registry server answers; `servers` is its live list.
 * - 'scan': it does not; `servers` are what the last scan confirmed (it re-scans).
 * - 'offline': it does not and the last scan found nothing (or scanning is off): `servers` is
 *   empty. `registryError` says why the registry server could not be used.
 * `onChange(servers, info)` is called with the initial list, after every change and every time
 * the source changes; info = {source, generation, registryError, added, removed, changed} (the
 * last three: arrays of entries, empty for a full state).
 *
 * The registry server answers only pages served from loopback origins (http://localhost:*,
 * http://127.0.0.1:*, http://[::1]:*) unless it was started with --allow-origin ORIGIN.
 */

export const DEFAULT_REGISTRY_URL = 'http://127.0.0.1:3001';
export const DEFAULT_SCAN_PORTS = Object.freeze([1234, 1235, 1236, 1237, 1238, 1239, 1240, 1241, 1242, 1243, 1244]);
export const DEFAULT_TIMEOUT_MS = 500;
export const DEFAULT_RESCAN_MS = 5000;
export const TOKEN_FRAGMENT = 'peer-registry-token';

const STORAGE_PREFIX = 'peer-registry-token:';

/**
 * The id the registry gives an entry that has none (the core's rule, docs/FORMAT.md):
 * `port-<port>`, or `port-<port>-2`, `-3`, ... when `taken` (a Set or array of ids) has it.
 */
export function legacyId(port, taken = new Set()) {
  const has = taken instanceof Set ? (id) => taken.has(id) : (id) => taken.includes(id);
  const base = `port-${port}`;
  if (!has(base)) return base;
  for (let n = 2; ; n++) if (!has(`${base}-${n}`)) return `${base}-${n}`;
}

/**
 * The token for `registryUrl`: `explicit`, else `#peer-registry-token=` in this page's URL
 * (which is then removed from the address bar and kept in sessionStorage), else the one kept
 * earlier in this tab. null when there is none.
 */
export function findToken(registryUrl = DEFAULT_REGISTRY_URL, explicit = null) {
  const key = STORAGE_PREFIX + registryUrl.replace(/\/+$/, '');
  const store = (token) => { try { sessionStorage.setItem(key, token); } catch { /* storage disabled */ } return token; };
  if (explicit) return store(explicit);
  if (typeof location !== 'undefined' && location.hash.length > 1) {
    const params = new URLSearchParams(location.hash.slice(1));
    const token = params.get(TOKEN_FRAGMENT);
    if (token) {
      params.delete(TOKEN_FRAGMENT);
      const rest = params.toString();
      try { history.replaceState(history.state, '', location.pathname + location.search + (rest ? `#${rest}` : '')); } catch { /* sandboxed */ }
      return store(token);
    }
  }
  try { return sessionStorage.getItem(key); } catch { return null; }
}

/**
 * @param {import('./discovery').DiscoverOptions} [options]
 * @returns {Promise<import('./discovery').Discovery>}
 */
export async function discover({
  registryUrl = DEFAULT_REGISTRY_URL,
  onChange = () => {},
  scanPorts = DEFAULT_SCAN_PORTS,
  scanHost = 'localhost',
  timeoutMs = DEFAULT_TIMEOUT_MS,
  rescanMs = DEFAULT_RESCAN_MS,
  watch = true,
  token = null,
} = {}) {
  const base = registryUrl.replace(/\/+$/, '');
  const secret = findToken(base, token);
  const byId = new Map();
  let events = null;
  let rescanTimer = null;
  let closed = false;
  let scanning = false;
  const result = {
    source: 'registry',
    servers: [],
    generation: null,
    registryError: null,
    close() {
      closed = true;
      events?.close();
      clearTimeout(rescanTimer);
    },
  };

  const publish = (info = {}) => {
    result.servers = [...byId.values()];
    try {
      onChange(result.servers, {
        source: result.source, generation: result.generation, registryError: result.registryError,
        added: [], removed: [], changed: [], ...info,
      });
    } catch (error) {
      console.error('discovery.js: onChange threw', error);
    }
  };

  const useScan = (entries) => {
    byId.clear();
    for (const entry of entries) byId.set(entry.id, entry);
    result.source = entries.length ? 'scan' : 'offline';
    result.generation = null;
  };

  const scanAndPublish = async () => {
    if (scanning || closed || result.source === 'registry') return;
    scanning = true;
    try {
      const entries = scanPorts.length ? await scanPortRange(scanPorts, { host: scanHost, timeoutMs }) : [];
      if (closed || result.source === 'registry') return;
      const before = JSON.stringify([result.source, [...byId.keys()]]);
      useScan(entries);
      if (JSON.stringify([result.source, [...byId.keys()]]) !== before) publish();
    } finally {
      scanning = false;
      scheduleRescan();
    }
  };

  const scheduleRescan = () => {
    clearTimeout(rescanTimer);
    if (!closed && result.source !== 'registry' && rescanMs > 0 && scanPorts.length) {
      rescanTimer = setTimeout(scanAndPublish, rescanMs);
    }
  };

  const lostRegistry = (why) => {
    if (closed || result.source !== 'registry') return;
    result.registryError = why;
    useScan([]);
    publish();
    scanAndPublish();
  };

  try {
    const listing = await fetchServers(base, timeoutMs, secret);
    for (const entry of listing.servers) byId.set(entry.id, entry);
    result.generation = listing.generation;
  } catch (error) {
    result.registryError = String((error && error.message) || error);
    useScan(scanPorts.length ? await scanPortRange(scanPorts, { host: scanHost, timeoutMs }) : []);
  }
  publish();
  scheduleRescan();

  if (watch && typeof EventSource !== 'undefined') {
    const url = secret ? `${base}/events?token=${encodeURIComponent(secret)}` : `${base}/events`;
    events = new EventSource(url);
    events.addEventListener('state', (e) => {
      const state = JSON.parse(e.data);
      byId.clear();
      for (const entry of state.servers) byId.set(entry.id, entry);
      result.source = 'registry';
      result.registryError = null;
      result.generation = state.generation;
      clearTimeout(rescanTimer);
      publish();
    });
    events.addEventListener('change', (e) => {
      const change = JSON.parse(e.data);
      for (const entry of [...change.added, ...change.changed]) byId.set(entry.id, entry);
      for (const entry of change.removed) byId.delete(entry.id);
      result.source = 'registry';
      result.registryError = null;
      result.generation = change.generation;
      publish({ added: change.added, removed: change.removed, changed: change.changed });
    });
    events.addEventListener('error', () => {
      // EventSource retries by itself; meanwhile the servers come from the scan.
      if (events.readyState !== EventSource.OPEN) lostRegistry(`${base}/events: connection lost or refused`);
    });
  }
  return result;
}

/** GET {base}/servers → {generation, servers}; rejects on a network error, a non-2xx status or after timeoutMs. */
export async function fetchServers(base, timeoutMs = DEFAULT_TIMEOUT_MS, token = null) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new Error(`no answer from ${base} within ${timeoutMs} ms`)), timeoutMs);
  try {
    const headers = token ? { Authorization: `Bearer ${token}` } : {};
    const response = await fetch(`${base}/servers`, { signal: controller.signal, cache: 'no-store', headers });
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

/**
 * Probes every port at once; resolves with an entry per port whose server answered an MCP
 * `initialize` over WebSocket. Ids follow `legacyId`, avoiding `takenIds`.
 */
export async function scanPortRange(ports = DEFAULT_SCAN_PORTS, { host = 'localhost', timeoutMs = DEFAULT_TIMEOUT_MS, takenIds = [] } = {}) {
  const answers = await Promise.all(ports.map((port) => probeWebSocket(`ws://${host}:${port}`, timeoutMs)));
  const taken = new Set(takenIds);
  const entries = [];
  ports.forEach((port, i) => {
    const info = answers[i];
    if (!info) return;
    const id = legacyId(port, taken);
    taken.add(id);
    entries.push({
      id,
      name: info.serverInfo && typeof info.serverInfo.name === 'string' ? info.serverInfo.name : undefined,
      url: `ws://${host}:${port}`,
      port,
      transport: 'ws',
      health: { status: 'UNKNOWN' },
      discoveredBy: 'scan',
    });
  });
  return entries;
}

/**
 * Resolves with the `initialize` result ({protocolVersion, serverInfo, capabilities, ...}) when a
 * WebSocket to `url` opens and answers an MCP `initialize` with a JSON-RPC result within
 * timeoutMs (the socket is closed either way); else null.
 */
export function probeWebSocket(url, timeoutMs = DEFAULT_TIMEOUT_MS) {
  const id = `discovery-${Math.random().toString(36).slice(2)}`;
  return new Promise((resolve) => {
    let socket = null;
    let settled = false;
    const settle = (answer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      try { socket?.close(); } catch { /* already closed */ }
      resolve(answer);
    };
    const timer = setTimeout(() => settle(null), timeoutMs);
    try {
      socket = new WebSocket(url);
    } catch {
      settle(null);
      return;
    }
    socket.onopen = () => {
      socket.send(JSON.stringify({
        jsonrpc: '2.0', id, method: 'initialize',
        params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'peer-registry discovery.js', version: '0.2.0' } },
      }));
    };
    socket.onmessage = (event) => {
      let message = null;
      try { message = JSON.parse(typeof event.data === 'string' ? event.data : ''); } catch { settle(null); return; }
      if (!message || message.jsonrpc !== '2.0' || message.id !== id) return; // a notification: wait
      settle(message.result && typeof message.result === 'object' ? message.result : null);
    };
    socket.onerror = () => settle(null);
    socket.onclose = () => settle(null);
  });
}
