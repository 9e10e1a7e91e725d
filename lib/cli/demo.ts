/**
 * `pts demo`: a realistic pipeline with a retried failure and a real crash-resume, shown live in
 * the terminal and in the dashboard.
 *
 * 1. a child process (`pts demo-worker`) runs `download` and starts `unpack`;
 * 2. this process runs the rest of the pipeline (`validate` runs beside `unpack`);
 * 3. once `unpack` has saved a checkpoint, the child is killed with SIGKILL; its lease expires
 *    after `leaseMs`, the sweep records the interruption and this process resumes `unpack` from
 *    its checkpoint;
 * 4. `import` fails on its first attempt and is retried after a short delay.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { startEmbeddedServer, type EmbeddedServer } from '../embedded';
import { startServer, type RunningServer } from '../http/server';
import type { Client } from '../client';
import type { TaskContainer } from '../container';
import type { TaskLease } from '../lease';
import type { TaskContext } from '../runner';
import {
  CRASH_AFTER_ARCHIVES,
  CRASHING_TASK,
  DEMO_TASKS,
  demoHandlers,
  type DemoPace,
} from './demo-pipeline';
import { CliError, EXIT, connect, oneLine, type DbOptions } from './connect';
import { followContainer } from './commands';
import { Out, formatDuration } from './output';
import { parsePort, untilSignal } from './serve';

export interface DemoOptions extends DbOptions {
  port: string;
  open: boolean;
  exitWhenDone?: boolean;
  fast?: boolean;
}

/** `mongodb://host:port/` → `mongodb://host:port/<db>` (keeps query options). */
export function withDatabaseName(uri: string, db: string): string {
  const m = /^(mongodb(?:\+srv)?:\/\/[^/?]*)(\/[^?]*)?(\?.*)?$/i.exec(uri);
  return m ? `${m[1]}/${db}${m[3] ?? ''}` : uri;
}

function paceFor(fast: boolean): DemoPace {
  return fast ? { speed: 0.12, leaseMs: 1500 } : { speed: 1, leaseMs: 3000 };
}

function stamp(): string {
  return new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function openBrowser(url: string): void {
  const cmd = process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? 'cmd' : 'xdg-open';
  const args = process.platform === 'win32' ? ['/c', 'start', '', url] : [url];
  try {
    const p = spawn(cmd, args, { stdio: 'ignore', detached: true });
    p.on('error', () => undefined);
    p.unref();
  } catch {
    // No browser: the URL is printed anyway.
  }
}

/** Starts `pts demo-worker` in a child process (same node flags, so it also works under tsx). */
function spawnWorker(
  uri: string,
  container: string,
  pace: DemoPace,
): { child: ChildProcess; stderr: () => string } {
  const entry = path.join(__dirname, `main${path.extname(__filename)}`);
  const child = spawn(
    process.execPath,
    [
      ...process.execArgv,
      entry,
      'demo-worker',
      '--container',
      container,
      '--lease-ms',
      String(pace.leaseMs),
      '--speed',
      String(pace.speed),
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, MONGODB_URI: uri } },
  );
  let tail = '';
  child.stderr?.on('data', (b: Buffer) => {
    tail = (tail + b.toString()).slice(-4000);
  });
  return { child, stderr: () => tail };
}

/**
 * A {@link TaskContext} over a lease claimed with `client.claimNext` (the worker protocol used
 * by processes that are not `container.run()`): progress and checkpoints go out as heartbeats.
 */
function leaseContext(
  lease: TaskLease,
  leaseMs: number,
  signal: AbortSignal,
): TaskContext & { stop(): void } {
  let chain: Promise<unknown> = Promise.resolve();
  const beat = (p: Parameters<TaskLease['heartbeat']>[0]): Promise<void> => {
    chain = chain.then(() => lease.heartbeat(p, leaseMs));
    return chain.then(() => undefined);
  };
  const timer = setInterval(
    () => void beat({}).catch(() => undefined),
    Math.max(100, Math.floor(leaseMs / 3)),
  );
  return {
    task: lease.task,
    name: lease.task.name,
    data: lease.task.taskData,
    checkpoint: lease.task.processingData ?? null,
    attempt: lease.task.attempts,
    inputs: lease.inputs ?? {},
    signal,
    get deadline() {
      return lease.deadline;
    },
    progress: (percentageComplete, statusText) =>
      void beat({ percentageComplete, statusText }).catch(() => undefined),
    status: (statusText) => void beat({ statusText }).catch(() => undefined),
    saveCheckpoint: (processingData) => beat({ processingData }),
    flush: () => chain.then(() => undefined),
    spawn: (specs) => lease.spawn(specs),
    log: (level, message, fields) => lease.log(level, message, fields),
    stop: () => clearInterval(timer),
  };
}

/**
 * The child process of the demo: claims `download`, then the crashing task, through
 * `client.claimNext` with a heartbeat lease (it is killed during the second one).
 */
export async function demoWorker(
  opts: DbOptions & { container: string; leaseMs: string; speed: string },
): Promise<void> {
  const uri = opts.mongodbUri ?? process.env.MONGODB_URI ?? '';
  const leaseMs = Number(opts.leaseMs);
  const { client, connection } = await connect(uri, { leaseMs, progressIntervalMs: 100 });
  const owner = `demo-worker:${process.pid}`;
  const handlers = demoHandlers({ speed: Number(opts.speed), leaseMs });
  const abort = new AbortController();
  try {
    for (const name of ['download', CRASHING_TASK]) {
      let lease: TaskLease | null = null;
      const deadline = Date.now() + 30_000;
      while (
        !(lease = await client.claimNext({ container: opts.container, names: [name] }, { owner, leaseMs, includeInputs: true }))
      ) {
        if (Date.now() > deadline)
          throw new CliError(`demo worker: ${name} never became ready`, EXIT.FAILURE);
        await sleep(50);
      }
      const ctx = leaseContext(lease, leaseMs, abort.signal);
      try {
        const result = await handlers[name](ctx);
        await ctx.flush();
        await lease.succeed(result ?? null);
      } catch (err) {
        await lease.fail(err).catch(() => undefined);
        throw err;
      } finally {
        ctx.stop();
      }
    }
  } finally {
    await client.close();
    await connection.close().catch(() => undefined);
  }
}

interface Orchestration {
  notes: string[];
  /** The parent's runner once started (awaited before the connection closes). */
  runner: Promise<unknown> | null;
}

/** Step 1-3 of the demo: child worker, parent runner, the kill. Resolves with the parent's run result. */
async function orchestrate(
  client: Client,
  c: TaskContainer,
  uri: string,
  pace: DemoPace,
  state: Orchestration,
  signal: AbortSignal,
) {
  const note = (s: string): void => {
    state.notes.push(s);
  };
  client.on('lease:expired', (e) =>
    note(
      `lease of ${e.task.name} (held by ${e.owner}) expired: recovered to ${e.task.state}, checkpoint kept`,
    ),
  );
  client.on(
    'task:retrying',
    (e) =>
      e.failure.kind === 'error' &&
      note(`${e.task.name} attempt ${e.failure.attempt} failed (${e.failure.message}); retrying`),
  );
  const { child, stderr } = spawnWorker(uri, c.name(), pace);
  let exited: string | null = null;
  child.on('exit', (code, sig) => {
    exited = sig ?? `code ${code}`;
  });
  note(`worker process ${child.pid} started: runs download, then ${CRASHING_TASK}`);
  const deadline = Date.now() + 60_000 * Math.max(1, pace.speed);
  const fail = (what: string): never => {
    child.kill('SIGKILL');
    throw new CliError(`demo: ${what}${stderr().trim() ? `\n${stderr().trim()}` : ''}`, EXIT.FAILURE);
  };
  // Wait for the child to hold the crashing task.
  for (;;) {
    if (signal.aborted) return fail('interrupted');
    if (exited) return fail(`worker exited early (${exited})`);
    if (Date.now() > deadline) return fail('worker did not start unpack in time');
    const t = await c.getTask(CRASHING_TASK);
    if (t?.toJSON().state === 'running') break;
    await sleep(100);
  }
  const runner = c.run(demoHandlers(pace), {
    concurrency: 3,
    leaseMs: pace.leaseMs,
    progressIntervalMs: 100,
    pollIntervalMs: 200,
    signal,
  });
  runner.catch(() => undefined); // awaited by the caller; avoid an unhandled rejection meanwhile
  state.runner = runner.catch(() => undefined);
  note('this process runs the rest: validate in parallel (it spawns one child task per shard: ctx.spawn), then import once every shard is done, report, then cleanup (runWhen: always)');
  // Kill the child once it has checkpointed part of its work.
  for (;;) {
    if (signal.aborted) {
      child.kill('SIGKILL');
      break;
    }
    if (exited) return fail(`worker exited before the crash point (${exited})`);
    if (Date.now() > deadline) return fail('unpack made no progress');
    const t = (await c.getTask(CRASHING_TASK))?.toJSON();
    const done = (t?.processingData as { archivesDone?: number } | null)?.archivesDone ?? 0;
    if (done >= CRASH_AFTER_ARCHIVES) {
      child.kill('SIGKILL');
      note(
        `killed worker ${child.pid} with SIGKILL during ${CRASHING_TASK} (checkpoint: ${done} archives); resumes after its ${pace.leaseMs} ms lease expires`,
      );
      break;
    }
    await sleep(50);
  }
  return runner;
}

/**
 * The demo's own database (mongodb-memory-server if installed, else FerretDB), or CliError(exit 3)
 * with everything that was tried, including how to install mongodb-memory-server.
 */
async function startDemoDatabase(): Promise<EmbeddedServer> {
  try {
    return await startEmbeddedServer({ log: (l) => process.stderr.write(`[pts] ${l}\n`) });
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new CliError(
      `demo: no database to run on (pass --mongodb-uri to use your own). ${reason}`,
      EXIT.UNREACHABLE,
    );
  }
}

export async function demo(opts: DemoOptions): Promise<void> {
  const out = new Out();
  const port = parsePort(opts.port);
  const fast = Boolean(opts.fast) || process.env.PTS_DEMO_FAST === '1';
  const pace = paceFor(fast);
  let embedded: EmbeddedServer | null = null;
  let server: RunningServer | null = null;
  let client: Client | null = null;
  let closeConnection: () => Promise<unknown> = async () => undefined;
  const stop = new AbortController();
  let watching: Promise<unknown> = Promise.resolve();
  let state: Orchestration | null = null;
  const onSigint = (): void => stop.abort();
  process.on('SIGINT', onSigint);
  try {
    let uri = (opts.mongodbUri ?? process.env.MONGODB_URI ?? '').trim();
    if (!uri) {
      out.line('starting an embedded database (use --mongodb-uri to use your own)…');
      embedded = await startDemoDatabase();
      uri = withDatabaseName(embedded.uri, 'pts_demo');
      out.line(`database: ${embedded.description}`);
    }
    const conn = await connect(uri, {
      leaseMs: pace.leaseMs,
      sweepIntervalMs: Math.max(200, Math.round(pace.leaseMs / 3)),
      progressIntervalMs: 100,
    });
    client = conn.client;
    closeConnection = () => conn.connection.close();
    const name = `demo-${stamp()}`;
    const c = await client.getOrCreateTaskContainer(name, {
      metadata: { demo: true, description: 'download → (unpack ∥ validate) → import → report → cleanup (always)' },
    });
    await c.addTasks(DEMO_TASKS);
    server = await startServer({ client, auth: false, host: '127.0.0.1', port });
    const link = `${server.url}/#/containers/${encodeURIComponent(name)}`;
    out.line(`dashboard: ${out.style('bold', link)}`);
    if (opts.open && out.tty) openBrowser(link);
    out.line();

    const started = Date.now();
    const orch: Orchestration = { notes: [], runner: null };
    state = orch;
    const orchestration = orchestrate(client, c, uri, pace, orch, stop.signal);
    orchestration.catch(() => stop.abort());
    const follow = followContainer(client, c, out, {
      intervalMs: out.tty ? 200 : 400,
      signal: stop.signal,
      notes: () => orch.notes,
    });
    watching = follow.catch(() => undefined);
    const result = await orchestration;
    const final = await follow;
    out.line();
    out.line(
      `pipeline ${final.status} in ${formatDuration(Date.now() - started)}: ` +
        Object.entries(result.attempts)
          .map(([t, n]) => `${t} ×${n}`)
          .join(', '),
    );
    out.line();
    await (await import('./demo-schedule')).scheduleDemo(client, out, stop.signal);
    if (opts.exitWhenDone) {
      if (final.status !== 'succeeded') throw new CliError(`demo pipeline ${final.status}`, EXIT.FAILURE);
      return;
    }
    out.line(`the dashboard stays up at ${link}; press Ctrl-C to stop`);
    if (!stop.signal.aborted) await untilSignal();
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError(`demo failed: ${oneLine(err)}`, EXIT.FAILURE);
  } finally {
    stop.abort();
    await watching;
    await state?.runner;
    process.removeListener('SIGINT', onSigint);
    await server?.close().catch(() => undefined);
    await client?.close().catch(() => undefined);
    await closeConnection().catch(() => undefined);
    await embedded?.stop().catch(() => undefined);
  }
}
