/**
 * `persistent-task-status/testing`: a MongoDB-compatible server for tests, demos and examples
 * (an external URI, mongodb-memory-server if installed, or FerretDB built from tools/ferretdb).
 * A separate entry so that the library entry never loads the launcher; mongodb-memory-server is an
 * optional peer dependency loaded only when {@link startEmbeddedServer} tries it.
 */
export {
  startEmbeddedServer,
  startFerretDB,
  type EmbeddedServer,
  type EmbeddedServerKind,
  type EmbeddedServerOptions,
  type FerretDBOptions,
  type FerretDBServer,
} from './embedded';
export { probeAtomicity, type AtomicityProbe } from './store/atomicity';
