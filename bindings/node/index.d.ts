// Types for peer-registry, the Node.js binding of libpeerregistry (include/peer_registry.h).

import { EventEmitter } from 'node:events';

export type Transport = 'http' | 'sse' | 'ws' | 'stdio';
export type Liveness = 'lease' | 'pid' | 'ttl' | 'none';
export type HealthStatus = 'HEALTHY' | 'DEGRADED' | 'DOWN' | 'UNKNOWN';
/**
 * Which machines' entries a call considers (docs/CLUSTER.md): 'local' (the default) this
 * machine's registry only; 'cluster' also the other machines' entries, mirrored by
 * `peer-registry agent`, each with `node` (libpeerregistry 0.2.0).
 */
export type Scope = 'local' | 'cluster';

export interface Capabilities {
  tools?: string[];
  resources?: string[];
  prompts?: string[];
  [key: string]: unknown;
}

export interface Health {
  status: HealthStatus;
  message?: string;
  lastCheck?: string;
  /** Failed probes in a row (absent after a success). */
  consecutiveFailures?: number;
  [key: string]: unknown;
}

/** One registry entry as stored (docs/FORMAT.md). Unknown fields are kept by the library. */
export interface ServerEntry {
  id: string;
  url: string;
  /** 'cluster': the cluster agent may publish it to other machines (absent: local). */
  scope?: Scope;
  /** Only in cluster-scope results: the machine a remote entry lives on. */
  node?: string;
  /** Only in cluster-scope results: the remote entry's freshness is not vouched for right now. */
  stale?: boolean;
  name?: string;
  port?: number;
  transport?: Transport;
  pid?: number;
  startedAt?: string;
  lastSeen?: string;
  liveness?: Liveness;
  ttlSeconds?: number;
  capabilities?: Capabilities;
  health?: Health;
  requiresSession?: boolean;
  metadata?: Record<string, unknown>;
  [key: string]: unknown;
}

/** What register() accepts: `id` and `url` are required, the library fills in the rest. */
export type NewServerEntry = Partial<ServerEntry> & { id: string; url: string };

/** Filter for list() and watch(): every key given must match. Unknown keys are PEERREG_EINVAL. */
export interface ListFilter {
  healthy?: boolean;
  status?: HealthStatus;
  transport?: Transport;
  tool?: string;
  prompt?: string;
  resource?: string;
  /** 'cluster': also the other machines' entries mirrored by `peer-registry agent` (each with `node`; docs/CLUSTER.md). */
  scope?: Scope;
}

/** Options of resolve(), resolveTool(), resolveResource() and resolvePrompt(). */
export interface ResolveOptions {
  /**
   * 'cluster': the other machines' servers are candidates too — health first, then, at equal
   * health, a local server over a remote one and a fresh remote one over a stale one; a remote
   * result has `node`. Any other value than 'local' or 'cluster' is PEERREG_EINVAL.
   * 'cluster' needs libpeerregistry >= 0.2.0.
   */
  scope?: Scope;
}

export interface ProbeOptions {
  /** How long to wait for the server, in whole milliseconds. Absent, 0 or less: the library's default (2000). */
  timeoutMs?: number;
}

export interface ListResult {
  generation: number;
  servers: ServerEntry[];
}

/** A watch event: a diff against the last state this watch saw. */
export interface ChangeEvent {
  generation: number;
  added: ServerEntry[];
  /** For removed entries, the last version seen. */
  removed: ServerEntry[];
  changed: ServerEntry[];
}

export type ErrorCodeName =
  | 'PEERREG_EINVAL'
  | 'PEERREG_ENOTFOUND'
  | 'PEERREG_EEXISTS'
  | 'PEERREG_ECORRUPT'
  | 'PEERREG_EIO'
  | 'PEERREG_EPERM'
  | 'PEERREG_ETIMEOUT'
  | 'PEERREG_EAMBIGUOUS'
  | 'PEERREG_ELIMIT'
  | 'PEERREG_ECLOSED'
  | 'PEERREG_UNKNOWN_CODE';

/** A failure reported by the library. */
export class PeerRegistryError extends Error {
  constructor(message: string, code: ErrorCodeName, errno: number);
  /** The PEERREG_* name, e.g. 'PEERREG_ENOTFOUND'. */
  code: ErrorCodeName;
  /** The PEERREG_* value, e.g. -2 (codes.ENOTFOUND). */
  errno: number;
}

export const codes: Readonly<{
  OK: 0;
  EINVAL: -1;
  ENOTFOUND: -2;
  EEXISTS: -3;
  ECORRUPT: -4;
  EIO: -5;
  EPERM: -6;
  ETIMEOUT: -7;
  EAMBIGUOUS: -8;
  ELIMIT: -9;
  ECLOSED: -10;
}>;
export const kinds: Readonly<{ TOOL: 1; RESOURCE: 2; PROMPT: 3 }>;
export const health: Readonly<{ UNKNOWN: 0; HEALTHY: 1; DEGRADED: 2; DOWN: 3 }>;

/** The header version the addon was compiled against. */
export const HEADER_VERSION: string;
export const HEADER_VERSION_NUMBER: number;

export interface OpenOptions {
  /** The registry file. Default: $PEER_REGISTRY_PATH, else ~/.peer-plan/servers.json. */
  path?: string;
  /** The library file; see loadLibrary(). */
  lib?: string;
}

export interface LibraryAttempt {
  place: 'explicit path argument' | 'PEER_REGISTRY_LIB' | 'package copy' | 'system loader';
  /** null when the place was not configured. */
  path: string | null;
  reason: string;
}

/** Thrown when no library loads: code 'ERR_PEERREG_LIBRARY_NOT_FOUND', `tried` in order. */
export interface LibraryNotFoundError extends Error {
  code: 'ERR_PEERREG_LIBRARY_NOT_FOUND';
  tried: LibraryAttempt[];
}

/**
 * Loads libpeerregistry once per process and returns the real path loaded, from the first of:
 * the explicit path, $PEER_REGISTRY_LIB, the copy the package ships
 * (prebuilds/<platform>-<arch>/libpeerregistry.so.0), the system loader (libpeerregistry.so.0).
 * A place that is given (or, for the package copy, exists) but does not load is an error, not
 * a reason to try the next. Throws a LibraryNotFoundError ('ERR_PEERREG_LIBRARY_NOT_FOUND')
 * naming every place tried, or an Error with code 'ERR_PEERREG_LIBRARY_CONFLICT' when another
 * library file is already loaded.
 */
export function loadLibrary(path?: string): string;
/** The real path of the loaded library, or null. */
export function libraryPath(): string | null;
/** The library's version, e.g. "0.2.0". */
export function version(): string;
/** The library's version number: major*1000000 + minor*1000 + patch. */
export function versionNumber(): number;
/** The library's static name for a result code. */
export function errstr(code: number): string;

/**
 * An open registry. Synchronous calls (see `promises` for the same calls off the event loop);
 * writes are durable when they return.
 * Closing unregisters the entries this handle registered with "lease" liveness; an unreachable
 * handle is closed by its finalizer, so keep a reference while your entries should stay.
 */
export class Registry {
  constructor(options?: string | OpenOptions);
  /** The path given to the constructor (null: the library's default). */
  readonly path: string | null;
  readonly closed: boolean;
  /** Idempotent. Later calls throw PEERREG_ECLOSED. */
  close(): void;
  /** Registers (or, for an id this handle registered, replaces) an entry; returns it as stored. */
  register(entry: NewServerEntry | string): ServerEntry;
  unregister(id: string): void;
  /** Throws PEERREG_ENOTFOUND when there is no live entry `id`. */
  get(id: string): ServerEntry;
  list(filter?: ListFilter | string): ServerEntry[];
  listWithGeneration(filter?: ListFilter | string): ListResult;
  resolve(kind: number, name: string, options?: ResolveOptions): ServerEntry;
  resolveTool(name: string, options?: ResolveOptions): ServerEntry;
  resolveResource(uri: string, options?: ResolveOptions): ServerEntry;
  resolvePrompt(name: string, options?: ResolveOptions): ServerEntry;
  setHealth(id: string, status: HealthStatus | number, message?: string | null): void;
  heartbeat(id: string): void;
  /**
   * Probes `id` by its transport as peerreg_probe does (MCP over HTTP for http/sse, TCP connect
   * for ws) off the event loop and records the outcome: HEALTHY on success, DEGRADED after 1 failure, DOWN
   * after 3 (health.consecutiveFailures). A failed probe resolves too; rejects with
   * PEERREG_ENOTFOUND when there is no live entry `id`.
   */
  probe(id: string, options?: ProbeOptions): Promise<ServerEntry>;
  /** Removes dead entries now; returns how many. */
  prune(): number;
  /**
   * Watches the registry; with a filter (a list() filter, or its JSON text) only the entries
   * it selects, one that stops matching being 'removed'. {scope: 'cluster'} watches the other
   * machines' entries too (identified by `node` and `id`). A bad filter throws PEERREG_EINVAL;
   * a filter needs libpeerregistry >= 0.2.0.
   */
  watch(filter?: ListFilter | string): Watch;
  /** The same handle with promise-returning calls run on libuv's thread pool. */
  readonly promises: RegistryPromises;
  [Symbol.dispose](): void;
}

/**
 * A registry whose calls return promises and run on libuv's thread pool (like fs.promises):
 * a write waiting for another process's lock (up to 5 s, or $PEER_REGISTRY_LOCK_TIMEOUT_MS)
 * or a probe waiting on the network never blocks the event loop. Made by
 * `require('peer-registry/promises').open()` or `registry.promises`; shares the handle (and
 * its leases) with `sync`. Bad arguments reject, never throw.
 */
export class RegistryPromises {
  private constructor();
  /** The synchronous Registry with the same handle. */
  readonly sync: Registry;
  readonly path: string | null;
  readonly closed: boolean;
  /** Idempotent; unregisters this handle's lease entries. */
  close(): Promise<void>;
  register(entry: NewServerEntry | string): Promise<ServerEntry>;
  unregister(id: string): Promise<void>;
  get(id: string): Promise<ServerEntry>;
  list(filter?: ListFilter | string): Promise<ServerEntry[]>;
  listWithGeneration(filter?: ListFilter | string): Promise<ListResult>;
  resolve(kind: number, name: string, options?: ResolveOptions): Promise<ServerEntry>;
  resolveTool(name: string, options?: ResolveOptions): Promise<ServerEntry>;
  resolveResource(uri: string, options?: ResolveOptions): Promise<ServerEntry>;
  resolvePrompt(name: string, options?: ResolveOptions): Promise<ServerEntry>;
  setHealth(id: string, status: HealthStatus | number, message?: string | null): Promise<void>;
  heartbeat(id: string): Promise<void>;
  /** Resolves with how many dead entries were removed. */
  prune(): Promise<number>;
  probe(id: string, options?: ProbeOptions): Promise<ServerEntry>;
  /** Registry.watch(filter): returns the Watch itself (throws on a bad filter). */
  watch(filter?: ListFilter | string): Watch;
  [Symbol.asyncDispose](): Promise<void>;
}

/** The promise API, also require('peer-registry/promises'). */
export const promises: Readonly<{
  open(options?: string | OpenOptions): Promise<RegistryPromises>;
  Registry: typeof RegistryPromises;
}>;

/**
 * Registry changes on the event loop (no threads). An open watch keeps the process alive;
 * unref() lets it exit, close() stops the watch (idempotent).
 */
export class Watch extends EventEmitter {
  /** Watches are made by Registry.watch(). */
  private constructor();
  readonly closed: boolean;
  close(): void;
  ref(): this;
  unref(): this;
  [Symbol.dispose](): void;

  on(event: 'change', listener: (event: ChangeEvent) => void): this;
  on(event: 'added' | 'removed' | 'changed', listener: (entry: ServerEntry, event: ChangeEvent) => void): this;
  on(event: 'error', listener: (error: PeerRegistryError) => void): this;
  on(event: 'close', listener: () => void): this;
  once(event: 'change', listener: (event: ChangeEvent) => void): this;
  once(event: 'added' | 'removed' | 'changed', listener: (entry: ServerEntry, event: ChangeEvent) => void): this;
  once(event: 'error', listener: (error: PeerRegistryError) => void): this;
  once(event: 'close', listener: () => void): this;
}

/** open(), open(path) or open({path, lib}). */
export function open(options?: string | OpenOptions): Registry;

declare const peerRegistry: {
  open: typeof open;
  Registry: typeof Registry;
  RegistryPromises: typeof RegistryPromises;
  promises: typeof promises;
  Watch: typeof Watch;
  PeerRegistryError: typeof PeerRegistryError;
  loadLibrary: typeof loadLibrary;
  libraryPath: typeof libraryPath;
  version: typeof version;
  versionNumber: typeof versionNumber;
  errstr: typeof errstr;
  codes: typeof codes;
  kinds: typeof kinds;
  health: typeof health;
  HEADER_VERSION: string;
  HEADER_VERSION_NUMBER: number;
};
export default peerRegistry;
