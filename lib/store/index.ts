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
import { claimNext, claimSeveral } from './claims';
import { bulkAction, deleteContainer, finalizeContainer, setContainerMetadata } from './containers';
import { applyCarry, reconcileContainer } from './counters';
import { childCounts, heldBackParents } from './children';
import { readFeed } from './feed';
import { addTasks, getOrCreateContainer } from './inserts';
import { setPaused } from './pause';
import { setKeyLimit } from './keys';
import { backfillPriority } from './sequence';
import { readInputs } from './inputs';
import { appendLogs, deleteLogs, readLogs } from './logs';
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
  serverLocalTime,
  dataRules,
  summarize,
  taskStates,
  totals,
  unfinishedTaskNames,
} from './queries';
import { markSucceeded, planRerun, rerunFrom } from './rerun';
import { spawnBatch, spawnCandidates } from './spawn';
import { finalizeIfBlocked, haltedCleanups, sweep } from './sweep';
import {
  advanceAlertCursor,
  alertState,
  deleteAlertRule,
  dueDeliveries,
  findAlertRule,
  insertAlertRule,
  insertDelivery,
  listAlertRules,
  listDeliveries,
  pruneDeliveries,
  readAlertSources,
  recordAttempt,
  releaseAlertLease,
  setAlertRuleEnabled,
  startAttempt,
  takeAlertLease,
} from './alerts';
import { pruneTombstones } from './tombstones';
import { deleteRetentionPolicy, finishPurges, listRetentionPolicies, markRunsPruned, purgeContainer, retentionCandidates, saveRetentionPolicy } from './retention';
import { runDurations } from './eta';
import {
  advanceSchedule,
  containerStatuses,
  deleteSchedule,
  findSchedule,
  insertRun,
  listRuns,
  listSchedules,
  moveRun,
  openRuns,
  previousDefinedRun,
  recentSkipped,
  saveSchedule,
  setSchedulePaused,
} from './schedules';
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
  timeoutTask,
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
  applyCarry,
  setPaused,
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
  childCounts,
  heldBackParents,
  spawnCandidates,
  // tasks: inserts and transitions
  addTasks,
  spawnBatch,
  claimNext,
  claimSeveral,
  heartbeat,
  succeedTask,
  failTask,
  timeoutTask,
  releaseTask,
  retryTask,
  cancelTask,
  skipTask,
  resetTask,
  patchTask,
  deleteTask,
  // re-run from a step, mark succeeded by hand
  planRerun,
  rerunFrom,
  markSucceeded,
  // recovery, keys, feed
  sweep,
  finalizeIfBlocked,
  haltedCleanups,
  setKeyLimit,
  backfillPriority,
  readInputs,
  readFeed,
  pruneTombstones,
  // step logs
  appendLogs,
  readLogs,
  deleteLogs,
  // schedules and pipeline runs
  saveSchedule,
  findSchedule,
  listSchedules,
  deleteSchedule,
  setSchedulePaused,
  advanceSchedule,
  insertRun,
  moveRun,
  openRuns,
  containerStatuses,
  listRuns,
  previousDefinedRun,
  runDurations,
  recentSkipped,
  // alerts (alerts.ts)
  insertAlertRule,
  listAlertRules,
  findAlertRule,
  deleteAlertRule,
  setAlertRuleEnabled,
  alertState,
  takeAlertLease,
  releaseAlertLease,
  advanceAlertCursor,
  readAlertSources,
  insertDelivery,
  dueDeliveries,
  startAttempt,
  recordAttempt,
  listDeliveries,
  pruneDeliveries,
  // retention (retention.ts)
  saveRetentionPolicy,
  listRetentionPolicies,
  deleteRetentionPolicy,
  retentionCandidates,
  purgeContainer,
  markRunsPruned,
  finishPurges,
  serverTime,
  serverLocalTime,
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
export type { StorePlan, RerunOutcome } from './rerun';
export type { CounterCarry, CounterResult } from './counters';
export type { PauseResult } from './pause';
export type { SweepResult } from './sweep';
export type { ClaimOutcome, ClaimsOutcome, ResolvedClaim } from './claims';
export type { FeedPosition, FeedScope, FeedRead } from './feed';
export type { ContainerDoc, TaskDoc } from './documents';
export type { TombstoneDoc } from './models';
export type { LogLineDoc, StoredLogLine, StoredLogPage } from './logs';
export type { RunDoc, RunKind, RunStatus, ScheduleDoc } from './schedule-docs';
export type { RetentionCandidate } from './retention';
export type { RetentionPolicyDoc, RetentionRules } from './retention-docs';
export type { AlertDeliveryDoc, AlertRuleDoc, AlertStateDoc, DeliveryAttemptDoc, AlertSources, NewDelivery } from './alerts';
