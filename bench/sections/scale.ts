/**
 * Section 4, scale: summary, percentage, failed-task pages and claim latencies in containers of
 * growing size (fixtures built with raw `insertMany`), plus `addTasks` of a large batch and the peak
 * RSS of a runner in a child process (bench/rss-child.ts). The only section of `--scale-1m`.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import type { Document } from 'mongodb';
import type { Connection } from 'mongoose';
import type { Client } from '../../lib';
import type { Config } from '../config';
import { ROOT, WC, log, taskDoc, tasksOf, type Bench } from '../harness';
import { latencies, round, roundSpread, spread } from '../stats';

async function buildFixture(
  bench: Bench,
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
  await conn.db!.collection('pts_containers').updateOne(
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
  if (bench.server.kind !== 'ferretdb' || bench.pushdown || size < 100_000) {
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

export async function scale(bench: Bench, cfg: Config): Promise<Document> {
  const rows: Document[] = [];
  for (const size of cfg.scaleSizes) {
    try {
      rows.push(await scaleOne(bench, cfg, size));
    } catch (err) {
      log(`scale ${size} FAILED: ${(err as Error).message}`);
      rows.push({ size, error: (err as Error).message });
    }
  }
  return { rows, ...(cfg.rssTasks > 0 ? await scaleAddAndRss(bench, cfg) : {}) };
}

async function scaleOne(bench: Bench, cfg: Config, size: number): Promise<Document> {
  {
    const dbName = `bench_scale_${size}`;
    const { conn, client } = await bench.freshDb(dbName);
    const name = `scale-${size}`;
    log(
      `scale: building ${size.toLocaleString('en')} tasks (raw insertMany batches of 5,000 + container counters)`,
    );
    const fx = await buildFixture(bench, conn, client, name, size);
    log(`scale: inserted in ${(fx.insertMs / 1000).toFixed(1)} s; measuring`);
    const n = cfg.scaleSamples(size);
    const c = (await client.getTaskContainer(name))!;
    const summaryIdle = spread(await latencies(20, () => client.summary(name)));
    const percentage = spread(await latencies(20, () => c.summary().then((s) => s.percentageComplete)));
    const listFailed = spread(await latencies(n, () => c.listTasks({ state: 'failed', limit: 50 })));
    const page1 = await c.listTasks({ state: 'failed', limit: 50 });
    const listNext =
      page1.nextCursor && !(bench.server.kind === 'ferretdb' && !bench.pushdown && size >= 100_000)
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

async function scaleAddAndRss(bench: Bench, cfg: Config): Promise<Document> {
  // addTasks into a new container (the "100k case"; scaled down on FerretDB).
  const A = cfg.addTasksScaleN;
  log(`scale: addTasks(${A.toLocaleString('en')}) into a new container`);
  const a = await bench.freshDb('bench_scale_add');
  const ac = await a.client.getOrCreateTaskContainer('add');
  const t = performance.now();
  await ac.addTasks(Array.from({ length: A }, (_, i) => ({ name: `t${i}`, data: { i } })));
  const addMs = performance.now() - t;
  await a.conn.dropDatabase();

  // Peak RSS of a runner (child process) processing R tasks with trivial handlers.
  const R = cfg.rssTasks;
  log(`scale: RSS of a runner processing ${R.toLocaleString('en')} tasks (child process)`);
  const r = await bench.freshDb('bench_rss');
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
  const rss = await rssChild(bench.server.uri, 'bench_rss', 'rss', 16);
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
