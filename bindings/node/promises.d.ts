// Types for peer-registry/promises: the promise API, in the style of fs/promises.

import { OpenOptions, RegistryPromises } from './index';

export type {
  ServerEntry, NewServerEntry, ListFilter, ListResult, ProbeOptions, HealthStatus, OpenOptions,
  ResolveOptions, Scope,
} from './index';
export { PeerRegistryError, codes, kinds, health } from './index';

/** Opens a registry whose calls return promises and run on libuv's thread pool. */
export function open(options?: string | OpenOptions): Promise<RegistryPromises>;
/** The class of what open() resolves with (RegistryPromises in the main module). */
export { RegistryPromises as Registry } from './index';

declare const promises: {
  open: typeof open;
  Registry: typeof RegistryPromises;
  PeerRegistryError: typeof import('./index').PeerRegistryError;
  codes: typeof import('./index').codes;
  kinds: typeof import('./index').kinds;
  health: typeof import('./index').health;
};
export default promises;
