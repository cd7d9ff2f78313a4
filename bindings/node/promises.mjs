// ESM entry point of peer-registry/promises: the same objects as promises.js.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const promises = require('./promises.js');

export const { open, Registry, PeerRegistryError, codes, kinds, health } = promises;
export default promises;
