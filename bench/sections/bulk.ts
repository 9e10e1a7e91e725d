/**
 * Section 3, bulk add: `container.addTasks` vs single `addTask` calls vs raw `insertMany` batches.
 * The raw batches insert the documents `addTasks` stores (lean: no null or empty field, with
 * `priority`, `seq` and `hasDependents`; lib/store/documents.ts), so both write the same bytes.
 */
import type { Document } from 'mongodb';
import type { Config } from '../config';
import { leanTaskDoc } from '../../lib/store/documents';
import { HOUSEKEEPING, WC, log, taskDoc, tasksOf, timed, type Bench } from '../harness';
import { interleave, round, roundSpread, spread, type Sample } from '../stats';

export async function bulk(bench: Bench, cfg: Config): Promise<Document> {
  const { conn, client } = await bench.freshDb('bench_bulk');
  const col = tasksOf(conn);
  const N = cfg.bulkN;
  const S = cfg.bulkSingleN;
  let k = 0;
  const clean = async (): Promise<void> => {
    await col.deleteMany({});
    await conn.db!.collection('pts_containers').deleteMany({});
  };
  /** Commands and bytes of the timed part of each variant, summed over its rounds. */
  const acc: Record<string, { tasks: number; commands: number; sent: number; received: number }> = {};
  const metered = async (variant: string, fn: () => Promise<Sample>): Promise<Sample> => {
    const before = bench.trafficSnapshot();
    const s = await fn();
    const a = (acc[variant] ??= { tasks: 0, commands: 0, sent: 0, received: 0 });
    a.tasks += s.ops;
    for (const t of Object.values(bench.trafficSince(before, (key) => !HOUSEKEEPING.test(key)))) {
      a.commands += t.commands;
      a.sent += t.sent;
      a.received += t.received;
    }
    return s;
  };
  log(`bulk: addTasks(${N}) vs ${S} × addTask vs insertMany(${N})`);
  const r = await interleave(
    {
      insertMany: async () => {
        await clean();
        const c = await client.getOrCreateTaskContainer(`bulk-${++k}`);
        const now = new Date();
        const docs = Array.from({ length: N }, (_, i) =>
          leanTaskDoc(
            taskDoc(c._id, c.name(), `t${i}`, now, { hasDependents: false, priority: 0, seq: i + 1 }),
          ),
        );
        return metered('insertMany', () =>
          timed(N, async () => {
            for (let i = 0; i < N; i += 1000)
              await col.insertMany(docs.slice(i, i + 1000), { writeConcern: WC });
          }),
        );
      },
      addTasks: async () => {
        await clean();
        const c = await client.getOrCreateTaskContainer(`bulk-${++k}`);
        const specs = Array.from({ length: N }, (_, i) => ({ name: `t${i}`, data: { n: `t${i}` } }));
        const s = await metered('addTasks', () => timed(N, () => c.addTasks(specs)));
        const sum = await c.summary();
        if (sum.counts.pending !== N) throw new Error(`addTasks: ${sum.counts.pending} pending`);
        return s;
      },
      addTask: async () => {
        await clean();
        const c = await client.getOrCreateTaskContainer(`bulk-${++k}`);
        return metered('addTask', () =>
          timed(S, async () => {
            for (let i = 0; i < S; i++) await c.addTask(`t${i}`, { n: `t${i}` });
          }),
        );
      },
    },
    cfg.bulkRounds,
    'insertMany',
    log,
  );
  const vsSingle = roundSpread(spread(r.rates.addTasks.map((x, i) => x / r.rates.addTask[i])));
  await conn.dropDatabase();
  const traffic = Object.fromEntries(
    Object.entries(acc).map(([v, a]) => [
      v,
      {
        commandsPerTask: round(a.commands / a.tasks, 3),
        bytesSentPerTask: Math.round(a.sent / a.tasks),
        bytesReceivedPerTask: Math.round(a.received / a.tasks),
      },
    ]),
  );
  return {
    n: N,
    singleN: S,
    ...r,
    traffic,
    addTasksVsSingle: vsSingle,
    targets: { vsSingle: 5, vsInsertMany: 0.8 },
  };
}
