// Types for discovery.js (a plain ES module; see its header comment for the behaviour).

/** An entry as in servers.json (docs/FORMAT.md); fields this version does not know are kept. */
export interface ServerEntry {
  id: string;
  name?: string;
  url?: string;
  port?: number;
  transport?: 'http' | 'sse' | 'ws' | 'stdio';
  pid?: number | null;
  startedAt?: string;
  lastSeen?: string;
  liveness?: 'lease' | 'pid' | 'ttl' | 'none';
  ttlSeconds?: number;
  capabilities?: { tools?: string[]; resources?: string[]; prompts?: string[] };
  health?: { status: 'HEALTHY' | 'DEGRADED' | 'DOWN' | 'UNKNOWN'; message?: string; lastCheck?: string };
  requiresSession?: boolean;
  metadata?: unknown;
  /** Set on entries found by the port scan. */
  discoveredBy?: 'scan';
  [field: string]: unknown;
}

/** Where the servers come from: the registry server, the port scan, or nowhere. */
export type Source = 'registry' | 'scan' | 'offline';

export interface ChangeInfo {
  source: Source;
  /** The registry file's generation (null unless source is 'registry'). */
  generation: number | null;
  /** Why the registry server could not be used (null while it is). */
  registryError: string | null;
  /** For a `change` event: what it added, removed (last version seen) and changed; else empty. */
  added: ServerEntry[];
  removed: ServerEntry[];
  changed: ServerEntry[];
}

export interface DiscoverOptions {
  /** Base URL of `peer-registry serve` (default 'http://127.0.0.1:3001'). */
  registryUrl?: string;
  /** Called with the initial list, after every change and whenever `source` changes. */
  onChange?: (servers: ServerEntry[], info: ChangeInfo) => void;
  /** Ports probed when the registry server is unreachable (default 1234-1244; [] turns scanning off). */
  scanPorts?: readonly number[];
  /** Host probed (default 'localhost'). */
  scanHost?: string;
  /** Per request and per probe, in ms (default 500). */
  timeoutMs?: number;
  /** How often to scan again while the registry server is unreachable, in ms (default 5000; 0: never). */
  rescanMs?: number;
  /** Follow /events (default true). */
  watch?: boolean;
  /** The server's token; default: `#peer-registry-token=` in the page's URL, then this tab's sessionStorage. */
  token?: string | null;
}

export interface Discovery {
  source: Source;
  servers: ServerEntry[];
  generation: number | null;
  registryError: string | null;
  /** Stops following /events and scanning. */
  close(): void;
}

export const DEFAULT_REGISTRY_URL: string;
export const DEFAULT_SCAN_PORTS: readonly number[];
export const DEFAULT_TIMEOUT_MS: number;
export const DEFAULT_RESCAN_MS: number;
/** The URL fragment parameter that carries the token: '#peer-registry-token=<token>'. */
export const TOKEN_FRAGMENT: string;

export function discover(options?: DiscoverOptions): Promise<Discovery>;
/** `port-<port>`, or `port-<port>-2`, `-3`, ... when taken (the core's rule for entries without an id). */
export function legacyId(port: number, taken?: Set<string> | readonly string[]): string;
/** The token for `registryUrl` (explicit, the URL fragment, or this tab's sessionStorage); null when none. */
export function findToken(registryUrl?: string, explicit?: string | null): string | null;
export function fetchServers(base: string, timeoutMs?: number, token?: string | null): Promise<{ generation: number; servers: ServerEntry[] }>;
export function scanPortRange(ports?: readonly number[], options?: { host?: string; timeoutMs?: number; takenIds?: readonly string[] }): Promise<ServerEntry[]>;
/** The `initialize` result when a WebSocket MCP server answers one within timeoutMs; else null. */
export function probeWebSocket(url: string, timeoutMs?: number): Promise<Record<string, unknown> | null>;
