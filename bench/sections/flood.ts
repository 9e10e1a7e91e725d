/**
 * Section 5, progress flood: a handler calling `ctx.progress()` 100k times vs one that does not
 * report; counts the task writes the throttle lets through and checks the last value is persisted.
 */
import type { Document } from 'mongodb';
import type { Config } from '../config';
import { log, sum, tasksOf, timed, type Bench } from '../harness';
import { interleave, round, roundSpread, spread, type Sample } from '../stats';

export async function flood(bench: Bench, cfg: Config): Promise<Document> {
  const { conn, client } = await bench.freshDb('bench_flood');
  const col = tasksOf(conn);
  const N = cfg.floodCalls;
  let k = 0;
  const rows: Document[] = [];
  const one = async (report: boolean): Promise<Sample> => {
    await col.deleteMany({});
    const name = `flood-${++k}`;
    const c = await client.getOrCreateTaskContainer(name);
    await c.addTask('t', null);
    const before = bench.snapshot();
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
    const writes = bench.since(before, (key) => /^(update|findAndModify):pts_tasks$/.test(key));
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
