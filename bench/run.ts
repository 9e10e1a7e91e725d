/**
 * The benchmark: `npm run bench` (full) or `npm run bench:quick`.
 *
 * Starts or uses a server (MONGODB_URI, else startEmbeddedServer: mongodb-memory-server, else
 * FerretDB), measures the library against the raw driver (the floor) and Agenda 6, side by side
 * and interleaved, and writes bench/results/latest.json (quick: bench/results/quick.json), the
 * plots docs/img/bench-*.svg and the generated block of docs/performance.md.
 *
 * Flags: --quick, --only=overhead,pipeline,bulk,scale,flood,explain (writes bench/results/partial.json, no doc), --no-doc, --doc (quick: also write the doc),
 * --replot (re-render plots and doc from the last JSON; with --scale-1m: from scale.json).
 *
 * `npm run bench:scale` (--scale-1m): only section 4 at 10k / 100k / 1M tasks. Without
 * MONGODB_URI it runs on FerretDB's PostgreSQL handler over a throwaway PostgreSQL cluster
 * (bench/postgres.ts), because FerretDB/SQLite pushes no filter down and a million-task container
 * there is hours of scanning. Writes bench/results/scale.json, docs/img/bench-scale-1m.svg and its
 * own generated block of docs/performance.md.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ObjectId, Timestamp, type Collection, type Document, type MongoClient } from 'mongodb';
import mongoose, { type Connection } from 'mongoose';
import { createClient, type Client, type TaskLease } from '../lib';
import { startEmbeddedServer, startFerretDB, type EmbeddedServer } from '../lib/testing';
import { openAgenda } from './agenda';
import { startPostgres, type Postgres } from './postgres';
import { lineChart } from './plot';
import { fmt, interleave, latencies, round, roundSpread, spread, type Sample, type Spread } from './stats';

const ROOT = path.resolve(__dirname, '..');
const argv = process.argv.slice(2);
const QUICK = argv.includes('--quick');
/** `npm run bench:scale`: section 4 only, up to 1M tasks (FerretDB/PostgreSQL unless MONGODB_URI). */
const SCALE_RUN = argv.includes('--scale-1m');
/** True when the server pushes equality filters down (FerretDB/PostgreSQL; MongoDB uses indexes). */
let PUSHDOWN = false;
const ONLY =
  argv
    .find((a) => a.startsWith('--only='))
    ?.slice(7)
    .split(',') ?? null;
const WRITE_DOC = argv.includes('--doc') || (!QUICK && !argv.includes('--no-doc'));
const WC = { w: 1, j: true } as const;
/**
 * FerretDB/SQLite can be busy for over 10 s on one scan of a 100k collection; the driver's server
 * monitor then times out (connectTimeoutMS) and clears the pool mid-command. Be patient instead.
 */
export const SLOW_SERVER = {
  connectTimeoutMS: 300_000,
  serverSelectionTimeoutMS: 300_000,
  socketTimeoutMS: 0,
} as const; // the library's default write concern, used by the raw floor too

const log = (s: string): void => {
  process.stderr.write(`[bench ${((performance.now() - T0) / 1000).toFixed(0).padStart(4)}s] ${s}\n`);
};
const T0 = performance.now();
const want = (section: string): boolean => (SCALE_RUN ? section === 'scale' : !ONLY || ONLY.includes(section));

// -------------------------------------------------------------------------------------------
// Connections and command counting
// -------------------------------------------------------------------------------------------

let SERVER: EmbeddedServer;
const opened: Connection[] = [];
/** Commands started, by `name:collection`, across every connection the bench opened. */
const commands = new Map<string, number>();

async function connect(dbName: string): Promise<Connection> {
  const conn = await mongoose
    .createConnection(SERVER.uri, { dbName, monitorCommands: true, ...SLOW_SERVER })
    .asPromise();
  (conn.getClient() as MongoClient).on('commandStarted', (e) => {
    const coll = typeof e.command[e.commandName] === 'string' ? String(e.command[e.commandName]) : '';
    const k = `${e.commandName}:${coll}`;
    commands.set(k, (commands.get(k) ?? 0) + 1);
  });
  opened.push(conn);
  return conn;
}

function snapshot(): Map<string, number> {
  return new Map(commands);
}
function since(before: Map<string, number>, filter?: (k: string) => boolean): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of commands) {
    const d = v - (before.get(k) ?? 0);
    if (d > 0 && (!filter || filter(k))) out[k] = d;
  }
  return out;
}
const sum = (r: Record<string, number>): number => Object.values(r).reduce((a, b) => a + b, 0);

async function freshDb(name: string): Promise<{ conn: Connection; client: Client }> {
  const conn = await connect(name);
  await conn.dropDatabase();
  const client = createClient({ connection: conn, leaseMs: 600_000, progressIntervalMs: 0 });
  await client.ensureIndexes();
  return { conn, client };
}

function tasksOf(conn: Connection): Collection<Document> {
  return conn.db!.collection('pts_tasks');
}

/** A well-formed pending task document, as `addTasks` writes it (used to build fixtures fast). */
function taskDoc(
  containerId: ObjectId,
  container: string,
  name: string,
  now: Date,
  over: Document = {},
): Document {
  return {
    _id: new ObjectId(),
    containerId,
    container,
    name,
    state: 'pending',
    dependsOn: [],
    waitingOn: [],
    weight: 1,
    percentageComplete: 0,
    statusText: null,
    taskData: { n: name },
    processingData: null,
    result: null,
    invokeCount: 0,
    attempts: 0,
    maxRetries: 0,
    retryDelayMs: 1000,
    backoff: 'exponential',
    maxRetryDelayMs: 3_600_000,
    failures: [],
    failureCount: 0,
    lease: null,
    fence: 0,
    key: null,
    runAfter: now,
    createdAt: now,
    updatedAt: now,
    lastInvokedAt: null,
    endedAt: null,
    durationMs: null,
    rev: 1,
    changedAt: new Timestamp({ t: Math.floor(now.getTime() / 1000), i: 1 }),
    ...over,
  };
}

async function claimMany(client: Client, container: string, n: number): Promise<TaskLease[]> {
  const out: TaskLease[] = [];
  for (let i = 0; i < n; i++) {
    const l = await client.claimNext({ container });
    if (!l) throw new Error(`claimMany: only ${i} of ${n} tasks ready`);
    out.push(l);
  }
  return out;
}

async function timed(ops: number, fn: () => Promise<unknown>): Promise<Sample> {
  const t = performance.now();
  await fn();
  return { ops, ms: performance.now() - t };
}

// -------------------------------------------------------------------------------------------
// Configuration (sizes depend on mode and server; every scale-down is recorded with its reason)
// -------------------------------------------------------------------------------------------

interface Config {
  rounds: number;
  heartbeatOps: number;
  succeedOps: number;
  pipelineTasks: number;
  pipelineRounds: number;
  concurrency: number[];
  bulkN: number;
  bulkSingleN: number;
  bulkRounds: number;
  scaleSizes: number[];
  scaleSamples: (size: number) => number;
  addTasksScaleN: number;
  rssTasks: number;
  floodCalls: number;
  floodRounds: number;
  notes: string[];
}

function config(kind: string, scaleRun = SCALE_RUN): Config {
  const ferret = kind === 'ferretdb';
  const notes: string[] = [];
  if (scaleRun) return scaleRunConfig(ferret);
  const c: Config = {
    rounds: QUICK ? 3 : 5,
    heartbeatOps: QUICK ? 40 : 100,
    succeedOps: QUICK ? 15 : 30,
    pipelineTasks: QUICK ? 40 : 100,
    pipelineRounds: QUICK ? 2 : 3,
    concurrency: [1, 4, 16],
    bulkN: 10_000,
    bulkSingleN: 10_000,
    bulkRounds: QUICK ? 2 : 3,
    scaleSizes: QUICK ? [10_000, 100_000] : [10_000, 100_000, 1_000_000],
    scaleSamples: (size) => (size >= 1_000_000 ? 5 : 10),
    addTasksScaleN: 100_000,
    rssTasks: 100_000,
    floodCalls: 100_000,
    floodRounds: QUICK ? 2 : 3,
    notes,
  };
  if (!ferret) {
    if (QUICK) {
      c.bulkN = 2_000;
      c.bulkSingleN = 1_000;
      c.rssTasks = 5_000;
      c.addTasksScaleN = 10_000;
      notes.push(
        'quick mode: bulk add 2,000 (single addTask: 1,000, compared as rates), RSS runner 5,000 tasks, scale 10k/100k',
      );
    }
    return c;
  }
  // FerretDB 1.24 on SQLite: updates and non-_id queries scan the whole collection (measured in
  // the scan probe and the explain section), so every cost grows with collection size.
  c.rounds = QUICK ? 3 : 5;
  c.heartbeatOps = QUICK ? 30 : 60;
  c.succeedOps = QUICK ? 10 : 15;
  c.pipelineTasks = QUICK ? 12 : 40;
  c.bulkN = QUICK ? 100 : 300;
  c.bulkSingleN = QUICK ? 30 : 100;
  c.scaleSizes = QUICK ? [1_000, 5_000] : [1_000, 10_000, 100_000];
  c.scaleSamples = (size) => (size >= 100_000 ? 1 : size >= 5_000 ? (QUICK ? 1 : 3) : QUICK ? 3 : 5);
  c.addTasksScaleN = c.bulkN;
  c.rssTasks = QUICK ? 60 : 400;
  notes.push(
    'FerretDB/SQLite scans the whole collection for every update and every non-_id filter (see the scan probe and section 6), so sizes are scaled down: ' +
      `pipeline ${c.pipelineTasks} tasks/round, bulk add ${c.bulkN} (single addTask ${c.bulkSingleN}, compared as rates), ` +
      `scale ${c.scaleSizes.map((x) => x.toLocaleString('en')).join(' / ')} tasks with ${c.scaleSizes.map((x) => c.scaleSamples(x)).join(' / ')} samples (no 1M: one claim would scan 1M documents, minutes each), ` +
      `addTasks scale case = the bulk-add size, RSS runner ${c.rssTasks} tasks. Run with MONGODB_URI against a real MongoDB for the full-size targets.`,
  );
  return c;
}

/** `--scale-1m`: only the scale section, at 10k / 100k / 1M tasks. */
function scaleRunConfig(ferret: boolean): Config {
  const c = config('external', false);
  c.scaleSizes = [10_000, 100_000, 1_000_000];
  if (!ferret) return c;
  // FerretDB/PostgreSQL: equality filters run in Postgres, but a sorted claim still decodes every
  // pending document in Go (no sort or limit pushdown), about 4,000 documents/s here.
  c.scaleSamples = (size) => (size >= 1_000_000 ? 1 : size >= 100_000 ? 3 : 5);
  c.addTasksScaleN = 0;
  c.rssTasks = 0;
  c.notes.push(
    'FerretDB/PostgreSQL: 1 / 3 / 5 samples at 1M / 100k / 10k (a claim decodes every pending task in FerretDB: minutes at 1M); ' +
      'addTasks and runner RSS are not part of this run (see the main `npm run bench`: on FerretDB a runner claims ~4,000 pending documents/s, so 100k tasks through one runner would take days).',
  );
  return c;
}

// -------------------------------------------------------------------------------------------
// 0. Scan probe (FerretDB): cost of one command vs collection size, to explain everything else
// -------------------------------------------------------------------------------------------

async function scanProbe(): Promise<Document> {
  const conn = await connect('bench_probe');
  await conn.dropDatabase();
  const col = tasksOf(conn);
  await col.createIndex({ containerId: 1, state: 1, _id: 1 });
  const cid = new ObjectId();
  const now = new Date();
  const rows: Document[] = [];
  let have = 0;
  for (const size of QUICK ? [100, 1_000] : [100, 1_000, 5_000]) {
    const docs = [];
    for (let i = have; i < size; i++) docs.push(taskDoc(cid, 'probe', `t${i}`, now));
    if (docs.length) await col.insertMany(docs, { ordered: false });
    have = size;
    const one = (await col.findOne({}))!;
    const upd = spread(
      await latencies(10, (i) =>
        col.updateOne({ _id: one._id }, { $set: { percentageComplete: i } }, { writeConcern: WC }),
      ),
    );
    const byId = spread(await latencies(10, () => col.findOne({ _id: one._id })));
    const byIdx = spread(await latencies(5, () => col.findOne({ containerId: cid, state: 'failed' })));
    rows.push({
      size,
      updateOneByIdMs: round(upd.median, 2),
      findOneByIdMs: round(byId.median, 2),
      findOneByIndexedFieldsMs: round(byIdx.median, 2),
    });
    log(
      `  probe size ${size}: updateOne(_id) ${upd.median.toFixed(1)} ms, findOne(_id) ${byId.median.toFixed(1)} ms, findOne(containerId,state) ${byIdx.median.toFixed(1)} ms`,
    );
  }
  await conn.dropDatabase();
  return { rows };
}

// -------------------------------------------------------------------------------------------
// 1. Per-call overhead: heartbeat and succeed vs one raw updateOne
// -------------------------------------------------------------------------------------------

async function overhead(cfg: Config): Promise<Document> {
  const { conn, client } = await freshDb('bench_overhead');
  const col = tasksOf(conn);
  const container = await client.getOrCreateTaskContainer('overhead');
  const n = 2 + cfg.rounds * cfg.succeedOps * 2;
  await container.addTasks(Array.from({ length: n }, (_, i) => ({ name: `t${i}`, data: { i } })));
  const [libLease, rawLease] = await claimMany(client, 'overhead', 2);
  const rawId = new ObjectId(rawLease.task.id);

  const hbBefore = snapshot();
  await libLease.heartbeat({ percentageComplete: 1 });
  const hbCommands = since(hbBefore);

  log('overhead: heartbeat({percentageComplete}) vs raw updateOne');
  let p = 0;
  const heartbeat = await interleave(
    {
      raw: () =>
        timed(cfg.heartbeatOps, async () => {
          for (let i = 0; i < cfg.heartbeatOps; i++)
            await col.updateOne(
              { _id: rawId },
              { $set: { percentageComplete: ++p % 100 } },
              { writeConcern: WC },
            );
        }),
      heartbeat: () =>
        timed(cfg.heartbeatOps, async () => {
          for (let i = 0; i < cfg.heartbeatOps; i++)
            await libLease.heartbeat({ percentageComplete: ++p % 100 });
        }),
    },
    cfg.rounds,
    'raw',
    log,
  );

  log('overhead: succeed() vs raw updateOne');
  let succeedCommands: Record<string, number> = {};
  const succeed = await interleave(
    {
      raw: async () => {
        const leases = await claimMany(client, 'overhead', cfg.succeedOps);
        const ids = leases.map((l) => new ObjectId(l.task.id));
        return timed(cfg.succeedOps, async () => {
          for (const id of ids)
            await col.updateOne(
              { _id: id, state: 'running' },
              { $set: { state: 'succeeded', result: { ok: 1 }, lease: null } },
              { writeConcern: WC },
            );
        });
      },
      succeed: async () => {
        const leases = await claimMany(client, 'overhead', cfg.succeedOps);
        const before = snapshot();
        const s = await timed(cfg.succeedOps, async () => {
          for (const l of leases) await l.succeed({ ok: 1 });
        });
        const d = since(before);
        succeedCommands = Object.fromEntries(
          Object.entries(d).map(([k, v]) => [k, round(v / cfg.succeedOps, 2)]),
        );
        return s;
      },
    },
    cfg.rounds,
    'raw',
    log,
  );
  await conn.dropDatabase();
  return {
    collectionSize: n,
    heartbeat: { ...heartbeat, opsPerRound: cfg.heartbeatOps, commandsPerCall: hbCommands, target: 0.8 },
    succeed: { ...succeed, opsPerRound: cfg.succeedOps, commandsPerCall: succeedCommands, target: 0.8 },
  };
}

// -------------------------------------------------------------------------------------------
// 2. Pipeline throughput: add → claim → progress ×3 → succeed
// -------------------------------------------------------------------------------------------

async function pipeline(cfg: Config): Promise<Document> {
  const T = cfg.pipelineTasks;
  const run = await freshDb('bench_pipe_run');
  const loop = await freshDb('bench_pipe_claim');
  const floorConn = await connect('bench_pipe_floor');
  await floorConn.dropDatabase();
  const floor = floorConn.db!.collection('floor_tasks');
  await floor.createIndex({ state: 1, _id: 1 });
  const agendaDb = 'bench_pipe_agenda';
  const agendaConn = await connect(agendaDb);
  await agendaConn.dropDatabase();
  const agenda = await openAgenda(SERVER.uri, agendaDb, agendaConn.db);
  const agendaError = typeof agenda === 'string' ? agenda : null;
  if (agendaError) log(`pipeline: Agenda skipped: ${agendaError}`);

  const specs = (r: string): Array<{ name: string; data: unknown }> =>
    Array.from({ length: T }, (_, i) => ({ name: `${r}-${i}`, data: { i } }));
  let roundNo = 0;
  const perTask: Record<string, Record<string, number>> = {};
  const count = (variant: string, before: Map<string, number>): void => {
    const d = since(before, (k) => !/^(hello|ismaster|isMaster|ping|endSessions):/.test(k));
    perTask[variant] = Object.fromEntries(Object.entries(d).map(([k, v]) => [k, round(v / T, 2)]));
  };
  const reset = async (conn: Connection): Promise<void> => {
    await conn.db!.collection('pts_tasks').deleteMany({});
    await conn.db!.collection('pts_containers').deleteMany({});
  };

  const byConcurrency: Document[] = [];
  for (const c of cfg.concurrency) {
    log(`pipeline: concurrency ${c}, ${T} tasks per round`);
    const floorRound = (variant: string, shape: 'small' | 'task') => async (): Promise<Sample> => {
      await floor.deleteMany({});
      const before = snapshot();
      const s = await timed(T, async () => {
        const now = new Date();
        const cid = new ObjectId();
        await floor.insertMany(
          Array.from({ length: T }, (_, i) =>
            shape === 'small'
              ? {
                  name: `t${i}`,
                  state: 'pending',
                  data: { i },
                  percentageComplete: 0,
                  lease: null,
                  createdAt: now,
                }
              : taskDoc(cid, 'floor', `t${i}`, now),
          ),
          { writeConcern: WC },
        );
        await Promise.all(
          Array.from({ length: c }, async (_, w) => {
            for (;;) {
              const t = await floor.findOneAndUpdate(
                { state: 'pending' },
                {
                  $set: {
                    state: 'running',
                    lease: { owner: `w${w}`, expiresAt: new Date(Date.now() + 600_000) },
                  },
                },
                { sort: { _id: 1 }, returnDocument: 'after', writeConcern: WC },
              );
              if (!t) return;
              for (const p of [25, 50, 75])
                await floor.updateOne(
                  { _id: t._id },
                  { $set: { percentageComplete: p } },
                  { writeConcern: WC },
                );
              await floor.updateOne(
                { _id: t._id, state: 'running' },
                { $set: { state: 'succeeded', percentageComplete: 100, result: { ok: 1 }, lease: null } },
                { writeConcern: WC },
              );
            }
          }),
        );
      });
      count(variant, before);
      return s;
    };
    const variants: Record<string, () => Promise<Sample>> = {
      floor: floorRound('floor', 'small'),
      'floor (task-sized docs)': floorRound('floor (task-sized docs)', 'task'),
      'container.run': async () => {
        await reset(run.conn);
        const name = `run-${++roundNo}`;
        const before = snapshot();
        const s = await timed(T, async () => {
          const container = await run.client.getOrCreateTaskContainer(name);
          await container.addTasks(specs(name));
          const r = await container.run(
            async (ctx) => {
              for (const p of [25, 50, 75]) {
                ctx.progress(p);
                await ctx.flush();
              }
              return { ok: 1 };
            },
            { concurrency: c, progressIntervalMs: 0 },
          );
          if (r.succeeded.length !== T)
            throw new Error(`container.run: ${r.succeeded.length}/${T} succeeded`);
        });
        count('container.run', before);
        return s;
      },
      claimNext: async () => {
        await reset(loop.conn);
        const name = `loop-${++roundNo}`;
        const before = snapshot();
        let done = 0;
        const s = await timed(T, async () => {
          const container = await loop.client.getOrCreateTaskContainer(name);
          await container.addTasks(specs(name));
          await Promise.all(
            Array.from({ length: c }, async () => {
              for (;;) {
                const lease = await loop.client.claimNext({ container: name });
                if (!lease) return;
                for (const p of [25, 50, 75]) await lease.heartbeat({ percentageComplete: p });
                await lease.succeed({ ok: 1 });
                done++;
              }
            }),
          );
        });
        if (done !== T) throw new Error(`claimNext loop: ${done}/${T}`);
        count('claimNext', before);
        return s;
      },
    };
    if (typeof agenda !== 'string') {
      variants.agenda = async () => {
        await agendaConn.db!.collection('agendaJobs').deleteMany({});
        const before = snapshot();
        const s = await agenda.round(T, c);
        count('agenda', before);
        return s;
      };
    }
    const r = await interleave(variants, cfg.pipelineRounds, 'floor', log);
    const vsAgenda: Record<string, Spread> = {};
    if (r.rates.agenda) {
      for (const v of ['container.run', 'claimNext'])
        vsAgenda[v] = roundSpread(spread(r.rates[v].map((x, i) => x / r.rates.agenda[i])));
    }
    const vsTaskFloor = roundSpread(
      spread(r.rates['container.run'].map((x, i) => x / r.rates['floor (task-sized docs)'][i])),
    );
    byConcurrency.push({ concurrency: c, ...r, vsAgenda, vsTaskFloor });
  }
  await floorConn.dropDatabase();
  await agendaConn.dropDatabase();
  await run.conn.dropDatabase();
  await loop.conn.dropDatabase();
  return {
    tasksPerRound: T,
    rounds: cfg.pipelineRounds,
    agendaError,
    commandsPerTask: perTask,
    byConcurrency,
    targets: { vsAgenda: 3, vsFloor: 0.7 },
  };
}

// -------------------------------------------------------------------------------------------
// 3. Bulk add
// -------------------------------------------------------------------------------------------

async function bulk(cfg: Config): Promise<Document> {
  const { conn, client } = await freshDb('bench_bulk');
  const col = tasksOf(conn);
  const N = cfg.bulkN;
  const S = cfg.bulkSingleN;
  let k = 0;
  const clean = async (): Promise<void> => {
    await col.deleteMany({});
    await conn.db!.collection('pts_containers').deleteMany({});
  };
  log(`bulk: addTasks(${N}) vs ${S} × addTask vs insertMany(${N})`);
  const r = await interleave(
    {
      insertMany: async () => {
        await clean();
        const c = await client.getOrCreateTaskContainer(`bulk-${++k}`);
        const now = new Date();
        const docs = Array.from({ length: N }, (_, i) => taskDoc(c._id, c.name(), `t${i}`, now));
        return timed(N, async () => {
          for (let i = 0; i < N; i += 1000)
            await col.insertMany(docs.slice(i, i + 1000), { writeConcern: WC });
        });
      },
      addTasks: async () => {
        await clean();
        const c = await client.getOrCreateTaskContainer(`bulk-${++k}`);
        const specs = Array.from({ length: N }, (_, i) => ({ name: `t${i}`, data: { n: `t${i}` } }));
        const s = await timed(N, () => c.addTasks(specs));
        const sum = await c.summary();
        if (sum.counts.pending !== N) throw new Error(`addTasks: ${sum.counts.pending} pending`);
        return s;
      },
      addTask: async () => {
        await clean();
        const c = await client.getOrCreateTaskContainer(`bulk-${++k}`);
        return timed(S, async () => {
          for (let i = 0; i < S; i++) await c.addTask(`t${i}`, { n: `t${i}` });
        });
      },
    },
    cfg.bulkRounds,
    'insertMany',
    log,
  );
  const vsSingle = roundSpread(spread(r.rates.addTasks.map((x, i) => x / r.rates.addTask[i])));
  await conn.dropDatabase();
  return { n: N, singleN: S, ...r, addTasksVsSingle: vsSingle, targets: { vsSingle: 5, vsInsertMany: 0.8 } };
}

// -------------------------------------------------------------------------------------------
// 4. Scale
// -------------------------------------------------------------------------------------------

async function buildFixture(
  conn: Connection,
  client: Client,
  name: string,
  size: number,
): Promise<{ insertMs: number; failed: number }> {
  const container = await client.getOrCreateTaskContainer(name);
  const col = tasksOf(conn);
  const now = new Date();
  const counts = { pending: 0, running: 0, succeeded: 0, failed: 0, skipped: 0, cancelled: 0 };
  const t = performance.now();
  const B = 5_000;
  for (let i = 0; i < size; i += B) {
    const docs: Document[] = [];
    for (let j = i; j < Math.min(size, i + B); j++) {
      if (j % 100 === 50) {
        counts.failed++;
        docs.push(
          taskDoc(container._id, name, `t${j}`, now, {
            state: 'failed',
            attempts: 1,
            invokeCount: 1,
            failureCount: 1,
            failures: [
              {
                attempt: 1,
                at: now,
                message: 'boom',
                stack: null,
                code: 'E',
                workerId: 'bench',
                retryable: false,
              },
            ],
            endedAt: now,
          }),
        );
      } else if (j % 5 === 1) {
        counts.succeeded++;
        docs.push(
          taskDoc(container._id, name, `t${j}`, now, {
            state: 'succeeded',
            percentageComplete: 100,
            attempts: 1,
            invokeCount: 1,
            result: { ok: 1 },
            endedAt: now,
          }),
        );
      } else {
        counts.pending++;
        docs.push(taskDoc(container._id, name, `t${j}`, now));
      }
    }
    await col.insertMany(docs, { ordered: false, writeConcern: WC });
  }
  const insertMs = performance.now() - t;
  await conn
    .db!.collection('pts_containers')
    .updateOne(
      { _id: container._id },
      {
        $set: {
          status: 'running',
          counts,
          weights: counts,
          total: size,
          weightTotal: size,
          progressSum: counts.succeeded * 100,
          startedAt: now,
          updatedAt: now,
        },
        $inc: { rev: 1 },
      },
    );
  const s = await client.summary(name);
  if (!s || s.counts.failed !== counts.failed || s.total !== size)
    throw new Error(`fixture counters not stored: ${JSON.stringify(s?.counts)}`);
  // Check the counters against the tasks themselves (skipped at 100k+ on FerretDB/SQLite: a ~1 min
  // scan; the same builder is checked at the smaller sizes).
  if (SERVER.kind !== 'ferretdb' || PUSHDOWN || size < 100_000) {
    const real = await col.countDocuments({ containerId: container._id, state: 'failed' });
    if (real !== counts.failed)
      throw new Error(`fixture counters wrong: ${counts.failed} vs ${real} failed tasks`);
  }
  return { insertMs, failed: counts.failed };
}

async function rssChild(uri: string, dbName: string, name: string, concurrency: number): Promise<Document> {
  const tsx = path.join(ROOT, 'node_modules', 'tsx', 'dist', 'cli.mjs');
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [tsx, path.join(ROOT, 'bench', 'rss-child.ts'), uri, dbName, name, String(concurrency)],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) reject(new Error(`rss child exited ${code}: ${err.slice(-2000)}`));
      else resolve(JSON.parse(out.trim().split('\n').pop()!) as Document);
    });
  });
}

async function scale(cfg: Config): Promise<Document> {
  const rows: Document[] = [];
  for (const size of cfg.scaleSizes) {
    try {
      rows.push(await scaleOne(cfg, size));
    } catch (err) {
      log(`scale ${size} FAILED: ${(err as Error).message}`);
      rows.push({ size, error: (err as Error).message });
    }
  }
  return { rows, ...(cfg.rssTasks > 0 ? await scaleAddAndRss(cfg) : {}) };
}

async function scaleOne(cfg: Config, size: number): Promise<Document> {
  {
    const dbName = `bench_scale_${size}`;
    const { conn, client } = await freshDb(dbName);
    const name = `scale-${size}`;
    log(
      `scale: building ${size.toLocaleString('en')} tasks (raw insertMany batches of 5,000 + container counters)`,
    );
    const fx = await buildFixture(conn, client, name, size);
    log(`scale: inserted in ${(fx.insertMs / 1000).toFixed(1)} s; measuring`);
    const n = cfg.scaleSamples(size);
    const c = (await client.getTaskContainer(name))!;
    const summaryIdle = spread(await latencies(20, () => client.summary(name)));
    const percentage = spread(await latencies(20, () => c.summary().then((s) => s.percentageComplete)));
    const listFailed = spread(await latencies(n, () => c.listTasks({ state: 'failed', limit: 50 })));
    const page1 = await c.listTasks({ state: 'failed', limit: 50 });
    const listNext =
      page1.nextCursor && !(SERVER.kind === 'ferretdb' && !PUSHDOWN && size >= 100_000)
        ? spread(
            await latencies(n, () => c.listTasks({ state: 'failed', limit: 50, cursor: page1.nextCursor! })),
          )
        : null;
    const claim = spread(await latencies(n, () => client.claimNext({ container: name })));
    const summaryRunning = spread(await latencies(n, () => client.summary(name)));
    log(
      `scale ${size}: summary ${summaryIdle.median.toFixed(1)} ms (with ${n} running: ${summaryRunning.median.toFixed(1)} ms), failed page ${listFailed.median.toFixed(1)} ms, claim ${claim.median.toFixed(1)} ms`,
    );
    const row = {
      size,
      fixtureInsertMs: round(fx.insertMs, 0),
      fixtureInsertPerSec: round((size * 1000) / fx.insertMs, 0),
      failedTasks: fx.failed,
      summaryMs: roundSpread(summaryIdle, 2),
      percentageMs: roundSpread(percentage, 2),
      summaryWithRunningMs: roundSpread(summaryRunning, 2),
      runningDuringSummaryWithRunning: n,
      listFailedPageMs: roundSpread(listFailed, 2),
      listFailedNextPageMs: listNext ? roundSpread(listNext, 2) : null,
      claimMs: roundSpread(claim, 2),
      samples: n,
    };
    await conn.dropDatabase();
    return row;
  }
}

async function scaleAddAndRss(cfg: Config): Promise<Document> {
  // addTasks into a new container (the "100k case"; scaled down on FerretDB).
  const A = cfg.addTasksScaleN;
  log(`scale: addTasks(${A.toLocaleString('en')}) into a new container`);
  const a = await freshDb('bench_scale_add');
  const ac = await a.client.getOrCreateTaskContainer('add');
  const t = performance.now();
  await ac.addTasks(Array.from({ length: A }, (_, i) => ({ name: `t${i}`, data: { i } })));
  const addMs = performance.now() - t;
  await a.conn.dropDatabase();

  // Peak RSS of a runner (child process) processing R tasks with trivial handlers.
  const R = cfg.rssTasks;
  log(`scale: RSS of a runner processing ${R.toLocaleString('en')} tasks (child process)`);
  const r = await freshDb('bench_rss');
  await r.client.getOrCreateTaskContainer('rss');
  const rc = (await r.client.getTaskContainer('rss'))!;
  const now = new Date();
  for (let i = 0; i < R; i += 5000) {
    await tasksOf(r.conn).insertMany(
      Array.from({ length: Math.min(5000, R - i) }, (_, j) => taskDoc(rc._id, 'rss', `t${i + j}`, now)),
      { writeConcern: WC },
    );
  }
  await r.conn
    .db!.collection('pts_containers')
    .updateOne(
      { _id: rc._id },
      { $set: { 'counts.pending': R, 'weights.pending': R, total: R, weightTotal: R } },
    );
  const rss = await rssChild(SERVER.uri, 'bench_rss', 'rss', 16);
  if (rss.succeeded !== R) throw new Error(`rss child: ${rss.succeeded}/${R} succeeded`);
  log(
    `scale: runner peak RSS ${Number(rss.peakRssMb).toFixed(0)} MB (VmHWM ${Number(rss.vmHwmMb).toFixed(0)} MB), ${R} tasks in ${(Number(rss.ms) / 1000).toFixed(1)} s`,
  );
  await r.conn.dropDatabase();
  return {
    addTasks: { n: A, ms: round(addMs, 0), perSec: round((A * 1000) / addMs, 0) },
    rss: {
      tasks: R,
      concurrency: 16,
      ...Object.fromEntries(
        Object.entries(rss).map(([k, v]) => [k, typeof v === 'number' ? round(v, 1) : v]),
      ),
      targetMb: 250,
    },
    targets: { summaryMedianMs: 20, rssMb: 250 },
  };
}

// -------------------------------------------------------------------------------------------
// 5. Progress flood
// -------------------------------------------------------------------------------------------

async function flood(cfg: Config): Promise<Document> {
  const { conn, client } = await freshDb('bench_flood');
  const col = tasksOf(conn);
  const N = cfg.floodCalls;
  let k = 0;
  const rows: Document[] = [];
  const one = async (report: boolean): Promise<Sample> => {
    await col.deleteMany({});
    const name = `flood-${++k}`;
    const c = await client.getOrCreateTaskContainer(name);
    await c.addTask('t', null);
    const before = snapshot();
    let work = 0;
    const s = await timed(N, () =>
      c.run(
        (ctx) => {
          for (let i = 1; i <= N; i++) {
            work += i & 1;
            if (report) ctx.progress((i * 100) / N / 1.0001, `step ${i}`);
          }
          return { work };
        },
        { concurrency: 1, progressIntervalMs: 1000 },
      ),
    );
    const writes = since(before, (key) => /^(update|findAndModify):pts_tasks$/.test(key));
    const t = await col.findOne({ containerId: c._id, name: 't' });
    const persisted = t?.statusText === `step ${N}` && t?.state === 'succeeded';
    if (report && !persisted)
      throw new Error(
        `flood: last value not persisted: ${JSON.stringify({ state: t?.state, statusText: t?.statusText })}`,
      );
    rows.push({
      report,
      ms: round(s.ms, 1),
      taskWrites: writes,
      taskWriteCount: sum(writes),
      lastStatusText: t?.statusText ?? null,
      persisted,
    });
    return s;
  };
  log(`flood: ${N.toLocaleString('en')} × ctx.progress() vs a handler that does not report`);
  const r = await interleave(
    { silent: () => one(false), flood: () => one(true) },
    cfg.floodRounds,
    'silent',
    log,
  );
  const fl = rows.filter((x) => x.report);
  const si = rows.filter((x) => !x.report);
  const added = spread(fl.map((x, i) => Number(x.ms) - Number(si[i]?.ms ?? NaN)));
  await conn.dropDatabase();
  return {
    calls: N,
    progressIntervalMs: 1000,
    runs: rows,
    writesPerFloodRun: spread(fl.map((x) => Number(x.taskWriteCount))),
    writesPerSilentRun: spread(si.map((x) => Number(x.taskWriteCount))),
    addedMs: roundSpread(added, 1),
    ratio: r.ratio,
    lastValuePersisted: fl.every((x) => x.persisted),
  };
}

// -------------------------------------------------------------------------------------------
// 6. Index use (explain)
// -------------------------------------------------------------------------------------------

function stages(plan: unknown, out: string[] = []): string[] {
  if (plan && typeof plan === 'object') {
    for (const [k, v] of Object.entries(plan as Record<string, unknown>)) {
      if (k === 'stage' && typeof v === 'string') out.push(v);
      else if (k === 'rejectedPlans') continue;
      else stages(v, out);
    }
  }
  return out;
}

async function explain(): Promise<Document> {
  const { conn, client } = await freshDb('bench_explain');
  const db = conn.db!;
  const c = await client.getOrCreateTaskContainer('explain-a');
  await c.addTasks([
    { name: 'root' },
    { name: 'child', dependsOn: ['root'] },
    ...Array.from({ length: 50 }, (_, i) => ({ name: `t${i}` })),
  ]);
  const lease = (await client.claimNext({ container: 'explain-a' }))!;
  const now = new Date();
  const cid = c._id;
  const tid = new ObjectId(lease.task.id);
  const q: Array<{
    name: string;
    coll: string;
    kind: 'find' | 'findAndModify' | 'update';
    filter: Document;
    sort?: Document;
    limit?: number;
    update?: Document;
  }> = [
    {
      name: 'listContainers by status',
      coll: 'pts_containers',
      kind: 'find',
      filter: { status: 'running' },
      sort: { _id: -1 },
      limit: 51,
    },
    {
      name: 'listContainers by statuses + cursor',
      coll: 'pts_containers',
      kind: 'find',
      filter: { status: { $in: ['running', 'failed'] }, _id: { $lt: new ObjectId() } },
      sort: { _id: -1 },
      limit: 51,
    },
    {
      name: 'listContainers by name prefix',
      coll: 'pts_containers',
      kind: 'find',
      filter: { name: { $regex: '^explain' } },
      sort: { _id: -1 },
      limit: 51,
    },
    { name: 'container by name', coll: 'pts_containers', kind: 'find', filter: { name: 'explain-a' } },
    {
      name: 'listTasks by state + cursor',
      coll: 'pts_tasks',
      kind: 'find',
      filter: { containerId: cid, state: 'failed', _id: { $gt: tid } },
      sort: { _id: 1 },
      limit: 101,
    },
    {
      name: 'listTasks by states',
      coll: 'pts_tasks',
      kind: 'find',
      filter: { containerId: cid, state: { $in: ['failed', 'pending'] } },
      sort: { _id: 1 },
      limit: 101,
    },
    {
      name: 'summary: running tasks of a container',
      coll: 'pts_tasks',
      kind: 'find',
      filter: { containerId: cid, state: 'running' },
    },
    { name: 'task by name', coll: 'pts_tasks', kind: 'find', filter: { containerId: cid, name: 't1' } },
    {
      name: 'claim (container)',
      coll: 'pts_tasks',
      kind: 'findAndModify',
      filter: {
        state: 'pending',
        'waitingOn.0': { $exists: false },
        runAfter: { $lte: now },
        containerId: cid,
        key: null,
      },
      sort: { _id: 1 },
      update: { $set: { state: 'running' } },
    },
    {
      name: 'claim (any container)',
      coll: 'pts_tasks',
      kind: 'findAndModify',
      filter: { state: 'pending', 'waitingOn.0': { $exists: false }, runAfter: { $lte: now }, key: null },
      sort: { _id: 1 },
      update: { $set: { state: 'running' } },
    },
    {
      name: 'heartbeat (_id + state + fence)',
      coll: 'pts_tasks',
      kind: 'update',
      filter: { _id: tid, state: 'running', fence: lease.token },
      update: { $set: { percentageComplete: 5 } },
    },
    {
      name: 'succeed/fail (_id + state + fence)',
      coll: 'pts_tasks',
      kind: 'findAndModify',
      filter: { _id: tid, state: 'running', fence: lease.token },
      update: { $set: { percentageComplete: 5 } },
    },
    {
      name: 'sweep (state + lease.expiresAt)',
      coll: 'pts_tasks',
      kind: 'find',
      filter: { state: 'running', 'lease.expiresAt': { $lte: now } },
      limit: 1000,
    },
    {
      name: 'waitingOn unblock',
      coll: 'pts_tasks',
      kind: 'update',
      filter: { containerId: cid, waitingOn: 'root' },
      update: { $pull: { waitingOn: 'root' } },
    },
    {
      name: 'container counters ($inc by _id)',
      coll: 'pts_containers',
      kind: 'findAndModify',
      filter: { _id: cid },
      update: { $inc: { rev: 1 } },
    },
  ];
  const strict = SERVER.kind !== 'ferretdb';
  const rows: Document[] = [];
  for (const x of q) {
    let res: Document;
    let explainedAs: string = x.kind;
    const asFind = (): Promise<Document> => {
      let cur = db.collection(x.coll).find(x.filter);
      if (x.sort) cur = cur.sort(x.sort);
      if (x.limit) cur = cur.limit(x.limit);
      return cur.explain('queryPlanner');
    };
    try {
      if (x.kind === 'find') res = await asFind();
      else if (x.kind === 'findAndModify') {
        res = await db.command({
          explain: {
            findAndModify: x.coll,
            query: x.filter,
            ...(x.sort ? { sort: x.sort } : {}),
            update: x.update,
          },
          verbosity: 'queryPlanner',
        });
      } else {
        res = await db.command({
          explain: {
            update: x.coll,
            updates: [{ q: x.filter, u: x.update!, multi: x.name === 'waitingOn unblock' }],
          },
          verbosity: 'queryPlanner',
        });
      }
    } catch (err) {
      explainedAs = `find (explain of ${x.kind} failed: ${(err as Error).message.split('\n')[0].slice(0, 120)})`;
      res = await asFind();
    }
    const qp = (res.queryPlanner ?? {}) as Document;
    const st = stages(qp.winningPlan ?? {});
    const sqlite = Array.isArray(qp.Plan) ? (qp.Plan as string[]) : null;
    const index = strict
      ? (JSON.stringify(qp.winningPlan ?? {}).match(/"indexName":"([^"]+)"/)?.[1] ?? null)
      : null;
    const ok = strict ? !st.includes('COLLSCAN') && st.some((s) => /IXSCAN|IDHACK|EXPRESS/.test(s)) : null;
    rows.push({
      query: x.name,
      collection: x.coll,
      explainedAs,
      filter: JSON.stringify(x.filter),
      stages: st,
      index,
      sqlitePlan: sqlite,
      pushdown: sqlite
        ? {
            filter: res.filterPushdown ?? null,
            sort: res.sortPushdown ?? null,
            limit: res.limitPushdown ?? null,
          }
        : null,
      indexed: ok,
    });
    log(`explain ${x.name}: ${sqlite ? sqlite.join(' | ') : st.join(' > ')}${index ? ` [${index}]` : ''}`);
  }
  await conn.dropDatabase();
  const failures = rows.filter((r) => r.indexed === false).map((r) => r.query);
  return { strict, rows, failures };
}

// -------------------------------------------------------------------------------------------
// Report
// -------------------------------------------------------------------------------------------

function machine(): Document {
  const cpus = os.cpus();
  return {
    cores: cpus.length,
    cpuModel: cpus[0]?.model ?? 'unknown',
    memoryGb: round(os.totalmem() / 1024 ** 3, 1),
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    loadAvgAtStart: os.loadavg().map((v) => round(v, 2)),
  };
}

function md(results: Document): string {
  const L: string[] = [];
  const m = results.machine as Document;
  const target = (v: number, t: number): string =>
    Number.isFinite(v) ? (v >= t ? `✅ ≥ ${t}` : `❌ < ${t}`) : 'n/a';
  L.push(
    `Generated by \`${results.command}\` on ${results.finishedAt} in ${round(Number(results.durationS) / 60, 1)} min.`,
  );
  L.push('');
  L.push(`- **Server:** ${results.server}`);
  L.push(
    `- **Machine:** ${m.cores} cores (${m.cpuModel}), ${m.memoryGb} GB RAM, ${m.platform}, Node ${m.node}, load average at start ${(m.loadAvgAtStart as number[]).join(' / ')}`,
  );
  L.push(
    `- **Method:** every comparison runs its variants side by side in one process, interleaved with the order rotated each round; ratios are per round, shown as median (min–max) over the rounds. Write concern \`{ w: 1, j: true }\` (the library default) for both the library and the raw driver.`,
  );
  for (const n of results.notes as string[]) L.push(`- **Scaled down:** ${n}`);
  L.push('');
  const s = results.sections as Document;
  if (s.probe) {
    L.push('### Scan probe: one command vs collection size');
    L.push('');
    L.push('| documents | updateOne by _id (ms) | findOne by _id (ms) | findOne by indexed fields (ms) |');
    L.push('|---:|---:|---:|---:|');
    for (const r of (s.probe as Document).rows as Document[])
      L.push(`| ${r.size} | ${r.updateOneByIdMs} | ${r.findOneByIdMs} | ${r.findOneByIndexedFieldsMs} |`);
    L.push('');
  }
  if (s.overhead) {
    const o = s.overhead as Document;
    const hb = o.heartbeat as Document;
    const sc = o.succeed as Document;
    L.push('### 1. Per-call overhead vs one raw `updateOne`');
    L.push('');
    L.push(
      '| operation | library ops/s | raw updateOne ops/s | ratio (median, min–max) | target | commands per call |',
    );
    L.push('|---|---:|---:|---:|---|---|');
    const row = (label: string, r: Document, key: string): void => {
      const rate = r.rate as Record<string, Spread>;
      const ratio = (r.ratio as Record<string, Spread>)[key];
      L.push(
        `| ${label} | ${rate[key].median} | ${rate.raw.median} | ${fmt(ratio)} | ${target(ratio.median, 0.8)} | ${Object.entries(
          r.commandsPerCall as Record<string, number>,
        )
          .map(([k, v]) => `${k} ×${v}`)
          .join(', ')} |`,
      );
    };
    row('`lease.heartbeat({percentageComplete})`', hb, 'heartbeat');
    row('`lease.succeed(result)`', sc, 'succeed');
    L.push('');
  }
  if (s.pipeline) {
    const p = s.pipeline as Document;
    L.push(
      `### 2. Pipeline throughput: add → claim → progress ×3 → succeed (${p.tasksPerRound} tasks per round, ${p.rounds} rounds)`,
    );
    L.push('');
    if (p.agendaError) L.push(`Agenda 6: **not run** — ${p.agendaError}.`);
    L.push('');
    L.push(
      '| workers | floor (raw driver) tasks/s | floor, task-sized docs | container.run tasks/s | claimNext loop tasks/s | Agenda 6 tasks/s | run / floor | claimNext / floor | run / floor with task-sized docs | run / Agenda | claimNext / Agenda |',
    );
    L.push('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const r of p.byConcurrency as Document[]) {
      const rate = r.rate as Record<string, Spread>;
      const ratio = r.ratio as Record<string, Spread>;
      const va = r.vsAgenda as Record<string, Spread>;
      L.push(
        `| ${r.concurrency} | ${rate.floor.median} | ${rate['floor (task-sized docs)'].median} | ${rate['container.run'].median} | ${rate.claimNext.median} | ${rate.agenda?.median ?? 'n/a'} | ${fmt(ratio['container.run'])} ${target(ratio['container.run'].median, 0.7)} | ${fmt(ratio.claimNext)} ${target(ratio.claimNext.median, 0.7)} | ${fmt(r.vsTaskFloor as Spread)} | ${va['container.run'] ? fmt(va['container.run']) : 'n/a'} | ${va.claimNext ? fmt(va.claimNext) : 'n/a'} |`,
      );
    }
    L.push('');
    L.push(
      'Commands per task, all rounds of the last concurrency level (command monitoring; includes the add and the final empty claims):',
    );
    L.push('');
    for (const [v, c] of Object.entries(p.commandsPerTask as Record<string, Record<string, number>>)) {
      L.push(
        `- ${v}: ${round(sum(c), 2)} — ${Object.entries(c)
          .map(([k, n]) => `${k} ×${n}`)
          .join(', ')}`,
      );
    }
    L.push('');
    L.push('![throughput vs concurrency](img/bench-throughput.svg)');
    L.push('');
  }
  if (s.bulk) {
    const b = s.bulk as Document;
    const rate = b.rate as Record<string, Spread>;
    const ratio = b.ratio as Record<string, Spread>;
    L.push(`### 3. Bulk add (${b.n} tasks; single \`addTask\`: ${b.singleN} calls, compared as tasks/s)`);
    L.push('');
    L.push('| variant | tasks/s (median, min–max) |');
    L.push('|---|---:|');
    L.push(`| raw \`insertMany\` (batches of 1,000) | ${fmt(rate.insertMany, 0)} |`);
    L.push(`| \`container.addTasks\` | ${fmt(rate.addTasks, 0)} |`);
    L.push(`| \`container.addTask\` × ${b.singleN} | ${fmt(rate.addTask, 0)} |`);
    L.push('');
    L.push(
      `- addTasks / single addTask: **${fmt(b.addTasksVsSingle as Spread)}** ${target((b.addTasksVsSingle as Spread).median, 5)}`,
    );
    L.push(`- addTasks / insertMany: **${fmt(ratio.addTasks)}** ${target(ratio.addTasks.median, 0.8)}`);
    L.push('');
  }
  if (s.scale) {
    const sc = s.scale as Document;
    L.push('### 4. Scale');
    L.push('');
    L.push(
      '| tasks in container | fixture insert (docs/s) | summary ms | percentage ms | summary ms with running tasks | failed page ms | next failed page ms | claim ms |',
    );
    L.push('|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const r of (sc.rows as Document[]).filter((x) => !x.error)) {
      const f = (x: unknown): string => (x ? fmt(x as Spread, 1) : 'n/a');
      L.push(
        `| ${Number(r.size).toLocaleString('en')} | ${r.fixtureInsertPerSec} | ${f(r.summaryMs)} | ${f(r.percentageMs)} | ${f(r.summaryWithRunningMs)} (${r.runningDuringSummaryWithRunning} running) | ${f(r.listFailedPageMs)} | ${f(r.listFailedNextPageMs)} | ${f(r.claimMs)} |`,
      );
    }
    L.push('');
    for (const r of (sc.rows as Document[]).filter((x) => x.error))
      L.push(`\n**${Number(r.size).toLocaleString('en')} tasks: failed** — ${String(r.error)}`);
    L.push('');
    L.push(
      'Latencies are median (min–max) of sequential calls. Fixtures are built with raw `insertMany` batches of well-formed task documents (1% failed, 20% succeeded, rest pending) plus one container document with correct counters (checked against `countDocuments` before measuring).',
    );
    L.push('');
    const a = sc.addTasks as Document | undefined;
    if (a)
      L.push(
        `- \`container.addTasks\` of ${Number(a.n).toLocaleString('en')} tasks into a new container: ${(Number(a.ms) / 1000).toFixed(1)} s (${a.perSec} tasks/s).`,
      );
    const r = sc.rss as Document | undefined;
    if (r) {
      L.push(
        `- Runner peak RSS (child process, ${Number(r.tasks).toLocaleString('en')} tasks, trivial handlers, concurrency ${r.concurrency}): **${r.peakRssMb} MB** sampled, VmHWM ${r.vmHwmMb} MB, baseline ${r.baselineRssMb} MB ${Number(r.vmHwmMb ?? r.peakRssMb) < 250 ? '✅ < 250 MB' : '❌ ≥ 250 MB'}; ${(Number(r.ms) / 1000).toFixed(1)} s.`,
      );
      const by = r.rssByTenthMb as number[] | undefined;
      if (by?.length)
        L.push(
          `- RSS (MB) after each tenth of those tasks: ${by.join(' → ')} (growth from the first to the last tenth: ${round(by[by.length - 1] - by[0], 1)} MB).`,
        );
    }
    L.push('');
    L.push(`![summary latency vs container size](img/${results.scaleRun ? 'bench-scale-1m' : 'bench-summary-latency'}.svg)`);
    L.push('');
  }
  if (s.flood) {
    const f = s.flood as Document;
    L.push(
      `### 5. Progress flood (${Number(f.calls).toLocaleString('en')} × \`ctx.progress()\`, progressIntervalMs ${f.progressIntervalMs})`,
    );
    L.push('');
    L.push(
      `- task writes (update/findAndModify on pts_tasks) per flood run: ${fmt(f.writesPerFloodRun as Spread, 0)}; per silent run: ${fmt(f.writesPerSilentRun as Spread, 0)}`,
    );
    L.push(
      `- time added by the flood: ${fmt(f.addedMs as Spread, 1)} ms per run (${round((Number((f.addedMs as Spread).median) * 1000) / Number(f.calls), 2)} µs per call)`,
    );
    L.push(
      `- last value persisted (statusText \`step ${f.calls}\` read back after the run): ${f.lastValuePersisted ? '✅ yes' : '❌ no'}`,
    );
    L.push('');
  }
  if (s.explain) {
    const e = s.explain as Document;
    L.push(
      `### 6. Index use (${e.strict ? 'MongoDB: COLLSCAN fails the bench' : 'FerretDB: SQLite plans recorded, not asserted'})`,
    );
    L.push('');
    L.push('| query | filter | plan |');
    L.push('|---|---|---|');
    for (const r of e.rows as Document[]) {
      const plan = r.sqlitePlan
        ? (r.sqlitePlan as string[]).join('; ')
        : `${(r.stages as string[]).join(' → ')}${r.index ? ` (${r.index})` : ''} ${r.indexed ? '✅' : '❌'}`;
      L.push(
        `| ${r.query}${String(r.explainedAs).startsWith('find (') ? ' (as find)' : ''} | \`${String(r.filter).replace(/\|/g, '\\|')}\` | ${plan} |`,
      );
    }
    L.push('');
  }
  return L.join('\n');
}

/** `ferretdb/sqlite`, `ferretdb/postgresql`, `external`, … for plot titles. */
function serverLabel(results: Document): string {
  const kind = String(results.serverKind);
  const handler = /\((sqlite|postgresql),/.exec(String(results.server))?.[1];
  return kind === 'ferretdb' && handler ? `${kind}/${handler}` : kind;
}

function plots(results: Document): void {
  const s = results.sections as Document;
  const dir = path.join(ROOT, 'docs', 'img');
  fs.mkdirSync(dir, { recursive: true });
  if (s.pipeline) {
    const p = s.pipeline as Document;
    const rows = p.byConcurrency as Document[];
    const names = Object.keys(rows[0].rate as Document);
    const series = names.map((n) => ({
      name: n === 'floor' ? 'raw driver floor' : n,
      points: rows.map((r) => {
        const sp = (r.rate as Record<string, Spread>)[n];
        return { x: Number(r.concurrency), y: sp.median, lo: sp.min, hi: sp.max };
      }),
    }));
    fs.writeFileSync(
      path.join(dir, 'bench-throughput.svg'),
      lineChart(series, {
        title: `Pipeline throughput (${serverLabel(results)})`,
        xLabel: 'concurrent workers',
        yLabel: 'tasks/s (median, min–max)',
        logX: true,
      }),
    );
  }
  if (s.scale) {
    const rows = ((s.scale as Document).rows as Document[]).filter((x) => !x.error);
    const series = [
      { key: 'summaryMs', name: 'summary()' },
      { key: 'summaryWithRunningMs', name: 'summary(), tasks running' },
      { key: 'listFailedPageMs', name: 'failed page' },
      { key: 'claimMs', name: 'claimNext' },
    ].map(({ key, name }) => ({
      name,
      points: rows.map((r) => {
        const sp = r[key] as Spread;
        return { x: Number(r.size), y: sp.median, lo: sp.min, hi: sp.max };
      }),
    }));
    fs.writeFileSync(
      path.join(dir, results.scaleRun ? 'bench-scale-1m.svg' : 'bench-summary-latency.svg'),
      lineChart(series, {
        title: `Latency vs container size (${serverLabel(results)})`,
        xLabel: 'tasks in container',
        yLabel: 'ms (median, min–max)',
        logX: true,
        logY: true,
      }),
    );
  }
}

const BEGIN = SCALE_RUN
  ? '<!-- bench-scale:begin (generated by bench/run.ts --scale-1m; edit outside these markers) -->'
  : '<!-- bench:begin (generated by bench/run.ts; edit outside these markers) -->';
const END = SCALE_RUN ? '<!-- bench-scale:end -->' : '<!-- bench:end -->';

function writeDoc(block: string): void {
  const file = path.join(ROOT, 'docs', 'performance.md');
  const current = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : `# Performance\n\n${BEGIN}\n${END}\n`;
  const a = current.indexOf(BEGIN);
  const b = current.indexOf(END);
  const next =
    a >= 0 && b > a
      ? `${current.slice(0, a + BEGIN.length)}\n${block}\n${current.slice(b)}`
      : `${current.trimEnd()}\n\n${BEGIN}\n${block}\n${END}\n`;
  fs.writeFileSync(file, next);
}

// -------------------------------------------------------------------------------------------

/**
 * `--replot`: re-renders the plots and the generated doc block from the last results JSON
 * (bench/results/latest.json, or scale.json with --scale-1m) without measuring anything.
 */
function replot(): void {
  const file = path.join(ROOT, 'bench', 'results', SCALE_RUN ? 'scale.json' : 'latest.json');
  const results = JSON.parse(fs.readFileSync(file, 'utf8')) as Document;
  plots(results);
  writeDoc(md(results));
  log(`re-rendered docs/performance.md and docs/img/bench-*.svg from ${path.relative(ROOT, file)}`);
}

async function main(): Promise<void> {
  if (argv.includes('--replot')) return replot();
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      log(`${sig}: stopping the server`);
      void (SERVER ? SERVER.stop() : Promise.resolve()).finally(() => process.exit(130));
    });
  }
  const m = machine();
  log(`machine: ${m.cores} cores, ${m.memoryGb} GB, load ${(m.loadAvgAtStart as number[]).join(' ')}`);
  let pg: Postgres | undefined;
  if (SCALE_RUN && !process.env.MONGODB_URI) {
    pg = await startPostgres(log);
    SERVER = await startFerretDB({ postgresqlUrl: pg.url, log: (l) => log(l) });
    SERVER.description += ` over ${pg.version}`;
    PUSHDOWN = true;
  } else {
    SERVER = await startEmbeddedServer({ log: (l) => log(l) });
  }
  log(`server: ${SERVER.description}`);
  const cfg = config(SERVER.kind);
  for (const n of cfg.notes) log(`note: ${n}`);
  const sections: Document = {};
  const failures: string[] = [];
  const section = async (name: string, fn: () => Promise<Document>): Promise<void> => {
    if (!want(name)) return;
    const t = performance.now();
    try {
      sections[name] = { ...(await fn()), seconds: round((performance.now() - t) / 1000, 1) };
    } catch (err) {
      failures.push(`${name}: ${(err as Error).message}`);
      log(`SECTION ${name} FAILED: ${(err as Error).stack}`);
    }
    log(`${name} done in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  };
  try {
    if (SERVER.kind === 'ferretdb' && !SCALE_RUN) await section('probe', scanProbe);
    await section('overhead', () => overhead(cfg));
    await section('pipeline', () => pipeline(cfg));
    await section('bulk', () => bulk(cfg));
    await section('flood', () => flood(cfg));
    await section('explain', explain);
    await section('scale', () => scale(cfg));
  } finally {
    for (const c of opened) await c.close().catch(() => {});
    await SERVER.stop();
    await pg?.stop();
  }
  const explainFailures =
    ((sections.explain as Document | undefined)?.failures as string[] | undefined) ?? [];
  for (const r of (((sections.scale as Document | undefined)?.rows as Document[] | undefined) ?? []).filter(
    (x) => x.error,
  ))
    failures.push(`scale ${r.size}: ${r.error}`);
  if (explainFailures.length) failures.push(`COLLSCAN / no index for: ${explainFailures.join(', ')}`);
  const results: Document = {
    command: `${process.env.MONGODB_URI ? 'MONGODB_URI=… ' : process.env.PTS_EMBEDDED_SERVER ? `PTS_EMBEDDED_SERVER=${process.env.PTS_EMBEDDED_SERVER} ` : ''}${SCALE_RUN ? 'npm run bench:scale' : QUICK ? 'npm run bench:quick' : 'npm run bench'}${argv
      .filter((a) => a !== '--quick' && a !== '--scale-1m')
      .map((a) => ` ${a}`)
      .join('')}`,
    argv,
    quick: QUICK,
    scaleRun: SCALE_RUN,
    server: SERVER.description,
    serverKind: SERVER.kind,
    machine: m,
    loadAvgAtEnd: os.loadavg().map((v) => round(v, 2)),
    finishedAt: new Date().toISOString(),
    durationS: round((performance.now() - T0) / 1000, 1),
    notes: cfg.notes,
    failures,
    sections,
  };
  const outDir = path.join(ROOT, 'bench', 'results');
  fs.mkdirSync(outDir, { recursive: true });
  const out = path.join(outDir, SCALE_RUN ? 'scale.json' : ONLY ? 'partial.json' : QUICK ? 'quick.json' : 'latest.json');
  fs.writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
  const block = md(results);
  process.stdout.write(`\n${block}\n\n`);
  log(`wrote ${path.relative(ROOT, out)}`);
  if (WRITE_DOC && (SCALE_RUN || !ONLY)) {
    plots(results);
    writeDoc(block);
    log('wrote docs/performance.md and docs/img/bench-*.svg');
  }
  if (failures.length) {
    log(`FAILED: ${failures.join('; ')}`);
    process.exitCode = 1;
  }
}

main()
  .then(() => {
    // Exit explicitly: Agenda 6 leaves one ref'd 5-minute timer per processed job behind after
    // stop() (JobProcessor.checkIfJobIsStillAlive's delay, lockLifetime / 2), which otherwise
    // kept the process alive for 300 s after the results were written.
    process.exit(process.exitCode ?? 0);
  })
  .catch((err) => {
    process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
