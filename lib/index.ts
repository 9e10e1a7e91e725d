/**
 * persistent-task-status: durable state, progress, failures and crash-resume for multi-step
 * batch pipelines, kept in MongoDB.
 *
 * This entry is the library only: it loads mongoose (a peer dependency) and nothing of the HTTP
 * service, the CLI or the test-server launcher. Those are `persistent-task-status/server`
 * (lib/server.ts) and `persistent-task-status/testing` (lib/testing.ts); spec/package.spec.ts
 * checks the installed package's import graph.
 */
import { Client, createClient } from './client';

export { Client, createClient };
export { TaskContainer, type AddTaskOptions, type PauseOptions } from './container';
export { Task } from './task';
export { TaskLease, type ProgressInput } from './lease';
export { LOG_LEVELS, MAX_LOG_MESSAGE, MAX_LOG_FIELDS_BYTES, type LogLevel, type LogLine, type LogPage, type LogsQuery } from './logs';
export type { TaskContext, TaskHandler, Handlers, RunOptions, RunResult } from './runner';
export { ManualClock, systemClock, type Clock } from './clock';
export type { ClockOffset } from './server-clock';
export type { ClientOptions, WriteConcernOptions } from './options';
export type { TaskInputs } from './inputs';
export { MAX_PRIORITY } from './validation';
export {
  TASK_STATES,
  CONTAINER_STATUSES,
  FINAL_TASK_STATES,
  FINAL_CONTAINER_STATUSES,
  UNFINISHED_TASK_STATES,
  TASK_STATES_BY_PROGRESS,
  SATISFYING_TASK_STATES,
  deriveContainerStatus,
  TASK_OPERATIONS,
  TRANSITIONS,
  TASK_ACTIONS,
  CONTAINER_ACTIONS,
  canTransition,
  allowedActions,
  allowedContainerActions,
  isTaskState,
  isContainerStatus,
  type TaskState,
  type ContainerStatus,
  type StateCounts,
  type TaskOperation,
  type TransitionRule,
  type TransitionActor,
  type TaskAction,
  type ContainerAction,
  ATTEMPT_OUTCOMES,
  type AttemptOutcome,
} from './states';
export {
  PtsError,
  ValidationError,
  NotFoundError,
  DuplicateError,
  InvalidTransitionError,
  LeaseLostError,
  TaskTimeoutError,
  TaskStalledError,
  InputsTooLargeError,
  DatabaseError,
  isTransient,
  ERROR_CODES,
  type ErrorCode,
} from './errors';
export type { AttemptTiming, PtsEventMap, PtsEventName, PtsListener } from './events';
export { RUN_WHEN, isRunWhen, verdict as runWhenVerdict, type RunWhen, type RunVerdict, type DependencyOutcome } from './run-when';
export type {
  TaskRecord,
  ContainerRecord,
  ContainerSummary,
  FailureRecord,
  LeaseInfo,
  TaskSpec,
  TaskUpdate,
  ContainerOptions,
  ListContainersQuery,
  ListTasksQuery,
  Page,
  ClaimFilter,
  ClaimOptions,
  RecoveryReport,
  SpawnResult,
  ChildrenSummary,
  RerunOptions,
  RerunPlan,
  BackoffKind,
  FailurePolicy,
} from './types';

/**
 * The original module's default client: it uses the default mongoose connection, so
 * `mongoose.connect(uri)` followed by `client.getOrCreateTaskContainer(...)` works as before.
 */
export const client: Client = createClient();

export { changes, type Change, type ChangesQuery, type ChangesPage } from './changes';
export { runContainerName, type Pipeline, type PipelineOptions, type StepDefinition, type DefinitionChange } from './pipeline';
export { OVERLAP_POLICIES, type OverlapPolicy, type ScheduleOptions } from './schedule';
export type { SchedulerHandle, SchedulerOptions, SchedulerReport } from './scheduler';
export type { WorkHandle, WorkOptions } from './work';
export type { ScheduleRecord, RunRecord, RunStep, ListRunsQuery } from './runs';
export type { ScheduleView } from './schedule-view';
export { ETA_HISTORY_RUNS, type ContainerEta } from './eta';
export type { RunStatus, RunKind } from './store';
export {
  ALERT_EVENTS,
  ALERT_TEMPLATES,
  DELIVERY_STATUSES,
  type AlertEvent,
  type AlertTemplate,
  type DeliveryStatus,
  type AlertRule,
  type AlertRuleOptions,
  type AlertsOptions,
  type AlertsHandle,
  type AlertsPassReport,
  type DeliveryRecord,
  type DeliveryAttempt,
  type ListDeliveriesQuery,
} from './alerts';
export {
  RETENTION_BATCH,
  type RetentionPolicy,
  type RetentionPolicyOptions,
  type ApplyRetentionOptions,
  type RetentionItem,
  type RetentionReport,
} from './retention';
export {
  verifyAlertSignature,
  signAlert,
  ALERT_HEADERS,
  DEFAULT_SIGNATURE_TOLERANCE_S,
  type VerifyAlertOptions,
  type AlertBody,
} from './alert-payload';
