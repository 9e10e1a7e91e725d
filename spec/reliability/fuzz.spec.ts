/**
 * Invariant fuzzing: a seeded random sequence of operations by several simulated workers in one
 * process, against the real server, with a shared ManualClock. After every operation the stored
 * tasks and the container are compared with a small in-memory model of the rules.
 */
import { expect } from 'chai';
import { createClient, LeaseLostError, ManualClock, PtsError, type TaskLease } from '../../lib';
import { useTestDatabase } from '../helpers/db';
import { BSON } from 'mongodb';
import { Rng, testSeed } from './helpers';

const LEASE_MS = 10_000;
const HISTORY = 4;
const OPS = Number(process.env.PTS_FUZZ_OPS ?? 2000);
const NAMES = Array.from({ length: 10 }, (_, i) => `t${i}`);
const WORKERS = ['w1', 'w2', 'w3'];

type State = 'pending' | 'running' | 'succeeded' | 'failed' | 'skipped' | 'cancelled';
interface MTask {
  name: string;
  /** Claim order (docs/api.md "Claim order"): `priority` higher first, then `order` (the order of adding). */
  priority: number;
  order: number;
  state: State;
  weight: number;
  fence: number;
  invokeCount: number;
  attempts: number;
  maxRetries: number;
  retryDelayMs: number;
  failureCount: number;
  failures: number[];
  failureKinds: string[];
  pct: number;
  lease: { owner: string; expiresAt: number } | null;
  runAfter: number;
}
interface Held {
  worker: string;
  task: string;
  token: number;
  lease: TaskLease;
}

describe('reliability: invariant fuzzing against a model', function () {
  this.timeout(300_000);
  const db = useTestDatabase();

  it(`keeps every task and the container equal to the model through ${OPS} random operations`, async function () {
    const seed = testSeed('fuzz');
    const rng = new Rng(seed);
    const clock = new ManualClock(Date.UTC(2030, 0, 1));
    const client = createClient({
      connection: db.connection,
      clock,
      leaseMs: LEASE_MS,
      failureHistoryLimit: HISTORY,
    });
    const c = await client.getOrCreateTaskContainer('fuzz');
    const cols = [db.connection.collection('pts_tasks'), db.connection.collection('pts_containers')];
    /** Canonical EJSON of both collections (all this test writes). */
    const dump = async (): Promise<string> =>
      BSON.EJSON.stringify(await Promise.all(cols.map((x) => x.find({}).sort({ _id: 1 }).toArray())), {
        relaxed: false,
      });
    const model = new Map<string, MTask>();
    const held: Held[] = [];
    const opCounts: Record<string, number> = {};
    let staleRejected = 0;
    let order = 0;
    const now = (): number => clock.now().getTime();
    const retryDelay = (t: MTask, attempts: number): number =>
      Math.min(t.retryDelayMs * 2 ** Math.max(0, attempts - 1), 3_600_000);
    const fail = (t: MTask, kind: string, retryable: boolean, runAfterNow: boolean): void => {
      const retry = retryable && t.attempts <= t.maxRetries;
      t.failures.push(t.invokeCount);
      t.failureKinds.push(kind);
      t.failureCount++;
      t.lease = null;
      t.state = retry ? 'pending' : 'failed';
      if (retry) t.runAfter = runAfterNow ? now() : now() + retryDelay(t, t.attempts);
    };
    /** Expects `p` to reject with a PtsError of `code` and the database to be unchanged. */
    const rejects = async (p: () => Promise<unknown>, code: string, what: string): Promise<void> => {
      const before = await dump();
      let err: unknown = null;
      try {
        await p();
      } catch (e) {
        err = e;
      }
      expect(err, `${what} should have been rejected`).to.be.instanceOf(PtsError);
      expect((err as PtsError).code, `${what}: ${(err as Error).message}`).to.equal(code);
      expect(await dump(), `${what} changed the database`).to.equal(before);
    };
    const byName = async (
      name: string,
      op: string,
      allowed: State[],
      apply: (t: MTask) => void,
      call: () => Promise<unknown>,
    ): Promise<void> => {
      const t = model.get(name);
      if (!t) return rejects(call, 'PTS_NOT_FOUND', `${op} ${name}`);
      if (!allowed.includes(t.state))
        return rejects(call, 'PTS_INVALID_TRANSITION', `${op} ${name} (${t.state})`);
      await call();
      apply(t);
    };

    const check = async (step: number, op: string): Promise<void> => {
      const where = (n: string): string => `step ${step} (${op}), task ${n}`;
      const records = (await c.getTasks()).map((t) => t.toJSON());
      expect(records.length, `step ${step} (${op}): task count`).to.equal(model.size);
      for (const r of records) {
        const m = model.get(r.name)!;
        expect(r.state, where(m.name)).to.equal(m.state);
        expect(r.priority, `${where(m.name)}: priority`).to.equal(m.priority);
        expect(r.invokeCount, `${where(m.name)}: invokeCount`).to.equal(m.invokeCount);
        expect(r.attempts, `${where(m.name)}: attempts`).to.equal(m.attempts);
        expect(r.failureCount, `${where(m.name)}: failureCount`).to.equal(m.failureCount);
        expect(
          r.failures.map((f) => f.attempt),
          `${where(m.name)}: failure history`,
        ).to.deep.equal(m.failures.slice(-HISTORY));
        expect(
          r.failures.map((f) => (f.kind === 'interrupted' ? f.code : f.kind)),
          `${where(m.name)}: failure kinds`,
        ).to.deep.equal(m.failureKinds.slice(-HISTORY));
        expect(r.percentageComplete, `${where(m.name)}: percentage`).to.equal(m.pct);
        if (m.lease) {
          expect(r.lease, where(m.name)).to.deep.equal({
            owner: m.lease.owner,
            token: m.fence,
            expiresAt: new Date(m.lease.expiresAt),
            // No timeoutMs/stallMs in this model: no deadline.
            deadline: null,
            timeoutAt: null,
            stallAt: null,
          });
        } else expect(r.lease, `${where(m.name)}: lease`).to.equal(null);
        if (m.state === 'pending')
          expect(r.runAfter.getTime(), `${where(m.name)}: runAfter`).to.equal(m.runAfter);
      }
      const s = await c.summary();
      const counts = { pending: 0, running: 0, succeeded: 0, failed: 0, skipped: 0, cancelled: 0 };
      let w = 0;
      let wp = 0;
      for (const m of model.values()) {
        counts[m.state]++;
        w += m.weight;
        wp += m.weight * m.pct;
      }
      expect(s.counts, `step ${step} (${op}): counts`).to.deep.equal(counts);
      expect(s.total).to.equal(model.size);
      expect(s.percentageComplete, `step ${step} (${op}): container percentage`).to.be.closeTo(
        w ? wp / w : 0,
        1e-6,
      );
      if (model.size > 0 && counts.running > 0)
        expect(s.status, `step ${step} (${op}): status`).to.equal('running');
      if (model.size > 0 && counts.running === 0 && counts.pending === 0) {
        expect(s.status, `step ${step} (${op}): status`).to.equal(
          counts.failed ? 'failed' : counts.cancelled ? 'cancelled' : 'succeeded',
        );
      }
    };

    const ops: Array<[number, string, () => Promise<void>]> = [
      [
        8,
        'add',
        async () => {
          // One task with addTask (the server makes its _id), or two with addTasks (the client
          // does): the claim order must not depend on which.
          const names = rng.chance(0.3) ? [...new Set([rng.pick(NAMES), rng.pick(NAMES)])] : [rng.pick(NAMES)];
          const specs = names.map((name) => ({
            name,
            weight: rng.int(1, 3),
            maxRetries: rng.int(0, 3),
            retryDelayMs: rng.pick([0, 0, 500, 2000]),
            priority: rng.pick([0, 0, 0, 1, 2, -1]),
          }));
          if (specs.length === 1) {
            const { name, ...options } = specs[0];
            await c.addTask(name, { n: name }, options);
          } else await c.addTasks(specs.map((s) => ({ ...s, data: { n: s.name } })));
          for (const { name, weight, maxRetries, retryDelayMs, priority } of specs) {
            if (model.has(name)) continue;
            model.set(name, {
              name,
              priority,
              order: order++,
              state: 'pending',
              weight,
              fence: 0,
              invokeCount: 0,
              attempts: 0,
              maxRetries,
              retryDelayMs,
              failureCount: 0,
              failures: [],
              failureKinds: [],
              pct: 0,
              lease: null,
              runAfter: now(),
            });
          }
        },
      ],
      [
        14,
        'claim',
        async () => {
          const worker = rng.pick(WORKERS);
          const ready = [...model.values()]
            .filter((t) => t.state === 'pending' && t.runAfter <= now())
            .sort((a, b) => b.priority - a.priority || a.order - b.order);
          const lease = await client.claimNext({ container: 'fuzz' }, { owner: worker });
          if (ready.length === 0) {
            expect(lease, 'claimed although nothing was ready').to.equal(null);
            return;
          }
          const t = ready[0];
          expect(lease?.task.name, 'claimed the wrong task').to.equal(t.name);
          t.state = 'running';
          t.fence++;
          t.invokeCount++;
          t.attempts++;
          t.lease = { owner: worker, expiresAt: now() + LEASE_MS };
          expect(lease!.token, 'fencing token of a new claim').to.equal(t.fence);
          held.push({ worker, task: t.name, token: t.fence, lease: lease! });
        },
      ],
      [
        20,
        'progress|succeed|fail',
        async () => {
          if (held.length === 0) return;
          const h = rng.pick(held);
          const t = model.get(h.task)!;
          const valid = t.state === 'running' && t.fence === h.token;
          const kind = rng.pick(['progress', 'progress', 'succeed', 'fail']);
          const pct = rng.int(0, 100);
          const retryable = rng.chance(0.8);
          const call = (): Promise<unknown> =>
            kind === 'progress'
              ? h.lease.heartbeat({ percentageComplete: pct })
              : kind === 'succeed'
                ? h.lease.succeed({ by: h.worker })
                : h.lease.fail(new Error('boom'), { retryable });
          if (!valid) {
            await rejects(call, 'PTS_LEASE_LOST', `stale ${kind} by ${h.worker} on ${h.task}#${h.token}`);
            try {
              await call();
            } catch (e) {
              expect(e).to.be.instanceOf(LeaseLostError);
            }
            staleRejected++;
            held.splice(held.indexOf(h), 1);
            return;
          }
          await call();
          if (kind === 'progress') {
            t.pct = pct;
            t.lease = { owner: h.worker, expiresAt: now() + LEASE_MS };
          } else if (kind === 'succeed') {
            t.state = 'succeeded';
            t.pct = 100;
            t.lease = null;
          } else fail(t, 'error', retryable, false);
        },
      ],
      [6, 'tick', async () => clock.advance(rng.pick([1, 100, 700, 2500, 6000]))],
      [
        4,
        'expire',
        async () => {
          if (rng.chance(0.7)) clock.advance(LEASE_MS + 1);
          const stale = [...model.values()].filter(
            (t) => t.state === 'running' && t.lease!.expiresAt <= now(),
          );
          const rep = await client.recoverStale({ container: 'fuzz' });
          expect(rep.recovered.map((r) => r.task).sort()).to.deep.equal(stale.map((t) => t.name).sort());
          for (const t of stale) fail(t, 'LEASE_EXPIRED', true, true);
        },
      ],
      [
        3,
        'retry',
        async () => {
          const n = rng.pick(NAMES);
          await byName(
            n,
            'retry',
            ['failed', 'cancelled'],
            (t) => {
              t.state = 'pending';
              t.attempts = 0;
              t.runAfter = now();
              t.lease = null;
            },
            () => c.retry(n),
          );
        },
      ],
      [
        2,
        'cancel',
        async () => {
          const n = rng.pick(NAMES);
          await byName(
            n,
            'cancel',
            ['pending', 'running'],
            (t) => {
              t.state = 'cancelled';
              t.fence++;
              t.lease = null;
            },
            () => c.cancel(n),
          );
        },
      ],
      [
        2,
        'skip',
        async () => {
          const n = rng.pick(NAMES);
          await byName(
            n,
            'skip',
            ['pending', 'failed', 'cancelled'],
            (t) => {
              t.state = 'skipped';
              t.pct = 100;
              t.lease = null;
            },
            () => c.skip(n),
          );
        },
      ],
      [
        2,
        'reset',
        async () => {
          const n = rng.pick(NAMES);
          await byName(
            n,
            'reset',
            ['pending', 'succeeded', 'failed', 'skipped', 'cancelled'],
            (t) => {
              t.state = 'pending';
              t.pct = 0;
              t.attempts = 0;
              t.runAfter = now();
              t.lease = null;
            },
            () => c.reset(n),
          );
        },
      ],
    ];
    const total = ops.reduce((n, [w]) => n + w, 0);
    const started = Date.now();
    for (let step = 1; step <= OPS; step++) {
      let x = rng.next() * total;
      const [, name, run] = ops.find(([w]) => (x -= w) < 0) ?? ops[0];
      opCounts[name] = (opCounts[name] ?? 0) + 1;
      try {
        await run();
        await check(step, name);
      } catch (e) {
        (e as Error).message = `[seed ${seed}, step ${step}, op ${name}] ${(e as Error).message}`;
        throw e;
      }
      if (step % 250 === 0) expect(await c.reconcile(), `step ${step}: counters drifted`).to.equal(false);
    }
    expect(await c.reconcile()).to.equal(false);
    expect(staleRejected, 'the sequence must exercise stale writers').to.be.greaterThan(0);
    console.log(
      `[reliability] fuzz: ${OPS} operations by ${WORKERS.length} workers checked against the model after every step ` +
        `(${Object.entries(opCounts)
          .map(([k, v]) => `${k} ${v}`)
          .join(
            ', ',
          )}); ${staleRejected} stale-lease writes rejected with LeaseLostError and no change; ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
    await client.close();
  });
});
