/**
 * The sample pipeline behind `pts demo`: download → (unpack ∥ validate) → import → report, then
 * a cleanup step that runs however the rest ended (`runWhen: 'always'`). `validate` fans out:
 * it spawns one child task per shard (`ctx.spawn`), and `import` waits for all of them.
 * Handlers simulate work with timers, report progress, save checkpoints and resume from them.
 * `import` fails on its first attempt (and is retried); `unpack` is run by a child process that
 * the demo kills mid-step, so its lease expires and the demo's own runner resumes it.
 */
import type { TaskContext, TaskHandler } from '../runner';
import type { TaskSpec } from '../types';

/** Tuning of the demo's pace. `speed` multiplies every simulated delay (1 = ~30 s run). */
export interface DemoPace {
  /** @defaultValue 1 */
  speed: number;
  /** Lease of every claim; the killed step is resumed about this long after the kill. @defaultValue 3000 */
  leaseMs: number;
}

export const DEMO_TASKS: TaskSpec[] = [
  { name: 'download', data: { source: 's3://example-data/2024/orders.tar.zst', chunks: 20 }, weight: 3 },
  { name: 'unpack', data: { archives: 10 }, dependsOn: ['download'], weight: 2 },
  { name: 'validate', data: { rows: 1_200_000 }, dependsOn: ['download'], weight: 2 },
  {
    name: 'import',
    data: { table: 'warehouse.orders', batches: 12 },
    dependsOn: ['unpack', 'validate'],
    weight: 3,
    retryDelayMs: 1500,
    backoff: 'fixed',
    maxRetries: 3,
  },
  { name: 'report', data: { to: 'ops@example.com' }, dependsOn: ['import'], weight: 1 },
  // A cleanup step: deletes the unpacked files however the pipeline ended (runWhen 'always').
  { name: 'cleanup', data: { paths: ['/tmp/orders-2024/'] }, dependsOn: ['report'], weight: 1, runWhen: 'always' },
];

/** How many child tasks (`validate/shard-N`) the validate step spawns. */
export const VALIDATE_SHARDS = 6;

/** The step run in a child process that the demo kills (SIGKILL) halfway through. */
export const CRASHING_TASK = 'unpack';
/** The checkpoint value (`archivesDone`) at which the demo kills the child. */
export const CRASH_AFTER_ARCHIVES = 4;

/** A delay that ends early when the task's signal aborts (lease lost, run stopped). */
function wait(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason ?? new Error('aborted'));
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    function onAbort(): void {
      clearTimeout(t);
      reject(signal.reason ?? new Error('aborted'));
    }
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** A transient error with a Node-style `code`, like the ones real importers see. */
class WarehouseError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
    this.name = 'WarehouseError';
  }
}

function checkpointOf<T extends object>(ctx: TaskContext): Partial<T> {
  return ctx.checkpoint && typeof ctx.checkpoint === 'object' ? (ctx.checkpoint as Partial<T>) : {};
}

/** Handlers of the demo pipeline, keyed by task name. */
export function demoHandlers(pace: DemoPace): Record<string, TaskHandler> {
  const ms = (base: number): number => Math.max(5, Math.round(base * pace.speed));
  return {
    async download(ctx) {
      const chunks = 20;
      for (let i = 1; i <= chunks; i++) {
        await wait(ms(300), ctx.signal);
        ctx.progress((i / chunks) * 100, `downloaded ${i}/${chunks} chunks (${(i * 12.8).toFixed(1)} MB)`);
      }
      await ctx.flush();
      return {
        bytes: 268_435_456,
        sha256: 'c0ffee5e7d1b0a4e2f90b3aa1d93c5d2e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3',
      };
    },

    async unpack(ctx) {
      const archives = 10;
      const cp = checkpointOf<{ archivesDone: number }>(ctx);
      const start = cp.archivesDone ?? 0;
      if (start > 0) ctx.status(`resuming from checkpoint: ${start}/${archives} archives already unpacked`);
      for (let i = start + 1; i <= archives; i++) {
        await wait(ms(550), ctx.signal);
        ctx.progress((i / archives) * 100, `unpacked archive ${i}/${archives}`);
        await ctx.saveCheckpoint({ archivesDone: i });
      }
      return { files: 48_211, resumedFrom: start };
    },

    // Dynamic fan-out: validate scans the file, then spawns one child task per shard
    // (`ctx.spawn`, idempotent by name if it is retried); import waits for validate AND every shard.
    async validate(ctx) {
      const rows = 1_200_000;
      for (let i = 1; i <= 4; i++) {
        await wait(ms(300), ctx.signal);
        ctx.progress(i * 25, `scanned ${i}/4 of the file for shard boundaries`);
      }
      const shards = Array.from({ length: VALIDATE_SHARDS }, (_, i) => ({
        name: `validate/shard-${i + 1}`,
        data: { firstRow: (i * rows) / VALIDATE_SHARDS, rows: rows / VALIDATE_SHARDS },
      }));
      const r = await ctx.spawn(shards);
      await ctx.flush();
      return { rows, shards: r.tasks.length };
    },

    // The children of validate (a `'<parent>/*'` handler runs every child without its own).
    async 'validate/*'(ctx) {
      const { rows } = ctx.data as { rows: number };
      const steps = 6;
      for (let i = 1; i <= steps; i++) {
        await wait(ms(300), ctx.signal);
        ctx.progress((i / steps) * 100, `validated ${Math.round((i / steps) * rows).toLocaleString('en-US')} of ${rows.toLocaleString('en-US')} rows`);
      }
      await ctx.flush();
      return { rows, rejected: ctx.name.endsWith('-2') ? 37 : 0 };
    },

    async import(ctx) {
      const batches = 12;
      const cp = checkpointOf<{ batchesDone: number }>(ctx);
      const start = cp.batchesDone ?? 0;
      if (start > 0) ctx.status(`resuming at batch ${start + 1}/${batches}`);
      for (let i = start + 1; i <= batches; i++) {
        await wait(ms(420), ctx.signal);
        if (ctx.attempt === 1 && i === 4) {
          await ctx.flush();
          throw new WarehouseError(
            `connection reset by warehouse while writing batch ${i}/${batches}`,
            'ECONNRESET',
          );
        }
        ctx.progress((i / batches) * 100, `imported batch ${i}/${batches}`);
        await ctx.saveCheckpoint({ batchesDone: i });
      }
      return { inserted: 1_199_963, table: 'warehouse.orders' };
    },

    async report(ctx) {
      for (let i = 1; i <= 5; i++) {
        await wait(ms(300), ctx.signal);
        ctx.progress(i * 20, i < 5 ? 'rendering report' : 'report sent');
      }
      await ctx.flush();
      return { sentTo: 'ops@example.com', pages: 3 };
    },

    async cleanup(ctx) {
      for (let i = 1; i <= 3; i++) {
        await wait(ms(200), ctx.signal);
        ctx.progress((i / 3) * 100, i < 3 ? 'deleting temp files' : 'temp files deleted');
      }
      await ctx.flush();
      return { deleted: 48_211 };
    },
  };
}
