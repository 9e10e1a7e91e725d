/**
 * Mongoose schemas of the collections. They declare the shapes and the indexes (the documented
 * contract); the transitions write through the models' native collections so that every state
 * change is exactly one driver command.
 * @internal
 */
import mongoose, { type Connection, type Model, Schema } from 'mongoose';
import type { Collection, Timestamp } from 'mongodb';
import type { ContainerDoc, TaskDoc } from './documents';
import type { RunDoc, ScheduleDoc } from './schedule-docs';
import type { LogChunkDoc, LogCounterDoc } from './logs';
import { retentionSchema, type RetentionPolicyDoc } from './retention-docs';
import { alertDeliverySchema, alertRuleSchema, alertStateSchema, type AlertDeliveryDoc, type AlertRuleDoc, type AlertStateDoc } from './alert-docs';

const Mixed = Schema.Types.Mixed;
const countsShape = { pending: Number, running: Number, succeeded: Number, failed: Number, skipped: Number, cancelled: Number };

function containerSchema(): Schema {
  const s = new Schema(
    {
      name: { type: String, required: true },
      status: { type: String, required: true },
      failurePolicy: String,
      metadata: Mixed,
      counts: countsShape,
      weights: countsShape,
      total: Number,
      weightTotal: Number,
      progressSum: Number,
      taskTimeoutMs: Number,
      taskStallMs: Number,
      createdAt: Date,
      updatedAt: Date,
      startedAt: Date,
      endedAt: Date,
      rev: Number,
      changedAt: Schema.Types.Mixed,
      paused: Boolean,
      pausedAt: Date,
      pausedBy: String,
      pauseSeq: Number,
      pauseUnsynced: Schema.Types.ObjectId,
    },
    { autoIndex: false, autoCreate: false, versionKey: false, strict: true, minimize: false },
  );
  s.index({ name: 1 }, { unique: true, name: 'name_unique' });
  s.index({ status: 1, _id: -1 }, { name: 'status_id' });
  s.index({ changedAt: 1 }, { name: 'changedAt' });
  // Retention (retention.ts): finished containers of a status by finish time.
  s.index({ status: 1, endedAt: 1 }, { name: 'status_endedAt' });
  // The sweep (holds.ts): containers whose pause/resume has not finished its task write.
  s.index({ pauseUnsynced: 1 }, { name: 'pauseUnsynced', sparse: true });
  return s;
}

function taskSchema(): Schema {
  const s = new Schema(
    {
      containerId: { type: Schema.Types.ObjectId, required: true },
      container: String,
      name: { type: String, required: true },
      state: { type: String, required: true },
      dependsOn: [String],
      waitingOn: [String],
      hasDependents: Boolean,
      runWhen: String,
      hasCleanupDependents: Boolean,
      parent: String,
      priority: Number,
      seq: Number,
      spawned: Boolean,
      weight: Number,
      percentageComplete: Number,
      statusText: String,
      taskData: Mixed,
      processingData: Mixed,
      result: Mixed,
      invokeCount: Number,
      attempts: Number,
      maxRetries: Number,
      retryDelayMs: Number,
      backoff: String,
      maxRetryDelayMs: Number,
      timeoutMs: Number,
      stallMs: Number,
      failures: [Mixed],
      failureCount: Number,
      lease: Mixed,
      fence: Number,
      key: String,
      runAfter: Date,
      createdAt: Date,
      updatedAt: Date,
      startedAt: Date,
      lastInvokedAt: Date,
      unblockedAt: Date,
      endedAt: Date,
      durationMs: Number,
      rev: Number,
      changedAt: Schema.Types.Mixed,
      pause: Number,
    },
    { autoIndex: false, autoCreate: false, versionKey: false, strict: true, minimize: false },
  );
  s.index({ containerId: 1, name: 1 }, { unique: true, name: 'container_name_unique' });
  s.index({ containerId: 1, state: 1, _id: 1 }, { name: 'container_state_id' });
  // The claim order (filters.ts CLAIM_ORDER) after an equality on the container or on the key.
  s.index({ containerId: 1, state: 1, priority: -1, seq: 1, _id: 1 }, { name: 'container_state_priority_seq' });
  s.index({ state: 1, key: 1, priority: -1, seq: 1, _id: 1 }, { name: 'state_key_priority_seq' });
  s.index({ state: 1, 'lease.expiresAt': 1 }, { name: 'state_leaseExpiry' });
  // The sweep's query of attempts past their deadline (deadlines.ts); tasks without one have no lease.deadline.
  s.index({ state: 1, 'lease.deadline': 1 }, { name: 'state_leaseDeadline' });
  s.index({ containerId: 1, waitingOn: 1 }, { name: 'container_waitingOn' });
  // Spawned children (spawn.ts, children.ts): "any child not done yet?" and pages of a parent's children.
  s.index({ containerId: 1, parent: 1, state: 1 }, { name: 'container_parent_state' });
  s.index({ containerId: 1, parent: 1, _id: 1 }, { name: 'container_parent_id' });
  s.index({ containerId: 1, changedAt: 1 }, { name: 'container_changedAt' });
  s.index({ changedAt: 1 }, { name: 'changedAt' });
  return s;
}

function keySlotSchema(): Schema {
  const s = new Schema(
    { _id: String, key: String, holder: Schema.Types.ObjectId, task: Schema.Types.ObjectId, token: Number, expiresAt: Date },
    { autoIndex: false, autoCreate: false, versionKey: false, strict: true },
  );
  s.index({ key: 1 }, { name: 'key' });
  return s;
}

function tombstoneSchema(): Schema {
  const s = new Schema(
    {
      _id: Schema.Types.ObjectId,
      kind: String,
      container: String,
      containerId: Schema.Types.ObjectId,
      task: String,
      deletedAt: Date,
      changedAt: Schema.Types.Mixed,
      purging: Boolean,
    },
    { autoIndex: false, autoCreate: false, versionKey: false, strict: true },
  );
  s.index({ changedAt: 1 }, { name: 'changedAt' });
  s.index({ container: 1, changedAt: 1 }, { name: 'container_changedAt' });
  s.index({ purging: 1 }, { name: 'purging', sparse: true });
  s.index({ deletedAt: 1 }, { name: 'deletedAt' });
  return s;
}

/**
 * A deletion, kept for the changes feed: `_id` is the deleted document's `_id`. A container's
 * tombstone stands for its tasks too (they are deleted with it, without tombstones of their own).
 */
export interface TombstoneDoc {
  _id: mongoose.Types.ObjectId;
  kind: 'task' | 'container';
  container: string;
  containerId: mongoose.Types.ObjectId;
  /** Task name (`kind: 'task'`), else null. */
  task: string | null;
  deletedAt: Date;
  changedAt: Timestamp;
}

/** The creation sequence (sequence.ts): `_id: 'tasks'`, `next` = the last number handed out. */
function sequenceSchema(): Schema {
  return new Schema({ _id: String, next: Number, priorityBackfilled: Boolean }, { autoIndex: false, autoCreate: false, versionKey: false });
}

/** A sequence counter (sequence.ts). */
export interface SequenceDoc {
  _id: string;
  next: number;
  /** Set once tasks stored without `priority` were given `priority: 0`. */
  priorityBackfilled?: boolean;
  /** The server's stamp of the last reservation (`$currentDate`), which a batch insert reuses (inserts.ts). */
  at?: Timestamp;
}

/** Schedules (schedules.ts): one per name. */
function scheduleSchema(): Schema {
  const s = new Schema(
    {
      _id: Schema.Types.ObjectId,
      name: String,
      pipeline: String,
      cron: String,
      timezone: String,
      overlap: String,
      catchupWindowMs: Number,
      jitterMs: Number,
      paused: Boolean,
      note: String,
      pauseOnFailure: Boolean,
      nextSlot: Date,
      nextFireAt: Date,
      createdAt: Date,
      updatedAt: Date,
      rev: Number,
    },
    { autoIndex: false, autoCreate: false, versionKey: false, strict: true },
  );
  s.index({ name: 1 }, { unique: true, name: 'name_unique' });
  s.index({ pipeline: 1 }, { name: 'pipeline' });
  return s;
}

/** Pipeline runs (schedules.ts): the unique {pipeline, slot} index is what fires each slot exactly once. */
function runSchema(): Schema {
  const s = new Schema(
    {
      _id: Schema.Types.ObjectId,
      pipeline: String,
      schedule: String,
      slot: Date,
      lastSlot: Date,
      count: Number,
      kind: String,
      status: String,
      reason: String,
      container: String,
      definitionHash: String,
      steps: [Mixed],
      durations: [Mixed],
      outcome: String,
      decidedAt: Date,
      startedAt: Date,
      finishedAt: Date,
      prunedAt: Date,
      updatedAt: Date,
    },
    { autoIndex: false, autoCreate: false, versionKey: false, strict: true },
  );
  s.index({ pipeline: 1, slot: 1 }, { unique: true, name: 'pipeline_slot_unique' });
  s.index({ pipeline: 1, status: 1, slot: 1 }, { name: 'pipeline_status_slot' });
  // The alert loop's missed-slot records (lib/store/alerts.ts readAlertSources), every pass.
  s.index({ status: 1, reason: 1, decidedAt: 1 }, { name: 'status_reason_decidedAt' });
  return s;
}

/** Step log chunks (logs.ts): lines `seq`…`end - 1` of one attempt of one task. */
function logSchema(): Schema {
  const s = new Schema(
    { taskId: Schema.Types.ObjectId, containerId: Schema.Types.ObjectId, attempt: Number, seq: Number, end: Number, lines: [Mixed], createdAt: Date },
    { autoIndex: false, autoCreate: false, versionKey: false, strict: true },
  );
  s.index({ taskId: 1, end: 1 }, { name: 'task_end' });
  s.index({ taskId: 1, attempt: 1, end: 1 }, { name: 'task_attempt_end' });
  s.index({ containerId: 1 }, { name: 'containerId' });
  return s;
}

/** Step log counters (logs.ts): `_id` is the task's `_id`. */
function logCounterSchema(): Schema {
  const s = new Schema(
    { _id: Schema.Types.ObjectId, containerId: Schema.Types.ObjectId, total: Number, attempts: Mixed, updatedAt: Date },
    { autoIndex: false, autoCreate: false, versionKey: false, strict: true },
  );
  s.index({ containerId: 1 }, { name: 'containerId' });
  return s;
}

function keyLimitSchema(): Schema {
  return new Schema({ _id: String, limit: Number, updatedAt: Date }, { autoIndex: false, autoCreate: false, versionKey: false });
}

/** One key slot: a task holding it counts against its key's concurrency limit until `expiresAt`. */
export interface KeySlotDoc {
  _id: string;
  key: string;
  holder: mongoose.Types.ObjectId | null;
  task: mongoose.Types.ObjectId | null;
  token: number | null;
  expiresAt: Date | null;
}

export interface KeyLimitDoc {
  _id: string;
  limit: number;
  updatedAt: Date;
}

export interface Models {
  containers: Model<unknown>;
  tasks: Model<unknown>;
  keySlots: Model<unknown>;
  keyLimits: Model<unknown>;
  tombstones: Model<unknown>;
  schedules: Model<unknown>;
  runs: Model<unknown>;
  sequences: Model<unknown>;
  alertRules: Model<unknown>;
  alertState: Model<unknown>;
  alertDeliveries: Model<unknown>;
  logs: Model<unknown>;
  logCounters: Model<unknown>;
  retention: Model<unknown>;
}

export interface Collections {
  containers: Collection<ContainerDoc>;
  tasks: Collection<TaskDoc>;
  keySlots: Collection<KeySlotDoc>;
  keyLimits: Collection<KeyLimitDoc>;
  tombstones: Collection<TombstoneDoc>;
  schedules: Collection<ScheduleDoc>;
  runs: Collection<RunDoc>;
  sequences: Collection<SequenceDoc>;
  alertRules: Collection<AlertRuleDoc>;
  alertState: Collection<AlertStateDoc>;
  alertDeliveries: Collection<AlertDeliveryDoc>;
  logs: Collection<LogChunkDoc>;
  logCounters: Collection<LogCounterDoc>;
  retention: Collection<RetentionPolicyDoc>;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function model(conn: Connection, name: string, schema: () => Schema): Model<any> {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  return (conn.models[name] ?? conn.model(name, schema(), name)) as Model<any>;
}

/** The models of one connection and collection prefix (compiled once per connection). */
export function getModels(conn: Connection, prefix: string): Models {
  return {
    containers: model(conn, `${prefix}containers`, containerSchema),
    tasks: model(conn, `${prefix}tasks`, taskSchema),
    keySlots: model(conn, `${prefix}key_slots`, keySlotSchema),
    keyLimits: model(conn, `${prefix}key_limits`, keyLimitSchema),
    tombstones: model(conn, `${prefix}tombstones`, tombstoneSchema),
    schedules: model(conn, `${prefix}schedules`, scheduleSchema),
    runs: model(conn, `${prefix}runs`, runSchema),
    sequences: model(conn, `${prefix}sequences`, sequenceSchema),
    logs: model(conn, `${prefix}logs`, logSchema),
    logCounters: model(conn, `${prefix}log_counters`, logCounterSchema),
    alertRules: model(conn, `${prefix}alert_rules`, alertRuleSchema),
    alertState: model(conn, `${prefix}alert_state`, alertStateSchema),
    alertDeliveries: model(conn, `${prefix}alert_deliveries`, alertDeliverySchema),
    retention: model(conn, `${prefix}retention`, retentionSchema),
  };
}

/**
 * The native collections behind the models. Mongoose's collection wrapper buffers calls until
 * the connection is open, so `mongoose.connect(uri)` without `await` works as the original
 * README shows.
 */
export function getCollections(models: Models): Collections {
  return {
    containers: models.containers.collection as unknown as Collection<ContainerDoc>,
    tasks: models.tasks.collection as unknown as Collection<TaskDoc>,
    keySlots: models.keySlots.collection as unknown as Collection<KeySlotDoc>,
    keyLimits: models.keyLimits.collection as unknown as Collection<KeyLimitDoc>,
    tombstones: models.tombstones.collection as unknown as Collection<TombstoneDoc>,
    schedules: models.schedules.collection as unknown as Collection<ScheduleDoc>,
    runs: models.runs.collection as unknown as Collection<RunDoc>,
    sequences: models.sequences.collection as unknown as Collection<SequenceDoc>,
    logs: models.logs.collection as unknown as Collection<LogChunkDoc>,
    logCounters: models.logCounters.collection as unknown as Collection<LogCounterDoc>,
    alertRules: models.alertRules.collection as unknown as Collection<AlertRuleDoc>,
    alertState: models.alertState.collection as unknown as Collection<AlertStateDoc>,
    alertDeliveries: models.alertDeliveries.collection as unknown as Collection<AlertDeliveryDoc>,
    retention: models.retention.collection as unknown as Collection<RetentionPolicyDoc>,
  };
}

export async function ensureIndexes(models: Models): Promise<void> {
  await Promise.all([models.containers, models.tasks, models.keySlots, models.keyLimits, models.tombstones, models.schedules, models.runs, models.alertRules, models.alertDeliveries, models.logs, models.logCounters, models.retention].map((m) => m.createIndexes()));
}
