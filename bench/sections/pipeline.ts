/**
 * Section 2, pipeline throughput: add → claim → progress ×3 → succeed, at several concurrency
 * levels, for `container.run`, a `claimNext` loop, Agenda 6, the raw-driver floor (small and
 * task-sized documents) and BullMQ on Redis (a reference row on another database), interleaved,
 * with commands and bytes sent and received per task for every variant at every level (driver
 * command monitoring; for BullMQ, ioredis commands and the Redis server's counters).
 */
import { ObjectId, type Document } from 'mongodb';
import type { Connection } from 'mongoose';
import { openAgenda } from '../agenda';
import { openBullMQ, type RedisTraffic } from '../bullmq';
import type { Config } from '../config';
import { HOUSEKEEPING, WC, log, taskDoc, timed, type Bench, type CommandTraffic } from '../harness';
import { interleave, round, roundSpread, spread, type Sample, type Spread } from '../stats';

export async function pipeline(bench: Bench, cfg: Config): Promise<Document> {
  const T = cfg.pipelineTasks;
  const run = await bench.freshDb('bench_pipe_run');
  const loop = await bench.freshDb('bench_pipe_claim');
  const floorConn = await bench.connect('bench_pipe_floor');
  await floorConn.dropDatabase();
  const floor = floorConn.db!.collection('floor_tasks');
  await floor.createIndex({ state: 1, _id: 1 });
  const agendaDb = 'bench_pipe_agenda';
  const agendaConn = await bench.connect(agendaDb);
  await agendaConn.dropDatabase();
  const agenda = await openAgenda(bench.server.uri, agendaDb, agendaConn.db);
  const agendaError = typeof agenda === 'string' ? agenda : null;
  if (agendaError) log(`pipeline: Agenda skipped: ${agendaError}`);
  const bullmq = cfg.bullmq ? await openBullMQ(log) : 'not part of this run (--concurrent)';
  const bullmqError = typeof bullmq === 'string' ? bullmq : null;
  if (bullmqError) log(`pipeline: BullMQ skipped: ${bullmqError}`);
  try {
    const specs = (r: string): Array<{ name: string; data: unknown }> =>
      Array.from({ length: T }, (_, i) => ({ name: `${r}-${i}`, data: { i } }));
    let roundNo = 0;
    /** Per variant, the commands and bytes of every round of the current concurrency level, summed. */
    let mongo: Record<string, { rounds: number; by: Record<string, CommandTraffic> }> = {};
    let redis: { rounds: number; total: RedisTraffic } | null = null;
    const count = (variant: string, before: Map<string, CommandTraffic>): void => {
      const acc = (mongo[variant] ??= { rounds: 0, by: {} });
      acc.rounds++;
      for (const [k, v] of Object.entries(bench.trafficSince(before, (key) => !HOUSEKEEPING.test(key)))) {
        const a = (acc.by[k] ??= { commands: 0, sent: 0, received: 0, ms: 0 });
        a.commands += v.commands;
        a.sent += v.sent;
        a.received += v.received;
        a.ms += v.ms;
      }
    };
    /** The level's traffic per task, by variant (see `Traffic` in the results). */
    const trafficOfLevel = (): Record<string, Document> => {
      const out: Record<string, Document> = {};
      for (const [v, { rounds, by }] of Object.entries(mongo)) {
        const n = T * rounds;
        const all = Object.values(by);
        const total = (f: keyof CommandTraffic): number => all.reduce((x, y) => x + y[f], 0);
        out[v] = {
          database: 'mongodb',
          rounds,
          commandsPerTask: round(total('commands') / n, 2),
          bytesSentPerTask: Math.round(total('sent') / n),
          bytesReceivedPerTask: Math.round(total('received') / n),
          commandMsPerTask: round(total('ms') / n, 1),
          byCommand: Object.fromEntries(
            Object.entries(by).map(([k, t]) => [
              k,
              {
                commands: round(t.commands / n, 2),
                sent: Math.round(t.sent / n),
                received: Math.round(t.received / n),
                ms: round(t.ms / n, 1),
              },
            ]),
          ),
        };
      }
      if (redis) {
        const n = T * redis.rounds;
        const per = (r: Record<string, number>): Record<string, number> =>
          Object.fromEntries(Object.entries(r).map(([k, v]) => [k, round(v / n, 2)]));
        const sumOf = (r: Record<string, number>): number => Object.values(r).reduce((a, b) => a + b, 0);
        out.bullmq = {
          database: 'redis',
          rounds: redis.rounds,
          commandsPerTask: round(sumOf(redis.total.clientCommands) / n, 2),
          serverCommandsPerTask: round(sumOf(redis.total.serverCommands) / n, 2),
          bytesSentPerTask: Math.round(redis.total.bytesIn / n),
          bytesReceivedPerTask: Math.round(redis.total.bytesOut / n),
          scriptSourceBytesPerTask: Math.round(redis.total.scriptSourceBytes / n),
          byCommand: per(redis.total.clientCommands),
          serverByCommand: per(redis.total.serverCommands),
        };
      }
      return out;
    };
    const reset = async (conn: Connection): Promise<void> => {
      await conn.db!.collection('pts_tasks').deleteMany({});
      await conn.db!.collection('pts_containers').deleteMany({});
    };

    const byConcurrency: Document[] = [];
    for (const c of cfg.concurrency) {
      log(`pipeline: concurrency ${c}, ${T} tasks per round`);
      mongo = {};
      redis = null;
      const floorRound = (variant: string, shape: 'small' | 'task') => async (): Promise<Sample> => {
        await floor.deleteMany({});
        const before = bench.trafficSnapshot();
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
      /** One `claimNext` worker: claim, progress ×3, succeed, until nothing is ready; how many it did. */
      const worker = async (container: string): Promise<number> => {
        let n = 0;
        for (;;) {
          const lease = await loop.client.claimNext({ container });
          if (!lease) return n;
          for (const p of [25, 50, 75]) await lease.heartbeat({ percentageComplete: p });
          await lease.succeed({ ok: 1 });
          n++;
        }
      };
      const variants: Record<string, () => Promise<Sample>> = {
        floor: floorRound('floor', 'small'),
        'floor (task-sized docs)': floorRound('floor (task-sized docs)', 'task'),
        'container.run': async () => {
          await reset(run.conn);
          const name = `run-${++roundNo}`;
          const before = bench.trafficSnapshot();
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
          const before = bench.trafficSnapshot();
          let done = 0;
          const s = await timed(T, async () => {
            const container = await loop.client.getOrCreateTaskContainer(name);
            await container.addTasks(specs(name));
            await Promise.all(
              Array.from({ length: c }, async () => {
                const n = await worker(name); // not `done += await …`: that reads `done` before the await
                done += n;
              }),
            );
          });
          if (done !== T) throw new Error(`claimNext loop: ${done}/${T}`);
          count('claimNext', before);
          return s;
        },
      };
      if (cfg.spreadVariant) {
        // The claimNext loop again, but each worker on a container of its own (tasks dealt round
        // robin): the same commands per task, no counter document shared by the workers.
        variants['claimNext (container per worker)'] = async () => {
          await reset(loop.conn);
          const name = `spread-${++roundNo}`;
          const before = bench.trafficSnapshot();
          let done = 0;
          const s = await timed(T, async () => {
            await Promise.all(
              Array.from({ length: c }, async (_, w) => {
                const own = `${name}-w${w}`;
                const container = await loop.client.getOrCreateTaskContainer(own);
                const mine = specs(own).filter((_, i) => i % c === w);
                if (mine.length) await container.addTasks(mine);
                const n = await worker(own);
                done += n;
              }),
            );
          });
          if (done !== T) throw new Error(`claimNext (container per worker): ${done}/${T}`);
          count('claimNext (container per worker)', before);
          return s;
        };
      }
      if (typeof agenda !== 'string') {
        variants.agenda = async () => {
          await agendaConn.db!.collection('agendaJobs').deleteMany({});
          const before = bench.trafficSnapshot();
          const s = await agenda.round(T, c);
          count('agenda', before);
          return s;
        };
      }
      if (typeof bullmq !== 'string') {
        variants.bullmq = async () => {
          const { traffic, ...s } = await bullmq.round(T, c);
          const t = (redis ??= {
            rounds: 0,
            total: { clientCommands: {}, serverCommands: {}, bytesIn: 0, bytesOut: 0, scriptSourceBytes: 0 },
          });
          t.rounds++;
          for (const f of ['clientCommands', 'serverCommands'] as const)
            for (const [k, v] of Object.entries(traffic[f])) t.total[f][k] = (t.total[f][k] ?? 0) + v;
          t.total.bytesIn += traffic.bytesIn;
          t.total.bytesOut += traffic.bytesOut;
          t.total.scriptSourceBytes += traffic.scriptSourceBytes;
          return s;
        };
      }
      const r = await interleave(variants, cfg.pipelineRounds, 'floor', log);
      const vsAgenda: Record<string, Spread> = {};
      if (r.rates.agenda) {
        for (const v of ['container.run', 'claimNext', 'claimNext (container per worker)'].filter(
          (x) => r.rates[x],
        ))
          vsAgenda[v] = roundSpread(spread(r.rates[v].map((x, i) => x / r.rates.agenda[i])));
      }
      /** Context only (another database): our rate ÷ BullMQ's in the same round. */
      const vsBullMQ: Record<string, Spread> = {};
      if (r.rates.bullmq) {
        for (const v of ['container.run', 'claimNext'])
          vsBullMQ[v] = roundSpread(spread(r.rates[v].map((x, i) => x / r.rates.bullmq[i])));
      }
      const vsTaskFloor = roundSpread(
        spread(r.rates['container.run'].map((x, i) => x / r.rates['floor (task-sized docs)'][i])),
      );
      byConcurrency.push({
        concurrency: c,
        ...r,
        vsAgenda,
        vsBullMQ,
        vsTaskFloor,
        traffic: trafficOfLevel(),
      });
    }
    await floorConn.dropDatabase();
    await agendaConn.dropDatabase();
    await run.conn.dropDatabase();
    await loop.conn.dropDatabase();
    const last = (byConcurrency[byConcurrency.length - 1]?.traffic ?? {}) as Record<string, Document>;
    return {
      tasksPerRound: T,
      rounds: cfg.pipelineRounds,
      agendaError,
      bullmq: typeof bullmq === 'string' ? null : bullmq.description,
      bullmqError,
      /** The last level's commands per task by `name:collection` (kept for older readers of the JSON). */
      commandsPerTask: Object.fromEntries(
        Object.entries(last)
          .filter(([, t]) => t.database === 'mongodb')
          .map(([v, t]) => [
            v,
            Object.fromEntries(
              Object.entries(t.byCommand as Record<string, CommandTraffic>).map(([k, x]) => [k, x.commands]),
            ),
          ]),
      ),
      byConcurrency,
      targets: { vsAgenda: 1.2, vsFloor: 0.5, scaling: 2 },
    };
  } finally {
    if (typeof bullmq !== 'string') await bullmq.close();
  }
}
