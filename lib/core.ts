/**
 * The shared internals of one client: resolved options, store context, events, readiness.
 * @internal
 */
import mongoose, { type Connection } from 'mongoose';
import { DatabaseError } from './errors';
import { TypedEmitter } from './events';
import { emitTransition, type TransitionKind } from './notify';
import type { ResolvedClientOptions } from './options';
import type { StoreContext } from './store/context';
import { ensureIndexes, getCollections, getModels, type Models } from './store/models';
import type { TransitionResult } from './store/transitions';

export class Core {
  readonly events = new TypedEmitter();
  readonly connection: Connection;
  readonly ownsConnection: boolean;
  private compiled: { models: Models; ctx: StoreContext } | null = null;
  private readyPromise: Promise<void> | null = null;

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
  private get store(): { models: Models; ctx: StoreContext } {
    if (!this.compiled) {
      const models = getModels(this.connection, this.opts.collectionPrefix);
      this.compiled = {
        models,
        ctx: {
          cols: getCollections(models),
          writeConcern: this.opts.writeConcern,
          clock: this.opts.clock,
          failureHistoryLimit: this.opts.failureHistoryLimit,
        },
      };
    }
    return this.compiled;
  }

  get ctx(): StoreContext {
    return this.store.ctx;
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
      this.readyPromise = connected.then(() => ensureIndexes(this.store.models)).catch((err: Error) => {
        this.readyPromise = null;
        throw new DatabaseError(`cannot reach the database: ${err.message}`, { op: 'ensureIndexes' }, err);
      });
    }
    return this.readyPromise;
  }

  /** Whether the last database call reported through {@link dbUnavailable} failed. */
  private dbDown = false;

  /**
   * Reports a transient database failure: `db:unavailable` once per outage (not on every retry);
   * the next call of this client's runners or sweeper that succeeds reports `db:available`.
   */
  dbUnavailable(op: string, error: Error): void {
    if (this.dbDown) return;
    this.dbDown = true;
    this.events.emit('db:unavailable', { error, op });
  }

  /** Reports a database call that succeeded; emits `db:available` once after an outage. */
  dbAvailable(op: string): void {
    if (!this.dbDown) return;
    this.dbDown = false;
    this.events.emit('db:available', { op });
  }

  emit(kind: TransitionKind, r: TransitionResult): void {
    emitTransition(this.events, kind, r);
  }
}
