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
  readonly ctx: StoreContext;
  readonly connection: Connection;
  readonly ownsConnection: boolean;
  private readonly models: Models;
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
    this.models = getModels(this.connection, opts.collectionPrefix);
    this.ctx = {
      cols: getCollections(this.models),
      writeConcern: opts.writeConcern,
      clock: opts.clock,
      failureHistoryLimit: opts.failureHistoryLimit,
    };
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
      this.readyPromise = connected.then(() => ensureIndexes(this.models)).catch((err: Error) => {
        this.readyPromise = null;
        throw new DatabaseError(`cannot reach the database: ${err.message}`, { op: 'ensureIndexes' }, err);
      });
    }
    return this.readyPromise;
  }

  emit(kind: TransitionKind, r: TransitionResult): void {
    emitTransition(this.events, kind, r);
  }
}
