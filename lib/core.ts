/**
 * The shared internals of one client: resolved options, the store, the notifier, readiness.
 * @internal
 */
import mongoose, { type Connection } from 'mongoose';
import { TypedEmitter } from './events';
import { Notifier } from './notify';
import type { ResolvedClientOptions } from './options';
import { createStore, type Store } from './store';
import type { StoreContext } from './store/context';
import { toDatabaseError } from './store/db-errors';
import { ensureIndexes, getCollections, getModels, type Models } from './store/models';
import { MONGODB_RULES, type DataRules } from './validation';

export class Core {
  readonly events = new TypedEmitter();
  readonly notify = new Notifier(this.events);
  readonly connection: Connection;
  readonly ownsConnection: boolean;
  private compiled: { models: Models; ctx: StoreContext; store: Store } | null = null;
  private readyPromise: Promise<void> | null = null;
  private rulesPromise: Promise<DataRules> | null = null;

  constructor(readonly opts: ResolvedClientOptions) {
    if (opts.connection) {
      this.connection = opts.connection;
      this.ownsConnection = false;
    } else if (opts.uri) {
      this.connection = mongoose.createConnection(opts.uri);
      this.ownsConnection = true;
    } else {
      this.connection = mongoose.connection;
      this.ownsConnection = false;
    }
  }

  /**
   * The models are compiled on first use, not when the client is made: importing the package
   * (whose default `client` uses the default mongoose connection) registers nothing.
   */
  private get compiledStore(): { models: Models; ctx: StoreContext; store: Store } {
    if (!this.compiled) {
      const models = getModels(this.connection, this.opts.collectionPrefix);
      const ctx: StoreContext = {
        cols: getCollections(models),
        writeConcern: this.opts.writeConcern,
        clock: this.opts.clock,
        failureHistoryLimit: this.opts.failureHistoryLimit,
        db: () => this.connection.db,
      };
      this.compiled = { models, ctx, store: createStore(ctx) };
    }
    return this.compiled;
  }

  /** Every database operation, bound to this client (the only way to the collections). */
  get store(): Store {
    return this.compiledStore.store;
  }

  /** The store context (clock, write concern): for the store and for specs. */
  get ctx(): StoreContext {
    return this.compiledStore.ctx;
  }

  /**
   * What the server can store of user data, asked once per client (`buildInfo`) and kept.
   * Callers pass it to `validateData`, so data the server would refuse is a ValidationError
   * with nothing written. Not connected yet (or the probe failed): MongoDB's rules, asked again
   * next time; the HTTP layer maps a refusal by the server to a 400 all the same.
   */
  dataRules(): Promise<DataRules> {
    if (!this.rulesPromise) {
      const connecting = this.connection.readyState === 2 ? this.connection.asPromise().then(() => undefined, () => undefined) : Promise.resolve();
      this.rulesPromise = connecting.then(() => this.store.dataRules()).catch(() => {
        this.rulesPromise = null;
        return MONGODB_RULES;
      });
    }
    return this.rulesPromise;
  }

  /** Creates the indexes once (on first use, unless `autoIndex` is false). A failure is retried on the next call. */
  ready(): Promise<void> {
    if (!this.opts.autoIndex) return Promise.resolve();
    return this.createIndexes();
  }

  /** Creates the indexes (idempotent; memoized once it succeeded). */
  createIndexes(): Promise<void> {
    if (!this.readyPromise) {
      // A connection this client opened reports a failed connect (host, cause) at once, instead
      // of after mongoose's command-buffering timeout.
      const connected = this.ownsConnection ? this.connection.asPromise().then(() => undefined) : Promise.resolve();
      this.readyPromise = connected
        .then(() => ensureIndexes(this.compiledStore.models))
        .catch((err: Error) => {
          this.readyPromise = null;
          const e = toDatabaseError(err, 'ensureIndexes');
          e.message = `cannot reach the database: ${err.message}`;
          throw e;
        });
    }
    return this.readyPromise;
  }
}
