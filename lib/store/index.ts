/**
 * The store: every database operation of the library, each a named, typed function of the
 * modules in this folder, bound to one client's context. Nothing outside `lib/store/` touches a
 * collection. Every driver error leaves through here as a `DatabaseError` with its `transient`
 * flag set once (db-errors.ts); our own errors (`LeaseLostError`, `InvalidTransitionError`, …)
 * pass unchanged.
 * @internal
 */
import type { StoreContext } from './context';
import { toDatabaseError } from './db-errors';
import { claimNext } from './claims';
import { bulkAction, deleteContainer, finalizeContainer, setContainerMetadata } from './containers';
import { reconcileContainer } from './counters';
import { readFeed } from './feed';
import { addTasks, getOrCreateContainer } from './inserts';
import { setKeyLimit } from './keys';
import {
  allTasks,
  containerMetadata,
  containerNames,
  earliestLeaseExpiry,
  earliestReadyAt,
  existingTasks,
  findContainer,
  findContainerById,
  findOrphans,
  findTask,
  listContainers,
  listTasks,
  ping,
  serverTime,
  dataRules,
  summarize,
  taskStates,
  totals,
  unfinishedTaskNames,
} from './queries';
import { finalizeIfBlocked, sweep } from './sweep';
import { pruneTombstones } from './tombstones';
import {
  cancelTask,
  deleteTask,
  failTask,
  heartbeat,
  patchTask,
  releaseTask,
  resetTask,
  retryTask,
  skipTask,
  succeedTask,
} from './transitions';

const OPERATIONS = {
  // containers
  getOrCreateContainer,
  findContainer,
  findContainerById,
  summarize,
  listContainers,
  containerNames,
  containerMetadata,
  setContainerMetadata,
  deleteContainer,
  finalizeContainer,
  bulkAction,
  reconcileContainer,
  totals,
  // tasks: reads
  findTask,
  allTasks,
  listTasks,
  taskStates,
  existingTasks,
  unfinishedTaskNames,
  earliestLeaseExpiry,
  earliestReadyAt,
  findOrphans,
  // tasks: inserts and transitions
  addTasks,
  claimNext,
  heartbeat,
  succeedTask,
  failTask,
  releaseTask,
  retryTask,
  cancelTask,
  skipTask,
  resetTask,
  patchTask,
  deleteTask,
  // recovery, keys, feed
  sweep,
  finalizeIfBlocked,
  setKeyLimit,
  readFeed,
  pruneTombstones,
  serverTime,
  ping,
  dataRules,
} as const;

type Bound<F> = F extends (ctx: StoreContext, ...args: infer A) => Promise<infer R> ? (...args: A) => Promise<R> : never;

/** The store operations of one client (see {@link OPERATIONS}), bound to its context. */
export type Store = { readonly [K in keyof typeof OPERATIONS]: Bound<(typeof OPERATIONS)[K]> };
export type StoreOperation = keyof typeof OPERATIONS;

/** Binds every operation to `ctx`, wrapping driver errors into `DatabaseError` (named after the operation). */
export function createStore(ctx: StoreContext): Store {
  const store: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(OPERATIONS) as Array<[string, (ctx: StoreContext, ...a: unknown[]) => Promise<unknown>]>) {
    store[name] = async (...args: unknown[]) => {
      try {
        return await fn(ctx, ...args);
      } catch (err) {
        throw toDatabaseError(err, name);
      }
    };
  }
  return Object.freeze(store) as Store;
}

export type { TransitionResult, HeldTask, ProgressPatch, FailureInput, NamedResult } from './transitions';
export type { BulkResult } from './containers';
export type { CounterResult } from './counters';
export type { SweepResult } from './sweep';
export type { ClaimOutcome, ResolvedClaim } from './claims';
export type { FeedPosition, FeedScope, FeedRead } from './feed';
export type { ContainerDoc, TaskDoc } from './documents';
export type { TombstoneDoc } from './models';
