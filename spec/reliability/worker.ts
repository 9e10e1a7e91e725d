/**
 * Child worker of the reliability specs (not a spec): `node --import tsx spec/reliability/worker.ts '<json>'`.
 *
 *   mode 'run'   — `container.run()` with a handler that logs start / checkpoints / end, for the crash test;
 *   mode 'claim' — a `claimNext` loop (after a synchronized race of getOrCreate/addTask calls), for the race test.
 *
 * In claim mode every process logs 'ready', then waits for the parent to write `<logDir>/go`
 * holding the wall-clock time at which all of them fire their race calls (an empty `container`:
 * race only, no claim loop).
 *
 * Every event is appended synchronously to `<logDir>/<owner>.jsonl`, so what a SIGKILLed process
 * logged before it died is on disk.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createClient } from '../../lib';

interface Args {
  mode: 'run' | 'claim';
  uri: string;
  container: string;
  logDir: string;
  owner: string;
  leaseMs: number;
  heartbeatMs?: number;
  concurrency?: number;
  pollIntervalMs?: number;
  raceNames?: number;
}

const args = JSON.parse(process.argv[2]) as Args;
const file = path.join(args.logDir, `${args.owner}.jsonl`);
const log = (ev: string, fields: Record<string, unknown> = {}): void => {
  fs.appendFileSync(
    file,
    `${JSON.stringify({ ev, pid: process.pid, owner: args.owner, t: Date.now(), ...fields })}\n`,
  );
};
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function runMode(): Promise<void> {
  const client = createClient({
    uri: args.uri,
    leaseMs: args.leaseMs,
    heartbeatMs: args.heartbeatMs,
    progressIntervalMs: 0,
    workerId: args.owner,
  });
  client.on('task:succeeded', (e) =>
    log('succeeded', {
      task: e.task.name,
      token: (e.task.result as { token?: number } | null)?.token ?? null,
    }),
  );
  client.on('lease:lost', (e) => log('lost', { task: e.task, reason: e.reason }));
  client.on('lease:expired', (e) => log('expired', { task: e.task.name, prevOwner: e.owner }));
  const c = await client.getTaskContainer(args.container);
  if (!c) throw new Error(`no container ${args.container}`);
  log('ready');
  const res = await c.run(
    async (ctx) => {
      const token = ctx.task.lease!.token;
      const { ms, gate } = ctx.data as { ms: number; gate?: boolean };
      log('start', { task: ctx.name, token, attempt: ctx.attempt, checkpoint: ctx.checkpoint });
      for (let i = 1; i <= 3; i++) {
        await sleep(ms / 3);
        log('ckpt-req', { task: ctx.name, token, i });
        await ctx.saveCheckpoint({ i, token });
        log('ckpt-ack', { task: ctx.name, token, i });
      }
      // A gated step cannot finish before the parent writes `<logDir>/release` (so the pipeline
      // cannot end before the test has made all its kills); the runner's heartbeat keeps its lease.
      while (gate && !fs.existsSync(path.join(args.logDir, 'release'))) await sleep(20);
      log('end', { task: ctx.name, token });
      return { token, owner: args.owner, pid: process.pid };
    },
    {
      concurrency: args.concurrency ?? 2,
      leaseMs: args.leaseMs,
      heartbeatMs: args.heartbeatMs,
      pollIntervalMs: args.pollIntervalMs ?? 100,
    },
  );
  log('done', { status: res.status });
  await client.close();
}

async function claimMode(): Promise<void> {
  const client = createClient({ uri: args.uri, leaseMs: args.leaseMs, workerId: args.owner });
  await client.ensureIndexes();
  log('ready');
  // The race: every process fires the same getOrCreate/addTask calls at the same instant.
  // The parent writes the barrier time into `<logDir>/go` once every process is ready.
  const go = path.join(args.logDir, 'go');
  while (!fs.existsSync(go)) await sleep(5);
  const barrierAt = Number(fs.readFileSync(go, 'utf8'));
  await sleep(Math.max(0, barrierAt - Date.now()));
  const late = Date.now() - barrierAt;
  const n = args.raceNames ?? 20;
  const created = await Promise.all(
    Array.from({ length: n }, (_, i) =>
      client.getOrCreateTaskContainer(`race-${i}`).then(
        (c) => ({ i, isNew: c.isNew, id: c.id, error: null as string | null }),
        (e: Error) => ({ i, isNew: false, id: null, error: `${e.name}: ${e.message}` }),
      ),
    ),
  );
  const rc = await client.getOrCreateTaskContainer('race-tasks');
  const added = await Promise.all(
    Array.from({ length: n }, (_, i) =>
      rc.addTask(`t-${i}`, { i }).then(
        (t) => ({ i, id: t.id, error: null as string | null }),
        (e: Error) => ({ i, id: null, error: `${e.name}: ${e.message}` }),
      ),
    ),
  );
  log('race', { created, added, late });

  const pause = (): Promise<void> => sleep(5 + Math.floor(Math.random() * 10));
  for (;;) {
    if (!args.container) break; // race only
    const lease = await client.claimNext(
      { container: args.container },
      { owner: args.owner, leaseMs: args.leaseMs },
    );
    if (!lease) {
      const s = await client.summary(args.container);
      if (!s || (s.counts.pending === 0 && s.counts.running === 0)) break;
      await pause();
      continue;
    }
    const t = lease.task;
    log('start', { task: t.name, token: lease.token, key: t.key });
    await sleep(5 + Math.floor(Math.random() * 25));
    log('end', { task: t.name, token: lease.token, key: t.key });
    await lease.succeed({ owner: args.owner, token: lease.token });
    log('succeeded', { task: t.name, token: lease.token });
  }
  log('done');
  await client.close();
}

(args.mode === 'run' ? runMode() : claimMode()).then(
  () => process.exit(0),
  (err: Error) => {
    log('error', { message: String(err?.stack ?? err) });
    process.stderr.write(`worker ${args.owner} failed: ${err?.stack ?? err}\n`);
    process.exit(1);
  },
);
