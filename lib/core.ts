/**
 * The shared internals of one client: resolved options, the store, the notifier, readiness.
 * @internal
 */
import mongoose, { type Connection } from 'mongoose';
import { TypedEmitter } from './events';
import { Notifier } from './notify';
import type { ResolvedClientOptions } from './options';
import { ServerClock } from './server-clock';
import { createStore, type Store } from './store';
import type { StoreContext } from './store/context';
import { DatabaseError } from './errors';
import { toDatabaseError } from './store/db-errors';
import { ensureIndexes, getCollections, getModels, type Models } from './store/models';
import { MONGODB_RULES, type DataRules } from './validation';

export class Core {
  readonly events = new TypedEmitter();
  readonly notify = new Notifier(this.events);
  readonly connection: Connection;
  readonly ownsConnection: boolean;
  private compiled: { models: Models; ctx: StoreContext; store: Store; raw: Store } | null = null;
  /** The database server's clock (null: `serverClock: false`, `opts.clock` is used as is). */
  readonly serverClock: ServerClock | null;
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
    this.serverClock = opts.serverClock
      ? new ServerClock(opts.clock, () => this.readServerTime(), { intervalMs: opts.clockSyncIntervalMs })
      : null;
  }

  /** `hello.localTime`, once the connection is open (the clock offset is measured on it). */
  private async readServerTime(): Promise<Date | null> {
    if (this.connection.readyState !== 1 || !this.connection.db) await connected(this.connection);
    return this.compiledStore.raw.serverLocalTime();
  }

  /**
   * Resolves once the server clock offset was measured (at once if it was, or if `serverClock`
   * is off); a failure is retried on the next call. Then starts the periodic re-measurement.
   */
  clockReady(): Promise<void> {
    const clock = this.serverClock;
    if (!clock || clock.offset()) return Promise.resolve();
    return clock.ready().then(() => {
      // Only now, not in the constructor: the package's default client touches nothing on import.
      watchReconnects(this.connection, clock);
      clock.start();
    });
  }

  /** Stops the clock's re-measurement timer (`client.close()`). */
  close(): void {
    this.serverClock?.stop();
  }

  /**
   * The models are compiled on first use, not when the client is made: importing the package
   * (whose default `client` uses the default mongoose connection) registers nothing.
   */
  private get compiledStore(): { models: Models; ctx: StoreContext; store: Store; raw: Store } {
    if (!this.compiled) {
      const models = getModels(this.connection, this.opts.collectionPrefix);
      const ctx: StoreContext = {
        cols: getCollections(models),
        writeConcern: this.opts.writeConcern,
        clock: this.serverClock ?? this.opts.clock,
        failureHistoryLimit: this.opts.failureHistoryLimit,
        db: () => this.connection.db,
      };
      const raw = createStore(ctx);
      this.compiled = { models, ctx, raw, store: this.serverClock ? onServerTime(raw, () => this.clockReady()) : raw };
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
    if (!this.opts.autoIndex) return this.clockReady();
    return this.createIndexes().then(() => this.clockReady());
  }

  /** Creates the indexes (idempotent; memoized once it succeeded). */
  createIndexes(): Promise<void> {
    if (!this.readyPromise) {
      // A connection this client opened reports a failed connect (host, cause) at once, instead
      // of after mongoose's command-buffering timeout.
      const connected = this.ownsConnection ? this.connection.asPromise().then(() => undefined) : Promise.resolve();
      this.readyPromise = connected
        .then(() => ensureIndexes(this.compiledStore.models))
        // Tasks stored before priorities existed get `priority: 0`, once per database (sequence.ts).
        .then(() => this.compiledStore.store.backfillPriority())
        .then(() => undefined)
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

/** Store operations that need no clock (the offset is measured with one of them). */
const CLOCKLESS = new Set<string>(['serverTime', 'serverLocalTime', 'ping', 'dataRules']);

/**
 * The store, each operation waiting for the first clock measurement: no write (a claim, an
 * expiry, a stored time) is ever computed on the unmeasured clock, whatever path reached it.
 * Once measured, the operations are called directly.
 */
function onServerTime(raw: Store, clockReady: () => Promise<void>): Store {
  const store: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(raw) as Array<[string, (...a: unknown[]) => Promise<unknown>]>) {
    store[name] = CLOCKLESS.has(name) ? fn : (...args: unknown[]) => clockReady().then(() => fn(...args));
  }
  return Object.freeze(store) as Store;
}

/** Resolves when `connection` is open; a transient DatabaseError after 10 s (mongoose's buffering timeout). */
function connected(connection: Connection): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (): void => {
      clearTimeout(timer);
      connection.off('connected', done);
      resolve();
    };
    const timer = setTimeout(() => {
      connection.off('connected', done);
      reject(new DatabaseError('the client is not connected', { op: 'serverClock' }, undefined, true));
    }, 10_000);
    timer.unref?.();
    connection.on('connected', done);
  });
}

/**
 * One `reconnected` listener per connection, however many clients share it: re-measures the
 * offset of every live client's clock (the server may be another node, with another clock).
 */
const watched = new WeakMap<Connection, Set<WeakRef<ServerClock>>>();
function watchReconnects(connection: Connection, clock: ServerClock): void {
  let clocks = watched.get(connection);
  if (!clocks) {
    const set = new Set<WeakRef<ServerClock>>();
    clocks = set;
    watched.set(connection, set);
    connection.on('reconnected', () => {
      for (const ref of set) {
        const c = ref.deref();
        if (c) c.resync();
        else set.delete(ref);
      }
    });
  }
  for (const ref of clocks) if (ref.deref() === clock) return;
  clocks.add(new WeakRef(clock));
}
