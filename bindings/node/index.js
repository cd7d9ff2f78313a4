'use strict';
// peer-registry for Node.js: a thin skin over libpeerregistry (include/peer_registry.h).
// Everything that matters — locking, atomic writes, liveness, pruning, resolution, limits — is
// the library's; this file only converts between JS values and the C ABI's JSON strings.

const path = require('node:path');
const fs = require('node:fs');
const { EventEmitter } = require('node:events');

// Where the native parts live inside this package. An addon built from source with build.sh
// (build/) wins over the prebuilt one shipped for this platform (prebuilds/<platform>-<arch>/);
// the library the package ships sits beside the prebuilt addon.
const PLATFORM_DIR = path.join(__dirname, 'prebuilds', `${process.platform}-${process.arch}`);
const BUILT_ADDON = path.join(__dirname, 'build', 'peer_registry.node');
const PREBUILT_ADDON = path.join(PLATFORM_DIR, 'peer_registry.node');
const PACKAGE_LIBRARY = path.join(PLATFORM_DIR, 'libpeerregistry.so.0');
const SYSTEM_LIBRARY = 'libpeerregistry.so.0';

function loadAddon() {
  const addonPath = fs.existsSync(BUILT_ADDON) ? BUILT_ADDON : PREBUILT_ADDON;
  try {
    return require(addonPath);
  } catch (cause) {
    const missing = !fs.existsSync(addonPath);
    const error = new Error(
      missing
        ? `peer-registry: no native addon for ${process.platform}-${process.arch} in this ` +
            `package (looked for ${BUILT_ADDON} and ${PREBUILT_ADDON}); build one with ` +
            `${path.join(__dirname, 'build.sh')} (needs cc and Node's headers)`
        : `peer-registry: cannot load the native addon ${addonPath} (${cause.message}); ` +
            `rebuild it with ${path.join(__dirname, 'build.sh')}`,
      { cause },
    );
    error.code = 'ERR_PEERREG_ADDON';
    throw error;
  }
}

const native = loadAddon();

/** A failure reported by libpeerregistry: `.code` is the PEERREG_* name, `.errno` its value. */
class PeerRegistryError extends Error {
  constructor(message, code, errno) {
    super(message);
    this.name = 'PeerRegistryError';
    this.code = code;
    this.errno = errno;
  }
}
native.init(PeerRegistryError);

/** Result codes (PEERREG_*), e.g. codes.ENOTFOUND === -2. */
const codes = Object.freeze({ ...native.codes });
/** Capability kinds for resolve(). */
const kinds = Object.freeze({ ...native.kinds });
/** Health states for setHealth(). */
const health = Object.freeze({ ...native.health });

function sameFile(a, b) {
  try {
    return fs.realpathSync(a) === fs.realpathSync(b);
  } catch {
    return false;
  }
}

function libraryNotFound(tried) {
  const error = new Error(
    'peer-registry: could not load libpeerregistry; tried:\n' +
      tried.map((t) => `  - ${t.place}: ${t.path ? `${t.path}: ` : ''}${t.reason}`).join('\n'),
  );
  error.code = 'ERR_PEERREG_LIBRARY_NOT_FOUND';
  error.tried = tried;
  return error;
}

/*
 * The lookup rule, the same in the Python and Go bindings (docs/ABI.md, "Finding the library"):
 *   0. an explicit path argument (open({lib}) or loadLibrary(path)), when given;
 *   1. else $PEER_REGISTRY_LIB, when set;
 *   2. else the copy this package ships, prebuilds/<platform>-<arch>/libpeerregistry.so.0,
 *      when it exists;
 *   3. else the system's libpeerregistry.so.0 (plain dlopen by SONAME: ld.so's search path).
 * A place that is given (0, 1) or exists (2) but does not load is an error, never a reason to
 * load another build instead: that would hide the mistake. The error names each place tried.
 */
function locateLibrary(explicitPath) {
  const tried = [];
  const attempt = (place, file) => {
    try {
      return native.loadLibrary(file);
    } catch (error) {
      if (error.code !== 'ERR_PEERREG_LIBRARY_LOAD') throw error;
      tried.push({ place, path: file, reason: error.message.replace(`${file}: `, '') });
      throw libraryNotFound(tried);
    }
  };
  if (explicitPath != null && explicitPath !== '') {
    return attempt('explicit path argument', path.resolve(String(explicitPath)));
  }
  tried.push({ place: 'explicit path argument', path: null, reason: 'none given' });
  const fromEnv = process.env.PEER_REGISTRY_LIB;
  if (fromEnv) return attempt('PEER_REGISTRY_LIB', path.resolve(fromEnv));
  tried.push({ place: 'PEER_REGISTRY_LIB', path: null, reason: 'not set' });
  if (fs.existsSync(PACKAGE_LIBRARY)) return attempt('package copy', PACKAGE_LIBRARY);
  tried.push({
    place: 'package copy',
    path: PACKAGE_LIBRARY,
    reason: `does not exist (this package ships no library for ${process.platform}-${process.arch})`,
  });
  return attempt('system loader', SYSTEM_LIBRARY);
}

/**
 * Loads libpeerregistry (once per process) and returns the real path of the file loaded.
 * With no argument, returns the library already loaded, or applies the lookup rule above.
 * Throws ERR_PEERREG_LIBRARY_NOT_FOUND (naming every place tried and why it failed), or
 * ERR_PEERREG_LIBRARY_CONFLICT when a different library file is already loaded.
 */
function loadLibrary(libraryPath) {
  const loaded = native.libraryPath();
  if (loaded === null) return locateLibrary(libraryPath);
  if (libraryPath != null && libraryPath !== '' && !sameFile(libraryPath, loaded)) {
    const error = new Error(
      `peer-registry: ${loaded} is already loaded in this process; ` +
        `cannot also load ${path.resolve(String(libraryPath))} (one libpeerregistry per process)`,
    );
    error.code = 'ERR_PEERREG_LIBRARY_CONFLICT';
    throw error;
  }
  return loaded;
}

/** The real path of the loaded library, or null before anything loaded it. */
function libraryPath() {
  return native.libraryPath();
}

/** The library's version string, e.g. "0.2.0" (loads the library if needed). */
function version() {
  loadLibrary();
  return native.version();
}

/** The library's version number, major*1000000 + minor*1000 + patch. */
function versionNumber() {
  loadLibrary();
  return native.versionNumber();
}

/** The library's static description of a result code. */
function errstr(code) {
  loadLibrary();
  return native.errstr(code);
}

function jsonArgument(value) {
  // Objects are serialised here; a string is passed through as JSON text as it is, and
  // undefined/null become NULL — the library validates all three (PEERREG_EINVAL).
  if (value !== null && typeof value === 'object') return JSON.stringify(value);
  return value;
}

/**
 * The scope of a resolve ({scope} in its options; docs/CLUSTER.md) as the native call takes it:
 * undefined for 'local' (the default: plain peerreg_resolve, which every library has), the
 * PEERREG_SCOPE_CLUSTER number for 'cluster'. Any other scope is a PeerRegistryError
 * PEERREG_EINVAL, as the library answers for a bad scope in a list filter.
 */
function resolveScope(options) {
  if (options === undefined || options === null) return undefined;
  if (typeof options !== 'object') {
    const error = new TypeError(
      `The "options" argument must be an object like {scope: 'cluster'}; received ${typeof options}`,
    );
    error.code = 'ERR_INVALID_ARG_TYPE';
    throw error;
  }
  const { scope } = options;
  if (scope === undefined || scope === 'local') return undefined;
  if (scope === 'cluster') return native.scopes.cluster;
  throw new PeerRegistryError(
    `scope ${typeof scope === 'string' ? JSON.stringify(scope) : String(scope)}: use 'local' or 'cluster'`,
    'PEERREG_EINVAL',
    codes.EINVAL,
  );
}

function healthStatus(status) {
  if (typeof status === 'number') return status; // the library rejects unknown values
  if (typeof status === 'string') {
    const value = health[status.toUpperCase()];
    if (value !== undefined) return value;
  }
  const error = new TypeError(
    `The "status" argument must be one of ${Object.keys(health).join(', ')} or a number; ` +
      `received ${typeof status === 'string' ? JSON.stringify(status) : typeof status}`,
  );
  error.code = 'ERR_INVALID_ARG_VALUE';
  throw error;
}

/**
 * One open registry (a peerreg_registry handle). Closing it unregisters every entry it
 * registered with "lease" liveness. A handle that becomes unreachable without close() is
 * closed by its finalizer — so keep a reference for as long as your entries should stay.
 */
class Registry {
  /**
   * @param {string | {path?: string, lib?: string}} [options] the registry file (default:
   *   $PEER_REGISTRY_PATH, else ~/.peer-plan/servers.json), and optionally the library file.
   */
  constructor(options) {
    const { path: registryPath, lib } =
      options !== null && typeof options === 'object' ? options : { path: options };
    loadLibrary(lib);
    this._handle = native.open(registryPath ?? null);
    this.path = registryPath ?? null;
  }

  /** Closes the handle (idempotent). Later calls throw PEERREG_ECLOSED. */
  close() {
    native.close(this._handle);
  }

  /** True once close() was called. */
  get closed() {
    return native.isClosed(this._handle);
  }

  /** Registers (or re-registers) one server; returns the entry as stored, defaults filled in. */
  register(entry) {
    return JSON.parse(native.register(this._handle, jsonArgument(entry)));
  }

  /** Removes the entry `id`. */
  unregister(id) {
    native.unregister(this._handle, id);
  }

  /** The live entry `id`; throws PEERREG_ENOTFOUND when missing or dead. */
  get(id) {
    return JSON.parse(native.get(this._handle, id));
  }

  /**
   * The live entries, optionally filtered ({healthy, status, transport, tool, prompt, resource,
   * scope}); {scope: 'cluster'} adds the other machines' entries, each with `node`, after the
   * local ones (docs/CLUSTER.md).
   */
  list(filter) {
    return this.listWithGeneration(filter).servers;
  }

  /** The live entries together with the file generation they were read from. */
  listWithGeneration(filter) {
    return JSON.parse(native.list(this._handle, jsonArgument(filter)));
  }

  /**
   * The server for `name` of capability `kind` (kinds.TOOL, kinds.RESOURCE, kinds.PROMPT).
   * options.scope: 'local' (the default) or 'cluster', which also considers the other
   * machines' servers (docs/CLUSTER.md): health first, then, at equal health, a local server
   * over a remote one and a fresh remote one over a stale one. A remote result has `node`.
   * Any other scope throws PEERREG_EINVAL. 'cluster' needs libpeerregistry >= 0.2.0.
   */
  resolve(kind, name, options) {
    return JSON.parse(native.resolve(this._handle, kind, name, resolveScope(options)));
  }

  /** The server for a tool: "server.tool" (qualified) or "tool"; options as for resolve(). */
  resolveTool(name, options) {
    return this.resolve(kinds.TOOL, name, options);
  }

  /** The server for a resource URI (exact declaration, else the longest declared prefix). */
  resolveResource(uri, options) {
    return this.resolve(kinds.RESOURCE, uri, options);
  }

  /** The server for a prompt: "server.prompt" (qualified) or "prompt". */
  resolvePrompt(name, options) {
    return this.resolve(kinds.PROMPT, name, options);
  }

  /** Records health: 'HEALTHY' | 'DEGRADED' | 'DOWN' | 'UNKNOWN' or a health.* number. */
  setHealth(id, status, message) {
    native.setHealth(this._handle, id, healthStatus(status), message ?? null);
  }

  /** Sets lastSeen of `id` to now (keeps "ttl" entries alive). */
  heartbeat(id) {
    native.heartbeat(this._handle, id);
  }

  /**
   * Checks `id` now by its transport, as peerreg_probe does (MCP over HTTP for http/sse, a TCP
   * connect for ws; include/peer_registry.h says exactly what) and records the outcome: success makes it HEALTHY; failures count up in
   * health.consecutiveFailures, DEGRADED after 1 and DOWN after 3. A failed probe is recorded,
   * not thrown. Resolves with the entry as stored after the probe; rejects with
   * PEERREG_ENOTFOUND when there is no live entry `id`. The wait (up to `timeoutMs`; absent,
   * 0 or less: the library's default, 2000) happens off the event loop.
   */
  async probe(id, options) {
    return this.promises.probe(id, options);
  }

  /** Removes dead entries and orphaned leases now; returns how many entries were removed. */
  prune() {
    return native.prune(this._handle);
  }

  /**
   * Starts watching for changes; see Watch. With a filter (any list() filter, an object or its
   * JSON text) only the entries it selects are watched, and one that stops matching is
   * 'removed'; {scope: 'cluster'} watches the other machines' entries too (each identified by
   * `node` and `id`). A bad filter throws PEERREG_EINVAL. A filter needs libpeerregistry >= 0.2.0.
   */
  watch(filter) {
    return new Watch(this._handle, filter);
  }

  /**
   * The same handle with every call returning a promise, run on libuv's thread pool (like
   * fs.promises): see RegistryPromises. One object per registry.
   */
  get promises() {
    if (this._promises === undefined) this._promises = new RegistryPromises(this);
    return this._promises;
  }
}

if (typeof Symbol.dispose === 'symbol') {
  Registry.prototype[Symbol.dispose] = Registry.prototype.close;
}

const ops = native.asyncOps;

/**
 * A registry whose calls return promises and never block the event loop: each runs on libuv's
 * thread pool (as fs.promises does), so a write waiting for another process's lock (up to 5 s,
 * or $PEER_REGISTRY_LOCK_TIMEOUT_MS) or a probe waiting on the network leaves timers, sockets
 * and the rest of the program running. Made by require('peer-registry/promises').open() or
 * registry.promises; shares its handle (and its leases) with the synchronous Registry `sync`.
 * Bad arguments reject (never throw); results are what the synchronous methods return.
 */
class RegistryPromises {
  constructor(registry) {
    if (!(registry instanceof Registry)) {
      const error = new TypeError('RegistryPromises is made by open() or registry.promises');
      error.code = 'ERR_INVALID_ARG_TYPE';
      throw error;
    }
    /** The synchronous Registry with the same handle. */
    this.sync = registry;
  }

  /** The path given when opening (null: the library's default). */
  get path() {
    return this.sync.path;
  }

  get closed() {
    return this.sync.closed;
  }

  /** Closes the handle (idempotent); unregisters this handle's lease entries. */
  async close() {
    this.sync.close();
  }

  async _call(op, text, number, message) {
    return native.callAsync(op, this.sync._handle, text, number, message);
  }

  async _json(op, text, number) {
    return JSON.parse(await this._call(op, text, number));
  }

  /** Registers (or re-registers) one server; resolves with the entry as stored. */
  async register(entry) {
    return this._json(ops.register, jsonArgument(entry));
  }

  async unregister(id) {
    await this._call(ops.unregister, id);
  }

  async get(id) {
    return this._json(ops.get, id);
  }

  async list(filter) {
    return (await this.listWithGeneration(filter)).servers;
  }

  async listWithGeneration(filter) {
    return this._json(ops.list, jsonArgument(filter));
  }

  /** See Registry.resolve (options.scope: 'local' or 'cluster'). */
  async resolve(kind, name, options) {
    return JSON.parse(await this._call(ops.resolve, name, kind, resolveScope(options)));
  }

  async resolveTool(name, options) {
    return this.resolve(kinds.TOOL, name, options);
  }

  async resolveResource(uri, options) {
    return this.resolve(kinds.RESOURCE, uri, options);
  }

  async resolvePrompt(name, options) {
    return this.resolve(kinds.PROMPT, name, options);
  }

  async setHealth(id, status, message) {
    await this._call(ops.setHealth, id, healthStatus(status), message ?? null);
  }

  async heartbeat(id) {
    await this._call(ops.heartbeat, id);
  }

  /** Resolves with how many dead entries were removed. */
  async prune() {
    return this._call(ops.prune);
  }

  /** See Registry.probe. */
  async probe(id, { timeoutMs = 0 } = {}) {
    return this._json(ops.probe, id, timeoutMs);
  }

  /**
   * A Watch, optionally filtered as Registry.watch(filter) (events arrive on the event loop
   * already; nothing here blocks, so it returns the watch itself and throws on a bad filter).
   */
  watch(filter) {
    return this.sync.watch(filter);
  }
}

if (typeof Symbol.asyncDispose === 'symbol') {
  RegistryPromises.prototype[Symbol.asyncDispose] = RegistryPromises.prototype.close;
}

/**
 * Changes to the registry, delivered on the event loop (libuv polls the library's watch fd).
 * Events: 'change' (the whole event {generation, added, removed, changed}), then 'added',
 * 'removed', 'changed' with one entry each (and the whole event as second argument), and
 * 'error' (a PeerRegistryError). The first event is a change after watch(), not a replay.
 * An open watch keeps the process alive, like a server; unref() lets the process exit
 * anyway, and close() stops it for good. Made by Registry.watch(filter).
 */
class Watch extends EventEmitter {
  constructor(registryHandle, filter) {
    super();
    this._handle = native.watchOpen(
      registryHandle,
      (error, json) => this._deliver(error, json),
      jsonArgument(filter) ?? null,
    );
  }

  _deliver(error, json) {
    if (error) {
      this.emit('error', error);
      return;
    }
    const event = JSON.parse(json);
    this.emit('change', event);
    for (const kind of ['added', 'removed', 'changed']) {
      for (const entry of event[kind] ?? []) {
        if (this.closed) return;
        this.emit(kind, entry, event);
      }
    }
  }

  /** Stops watching (idempotent): no more events, and the process is no longer held. */
  close() {
    if (this.closed) return;
    native.watchClose(this._handle);
    this.emit('close');
  }

  /** True once close() was called. */
  get closed() {
    return native.watchIsClosed(this._handle);
  }

  /** Lets the process exit while this watch is open (like timer.unref()). */
  unref() {
    native.watchRef(this._handle, false);
    return this;
  }

  /** Undoes unref(): the open watch keeps the process alive again (the default). */
  ref() {
    native.watchRef(this._handle, true);
    return this;
  }
}

if (typeof Symbol.dispose === 'symbol') {
  Watch.prototype[Symbol.dispose] = Watch.prototype.close;
}

/** Opens a registry: open(), open('/path/servers.json') or open({path, lib}). */
function open(options) {
  return new Registry(options);
}

/**
 * The promise API (require('peer-registry/promises')): open() resolves with a RegistryPromises.
 * Opening itself is quick (it creates the directory and checks its permissions; no lock).
 */
const promises = Object.freeze({
  async open(options) {
    return new Registry(options).promises;
  },
  Registry: RegistryPromises,
});

module.exports = {
  open,
  Registry,
  RegistryPromises,
  promises,
  Watch,
  PeerRegistryError,
  loadLibrary,
  libraryPath,
  version,
  versionNumber,
  errstr,
  codes,
  kinds,
  health,
  HEADER_VERSION: native.HEADER_VERSION,
  HEADER_VERSION_NUMBER: native.HEADER_VERSION_NUMBER,
};
// `import peerRegistry from 'peer-registry'` and TypeScript's default import see the same object.
module.exports.default = module.exports;
