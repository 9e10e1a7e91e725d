/**
 * Input validation. Everything a caller hands us is checked here before anything is written,
 * so a rejected call leaves the database unchanged.
 * @internal
 */
import mongoose from 'mongoose';
import { ValidationError } from './errors';
import { isRunWhen, RUN_WHEN, type RunWhen } from './run-when';
import type { BackoffKind, TaskSpec } from './types';

const BSON = mongoose.mongo.BSON;

export const MAX_NAME_LENGTH = 512;
/**
 * BSON documents are limited to 16 MiB; one user payload may take 15 MiB of it (measured as the
 * BSON the driver will send), leaving room for the rest of the document.
 */
export const MAX_DATA_BYTES = 15 * 1024 * 1024;

/**
 * What the connected server can store of user data, probed once per client (`Core.dataRules`).
 * @internal
 */
export interface DataRules {
  /** Arrays directly inside arrays (`[[1, 2]]`): MongoDB stores them, FerretDB 1.x refuses them. */
  nestedArrays: boolean;
}

/** The rules of MongoDB itself: everything BSON can hold. */
export const MONGODB_RULES: DataRules = Object.freeze({ nestedArrays: true });
export const MAX_DATA_DEPTH = 64;
export const MAX_STATUS_TEXT_LENGTH = 4096;
/** Longest lease a worker may take or renew: 7 days. */
export const MAX_LEASE_MS = 7 * 86_400_000;

// eslint-disable-next-line no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

/** A container or task name: a non-blank string of at most 512 characters without control characters. */
export function validateName(value: unknown, what: string): string {
  if (typeof value !== 'string') {
    throw new ValidationError(`${what} must be a string, got ${describe(value)}`, { path: what });
  }
  if (value.trim().length === 0) throw new ValidationError(`${what} must not be empty or blank`, { path: what });
  if (value.length > MAX_NAME_LENGTH) {
    throw new ValidationError(`${what} must be at most ${MAX_NAME_LENGTH} characters, got ${value.length}`, {
      path: what,
    });
  }
  if (CONTROL_CHARS.test(value)) {
    throw new ValidationError(`${what} must not contain NUL or control characters`, { path: what });
  }
  if (!value.isWellFormed()) throw new ValidationError(`${what} contains a lone surrogate`, { path: what });
  return value;
}

export function validatePercentage(value: unknown, path = 'percentageComplete'): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new ValidationError(`${path} must be a finite number between 0 and 100, got ${describe(value)}`, { path });
  }
  if (value < 0 || value > 100) {
    throw new ValidationError(`${path} must be between 0 and 100, got ${value}`, { path });
  }
  return value;
}

export function validateStatusText(value: unknown, path = 'statusText'): string | null {
  if (value === null) return null;
  if (typeof value !== 'string') throw new ValidationError(`${path} must be a string or null, got ${describe(value)}`, { path });
  if (value.length > MAX_STATUS_TEXT_LENGTH) {
    throw new ValidationError(`${path} must be at most ${MAX_STATUS_TEXT_LENGTH} characters`, { path });
  }
  if (value.includes('\u0000')) throw new ValidationError(`${path} must not contain NUL`, { path });
  if (!value.isWellFormed()) throw new ValidationError(`${path} contains a lone surrogate`, { path });
  return value;
}

export function validateNonNegativeInt(value: unknown, path: string, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) {
    throw new ValidationError(`${path} must be an integer between 0 and ${max}, got ${describe(value)}`, { path });
  }
  return value;
}

export function validatePositiveNumber(value: unknown, path: string, max = 1e9): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > max) {
    throw new ValidationError(`${path} must be a number greater than 0 and at most ${max}, got ${describe(value)}`, {
      path,
    });
  }
  return value;
}

/**
 * User data (task input, checkpoint, result): JSON-like values that MongoDB stores as given.
 * Keys starting with `$`, containing `.` or NUL, and `__proto__` are rejected (they cannot be
 * stored faithfully or queried safely), as are functions, symbols, bigints, non-finite numbers,
 * cycles, nesting deeper than 64, anything over 15 MiB once encoded as BSON and, where the
 * server cannot store them (`rules`), arrays directly inside arrays.
 */
export function validateData(value: unknown, path: string, rules: DataRules = MONGODB_RULES): unknown {
  const seen = new Set<object>();
  const walk = (v: unknown, p: string, depth: number, inArray: boolean): void => {
    if (depth > MAX_DATA_DEPTH) throw new ValidationError(`${path} is nested deeper than ${MAX_DATA_DEPTH} levels`, { path: p });
    if (v === null || v === undefined || typeof v === 'boolean') return;
    if (typeof v === 'string') {
      if (!v.isWellFormed()) throw new ValidationError(`${p} contains a lone surrogate (not valid UTF-8)`, { path: p });
      return;
    }
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) throw new ValidationError(`${p} must be a finite number, got ${v}`, { path: p });
      return;
    }
    if (typeof v !== 'object') {
      throw new ValidationError(`${p} has a value MongoDB cannot store: ${typeof v}`, { path: p });
    }
    if (v instanceof Date) {
      if (Number.isNaN(v.getTime())) throw new ValidationError(`${p} is an invalid Date`, { path: p });
      return;
    }
    if (Buffer.isBuffer(v) || v instanceof Uint8Array) return;
    if (seen.has(v)) throw new ValidationError(`${p} contains a cycle`, { path: p });
    seen.add(v);
    if (Array.isArray(v)) {
      if (inArray && !rules.nestedArrays) {
        throw new ValidationError(`${p} is an array inside an array, which this database server (FerretDB) cannot store`, {
          path: p,
          nestedArray: true,
        });
      }
      v.forEach((item, i) => walk(item, `${p}[${i}]`, depth + 1, true));
    } else {
      const proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null && !isBsonValue(v)) {
        throw new ValidationError(`${p} must be a plain object, got ${describe(v)}`, { path: p });
      }
      if (!isBsonValue(v)) {
        for (const key of Object.keys(v)) {
          if (key.startsWith('$') || key.includes('.') || key.includes('\u0000') || key === '__proto__' || !key.isWellFormed()) {
            throw new ValidationError(
              `${p} has the key ${JSON.stringify(key)}: keys must not start with '$', contain '.', NUL or a lone surrogate, or be '__proto__'`,
              { path: `${p}.${key}`, key },
            );
          }
          walk((v as Record<string, unknown>)[key], `${p}.${key}`, depth + 1, false);
        }
      }
    }
    seen.delete(v);
  };
  walk(value, path, 0, false);
  // The size the driver will send, not an estimate: a field holding the value, as it is stored.
  const bytes = BSON.calculateObjectSize({ v: value === undefined ? null : value }) - 8;
  if (bytes > MAX_DATA_BYTES) {
    throw new ValidationError(`${path} is ${bytes} bytes once encoded as BSON, more than the limit of ${MAX_DATA_BYTES} bytes (15 MiB)`, {
      path,
      limit: MAX_DATA_BYTES,
      bytes,
    });
  }
  return value === undefined ? null : value;
}

function isBsonValue(v: object): boolean {
  return typeof (v as { _bsontype?: unknown })._bsontype === 'string';
}

/** The range of `TaskSpec.priority`. */
export const MAX_PRIORITY = 1000;

/** A task priority: an integer from -{@link MAX_PRIORITY} to {@link MAX_PRIORITY}. */
export function validatePriority(v: unknown, path = 'priority'): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < -MAX_PRIORITY || v > MAX_PRIORITY) {
    throw new ValidationError(`${path} must be an integer from -${MAX_PRIORITY} to ${MAX_PRIORITY}, got ${describe(v)}`, { path });
  }
  return v === 0 ? 0 : v; // -0 is stored as 0
}

/** Longest `timeoutMs`/`stallMs`: 365 days. */
export const MAX_DEADLINE_MS = 365 * 86_400_000;

/** A `timeoutMs`/`stallMs`: a whole number of ms from 1 to {@link MAX_DEADLINE_MS}. */
export function validateDeadlineMs(v: unknown, path: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > MAX_DEADLINE_MS) {
    throw new ValidationError(`${path} must be a whole number of ms from 1 to ${MAX_DEADLINE_MS}, got ${describe(v)}`, { path });
  }
  return v;
}

/** The `timeoutMs`/`stallMs` a task gets when its spec sets none (the container's, else the client's; null: none). */
export interface DeadlineDefaults {
  timeoutMs: number | null;
  stallMs: number | null;
}

export const NO_DEADLINES: DeadlineDefaults = Object.freeze({ timeoutMs: null, stallMs: null });

/**
 * The deadline defaults of the tasks added to a container — by `addTasks` and by a spawn alike:
 * the container's stored `taskTimeoutMs`/`taskStallMs`, else the client's (the one place they are combined).
 */
export function deadlineDefaults(
  container: { taskTimeoutMs?: number | null; taskStallMs?: number | null },
  client: { taskTimeoutMs: number | null; taskStallMs: number | null },
): DeadlineDefaults {
  return { timeoutMs: container.taskTimeoutMs ?? client.taskTimeoutMs, stallMs: container.taskStallMs ?? client.taskStallMs };
}

/** A spec's `timeoutMs`/`stallMs`: its own (`null`: none), else the default. */
function resolveDeadlineMs(v: unknown, fallback: number | null, path: string): number | null {
  if (v === undefined) return fallback;
  if (v === null) return null;
  return validateDeadlineMs(v, path);
}

const BACKOFFS: readonly BackoffKind[] = ['fixed', 'exponential'];

/** A task spec with every default applied. */
export interface ResolvedTaskSpec {
  name: string;
  data: unknown;
  dependsOn: string[];
  weight: number;
  priority: number;
  maxRetries: number;
  retryDelayMs: number;
  backoff: BackoffKind;
  maxRetryDelayMs: number;
  key: string | null;
  /** @defaultValue 'succeeded' */
  runWhen: RunWhen;
  /** null: no limit. */
  timeoutMs: number | null;
  stallMs: number | null;
}

const SPEC_KEYS = new Set(['name', 'data', 'dependsOn', 'weight', 'priority', 'maxRetries', 'retryDelayMs', 'backoff', 'maxRetryDelayMs', 'key', 'runWhen', 'timeoutMs', 'stallMs']);

export function resolveTaskSpec(spec: unknown, path = 'task', rules: DataRules = MONGODB_RULES, deadlines: DeadlineDefaults = NO_DEADLINES): ResolvedTaskSpec {
  if (spec === null || typeof spec !== 'object' || Array.isArray(spec)) {
    throw new ValidationError(`${path} must be an object, got ${describe(spec)}`, { path });
  }
  for (const key of Object.keys(spec)) {
    if (!SPEC_KEYS.has(key)) throw new ValidationError(`${path} has an unknown field ${JSON.stringify(key)}`, { path: `${path}.${key}` });
  }
  const s = spec as TaskSpec;
  const name = validateName(s.name, `${path}.name`);
  const dependsOn = s.dependsOn === undefined ? [] : s.dependsOn;
  if (!Array.isArray(dependsOn)) throw new ValidationError(`${path}.dependsOn must be an array of task names`, { path: `${path}.dependsOn` });
  dependsOn.forEach((d, i) => validateName(d, `${path}.dependsOn[${i}]`));
  if (new Set(dependsOn).size !== dependsOn.length) {
    throw new ValidationError(`${path}.dependsOn lists a task twice`, { path: `${path}.dependsOn` });
  }
  if (dependsOn.includes(name)) throw new ValidationError(`${path} cannot depend on itself`, { path: `${path}.dependsOn`, cycle: [name, name] });
  const backoff = s.backoff ?? 'exponential';
  if (!BACKOFFS.includes(backoff)) throw new ValidationError(`${path}.backoff must be 'fixed' or 'exponential'`, { path: `${path}.backoff` });
  const key = s.key === undefined || s.key === null ? null : validateName(s.key, `${path}.key`);
  const runWhen = s.runWhen === undefined ? 'succeeded' : s.runWhen;
  if (!isRunWhen(runWhen)) {
    throw new ValidationError(`${path}.runWhen must be one of ${RUN_WHEN.map((r) => `'${r}'`).join(', ')}, got ${describe(runWhen)}`, { path: `${path}.runWhen` });
  }
  if (runWhen !== 'succeeded' && dependsOn.length === 0) {
    throw new ValidationError(`${path}.runWhen '${runWhen}' needs dependsOn: a cleanup step runs after the steps it names`, { path: `${path}.runWhen` });
  }
  return {
    name,
    data: validateData(s.data, `${path}.data`, rules),
    dependsOn: [...dependsOn],
    weight: s.weight === undefined ? 1 : validatePositiveNumber(s.weight, `${path}.weight`, 1e6),
    priority: s.priority === undefined ? 0 : validatePriority(s.priority, `${path}.priority`),
    maxRetries: s.maxRetries === undefined ? 3 : validateNonNegativeInt(s.maxRetries, `${path}.maxRetries`, 1000),
    retryDelayMs: s.retryDelayMs === undefined ? 30_000 : validateNonNegativeInt(s.retryDelayMs, `${path}.retryDelayMs`, 365 * 86_400_000),
    backoff,
    maxRetryDelayMs:
      s.maxRetryDelayMs === undefined ? 3_600_000 : validateNonNegativeInt(s.maxRetryDelayMs, `${path}.maxRetryDelayMs`, 365 * 86_400_000),
    key,
    runWhen,
    timeoutMs: resolveDeadlineMs(s.timeoutMs, deadlines.timeoutMs, `${path}.timeoutMs`),
    stallMs: resolveDeadlineMs(s.stallMs, deadlines.stallMs, `${path}.stallMs`),
  };
}

/**
 * Checks a batch of new tasks against each other and the names already in the container:
 * no duplicate names in the batch, every dependency known, no cycle. Returns the batch in an
 * order where each task comes after the batch tasks it depends on.
 */
export function checkDependencies(batch: ResolvedTaskSpec[], existing: ReadonlySet<string>): ResolvedTaskSpec[] {
  const byName = new Map<string, ResolvedTaskSpec>();
  for (const t of batch) {
    if (byName.has(t.name)) throw new ValidationError(`task ${JSON.stringify(t.name)} appears twice in the batch`, { path: 'tasks', name: t.name });
    byName.set(t.name, t);
  }
  for (const t of batch) {
    for (const d of t.dependsOn) {
      if (!byName.has(d) && !existing.has(d)) {
        throw new ValidationError(`task ${JSON.stringify(t.name)} depends on unknown task ${JSON.stringify(d)}`, {
          path: 'dependsOn',
          task: t.name,
          dependency: d,
        });
      }
    }
  }
  const ordered: ResolvedTaskSpec[] = [];
  const mark = new Map<string, 1 | 2>();
  const visit = (t: ResolvedTaskSpec, stack: string[]): void => {
    const m = mark.get(t.name);
    if (m === 2) return;
    if (m === 1) {
      const cycle = [...stack.slice(stack.indexOf(t.name)), t.name];
      throw new ValidationError(`dependency cycle: ${cycle.join(' -> ')}`, { path: 'dependsOn', cycle });
    }
    mark.set(t.name, 1);
    for (const d of t.dependsOn) {
      const dep = byName.get(d);
      if (dep) visit(dep, [...stack, t.name]);
    }
    mark.set(t.name, 2);
    ordered.push(t);
  };
  for (const t of batch) visit(t, []);
  return ordered;
}

export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'number') return Number.isNaN(v) ? 'NaN' : String(v);
  if (typeof v === 'string') return v.length > 40 ? `a string of ${v.length} characters` : JSON.stringify(v);
  if (typeof v === 'object') return `an object (${Object.getPrototypeOf(v)?.constructor?.name ?? 'null prototype'})`;
  return typeof v;
}
