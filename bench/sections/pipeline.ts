/**
 * Section 2, pipeline throughput: add → claim → progress ×3 → succeed, at several concurrency
 * levels, for `container.run`, a `claimNext` loop, Agenda 6 and the raw-driver floor (small and
 * task-sized documents), interleaved, with the driver commands per task.
 */
import { ObjectId, type Document } from 'mongodb';
import type { Connection } from 'mongoose';
import { openAgenda } from '../agenda';
import type { Config } from '../config';
import { WC, log, taskDoc, timed, type Bench } from '../harness';
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

  const specs = (r: string): Array<{ name: string; data: unknown }> =>
    Array.from({ length: T }, (_, i) => ({ name: `${r}-${i}`, data: { i } }));
  let roundNo = 0;
  const perTask: Record<string, Record<string, number>> = {};
  const count = (variant: string, before: Map<string, number>): void => {
    const d = bench.since(before, (k) => !/^(hello|ismaster|isMaster|ping|endSessions):/.test(k));
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
      const before = bench.snapshot();
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
        const before = bench.snapshot();
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
        const before = bench.snapshot();
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
        const before = bench.snapshot();
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
