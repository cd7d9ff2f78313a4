// ESM entry point: the same module as index.js (one addon instance, one loaded library).
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const peerRegistry = require('./index.js');

export const {
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
  HEADER_VERSION,
  HEADER_VERSION_NUMBER,
} = peerRegistry;

export default peerRegistry;
