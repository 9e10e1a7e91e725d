/**
 * Section 1, per-call overhead: `lease.heartbeat()` and `lease.succeed()` vs one raw `updateOne`,
 * interleaved, with the driver commands each call sends.
 */
import { ObjectId, type Document } from 'mongodb';
import type { Config } from '../config';
import { WC, claimMany, log, tasksOf, timed, type Bench } from '../harness';
import { interleave, round } from '../stats';

export async function overhead(bench: Bench, cfg: Config): Promise<Document> {
  const { conn, client } = await bench.freshDb('bench_overhead');
  const col = tasksOf(conn);
  const container = await client.getOrCreateTaskContainer('overhead');
  const n = 2 + cfg.rounds * cfg.succeedOps * 2;
  await container.addTasks(Array.from({ length: n }, (_, i) => ({ name: `t${i}`, data: { i } })));
  const [libLease, rawLease] = await claimMany(client, 'overhead', 2);
  const rawId = new ObjectId(rawLease.task.id);

  const hbBefore = bench.snapshot();
  await libLease.heartbeat({ percentageComplete: 1 });
  const hbCommands = bench.since(hbBefore);

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
        const before = bench.snapshot();
        const s = await timed(cfg.succeedOps, async () => {
          for (const l of leases) await l.succeed({ ok: 1 });
        });
        const d = bench.since(before);
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
