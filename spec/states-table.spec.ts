/**
 * The transition table (`TRANSITIONS` in lib/states.ts) walked cell by cell against the real
 * database, through the public API only: for every operation and every starting state, a fresh
 * task is brought into that state and the operation applied. Allowed: the task ends in one of the
 * rule's to-states (or is gone, for delete). Refused: the operation's own refusal
 * (InvalidTransitionError by name, LeaseLostError for a lease holder, null for a claim, nothing
 * recovered for the sweep) and the raw task document byte-for-byte as it was. Then the
 * container-wide actions on a container holding one task in each state.
 *
 * A cell that fails here means the store and the table disagree: the message names the cell.
 */
import { expect } from 'chai';
import { BSON, type Document } from 'mongodb';
import {
  CONTAINER_ACTIONS,
  InvalidTransitionError,
  LeaseLostError,
  ManualClock,
  TASK_OPERATIONS,
  TASK_STATES,
  TRANSITIONS,
  allowedActions,
  canTransition,
  createClient,
  type Client,
  type TaskContainer,
  type TaskLease,
  type TaskOperation,
  type TaskState,
} from '../lib';
import { useTestDatabase } from './helpers/db';

const TASK = 't';
/** The dependency of the `bypass` cells' task (a runWhen 'failed' step). */
const BYPASS_DEP = 'dep';
const LEASE_MS = 60_000;
/** `timeoutMs` of the task of the `timeout` cells (shorter than the lease: the deadline ends it, not the expiry). */
const TIMEOUT_MS = 5_000;

describe('states table (every cell of TRANSITIONS × TASK_STATES against the store)', function () {
  this.timeout(30_000);
  const db = useTestDatabase();
  let client: Client;
  let clock: ManualClock;
  let seq = 0;

  before(async function () {
    clock = new ManualClock(Date.parse('2026-01-01T00:00:00Z'));
    client = createClient({ connection: db.connection, clock, leaseMs: LEASE_MS, workerId: 'table-spec' });
    await client.ensureIndexes();
  });
  after(async function () {
    await client?.close();
  });

  const raw = (container: string, name: string): Promise<Document | null> =>
    db.connection.collection('pts_tasks').findOne({ container, name });

  async function claim(container: string, name: string): Promise<TaskLease | null> {
    return client.claimNext({ container, names: [name] }, { owner: 'w', leaseMs: LEASE_MS });
  }

  async function stateOf(c: TaskContainer, name: string): Promise<TaskState | null> {
    return (await c.getTask(name))?.state() ?? null;
  }

  /**
   * Brings task `name` of `c` into `state`. With `withLease` the task is claimed first, so the
   * lease returned is current for `running` and stale (its task moved on) for every other state.
   */
  async function bring(
    c: TaskContainer,
    name: string,
    state: TaskState,
    withLease: boolean,
  ): Promise<TaskLease | null> {
    const where = `${c.name()}/${name}`;
    let lease: TaskLease | null = null;
    // The bypass cells' task is a runWhen 'failed' step behind BYPASS_DEP: pending, it waits for
    // its verdict; in any other state its dependency failed first (so it could be claimed).
    if (c.name().startsWith('bypass ') && state !== 'pending') await (await claim(c.name(), BYPASS_DEP))!.fail(new Error('dependency failure'));
    if (withLease || state === 'running' || state === 'succeeded' || state === 'failed') {
      lease = await claim(c.name(), name);
      expect(lease, `setup of ${where}: claim`).to.not.equal(null);
    }
    switch (state) {
      case 'pending':
        if (lease) await lease.release();
        break;
      case 'running':
        break;
      case 'succeeded':
        await lease!.succeed({ ok: true });
        break;
      case 'failed':
        await lease!.fail(new Error('setup failure')); // maxRetries 0: failed for good
        break;
      case 'cancelled':
        await c.cancel(name);
        break;
      case 'skipped':
        if (lease) await lease.release();
        await c.skip(name);
        break;
    }
    expect(await stateOf(c, name), `setup of ${where}`).to.equal(state);
    return lease;
  }

  async function freshContainer(
    label: string,
    names: string[],
    failing: string[] = [],
  ): Promise<TaskContainer> {
    const c = await client.getOrCreateTaskContainer(`${label} #${++seq}`);
    if (label.startsWith('bypass ')) {
      await c.addTasks([
        { name: BYPASS_DEP, maxRetries: 0 },
        ...names.map((name) => ({ name, dependsOn: [BYPASS_DEP], runWhen: 'failed' as const, maxRetries: failing.includes(name) ? 0 : 3 })),
      ]);
      return c;
    }
    await c.addTasks(
      names.map((name) => ({
        name,
        maxRetries: failing.includes(name) ? 0 : 3,
        retryDelayMs: 1000,
        ...(label.startsWith('timeout ') ? { timeoutMs: TIMEOUT_MS } : {}),
      })),
    );
    return c;
  }

  type Outcome = { error: unknown } | { value: unknown };

  /** Applies `op` to the task through the public API (the way each actor does it). */
  async function apply(op: TaskOperation, c: TaskContainer, lease: TaskLease | null): Promise<Outcome> {
    const run = async (): Promise<unknown> => {
      switch (op) {
        case 'claim':
          return claim(c.name(), TASK);
        case 'heartbeat':
          return lease!.heartbeat({ statusText: 'beat' });
        case 'succeed':
          return lease!.succeed({ done: true });
        case 'fail':
          return lease!.fail(new Error('op failure'));
        case 'release':
          return lease!.release();
        case 'expire':
          clock.advance(LEASE_MS + 1);
          return client.recoverStale({ container: c.name() });
        case 'timeout':
          clock.advance(TIMEOUT_MS + 1);
          return client.recoverStale({ container: c.name() });
        case 'retry':
        case 'cancel':
        case 'reset':
          return c[op](TASK);
        case 'skip':
          return c.skip(TASK);
        case 'update':
          return c.updateTask(TASK, { statusText: 'updated by name' });
        case 'complete':
          return c.updateTask(TASK, { isComplete: true });
        case 'delete':
          return c.deleteTask(TASK);
        case 'rerun':
          return c.rerun(TASK);
        case 'markSucceeded':
          return c.markSucceeded(TASK, { fixedBy: 'hand' });
        case 'bypass': {
          // The system's bypass: the dependency ends without a failure (retried first if it failed).
          if ((await stateOf(c, BYPASS_DEP)) === 'failed') await c.retry(BYPASS_DEP);
          return (await claim(c.name(), BYPASS_DEP))!.succeed({ ok: true });
        }
      }
    };
    try {
      return { value: await run() };
    } catch (error) {
      return { error };
    }
  }

  const describeError = (e: unknown): string =>
    e instanceof Error
      ? `${e.name} (${(e as { code?: string }).code ?? 'no code'}): ${e.message}`
      : String(e);

  for (const op of TASK_OPERATIONS) {
    const rule = TRANSITIONS[op];
    describe(`${op} (by ${rule.by}; from ${rule.from.join(', ')})`, function () {
      for (const state of TASK_STATES) {
        const allowed = canTransition(op, state);
        const title = allowed
          ? `from ${state}: allowed → ${rule.to.length ? rule.to.join(' | ') : 'gone'}`
          : `from ${state}: refused, task unchanged`;
        it(title, async function () {
          const cell = `TRANSITIONS.${op} from ${state}`;
          const c = await freshContainer(`${op} from ${state}`, [TASK], state === 'failed' ? [TASK] : []);
          const needsLease = rule.by === 'worker' && op !== 'claim';
          const lease = await bring(c, TASK, state, needsLease);
          const before = await raw(c.name(), TASK);
          expect(before, `${cell}: raw document`).to.not.equal(null);
          const out = await apply(op, c, lease);

          if (allowed) {
            if ('error' in out)
              expect.fail(`${cell}: the table allows it, but the store refused: ${describeError(out.error)}`);
            if (op === 'claim')
              expect(out.value, `${cell}: the table allows it, but claimNext found nothing`).to.not.equal(
                null,
              );
            if (op === 'expire' || op === 'timeout') {
              const report = out.value as { recovered: Array<{ task: string }> };
              expect(
                report.recovered.map((r) => r.task),
                `${cell}: the table allows it, but the sweep recovered nothing`,
              ).to.deep.equal([TASK]);
            }
            if (op === 'delete') {
              expect(await c.getTask(TASK), `${cell}: deleted task still readable`).to.equal(null);
              expect(await raw(c.name(), TASK), `${cell}: deleted task still in pts_tasks`).to.equal(null);
              return;
            }
            const t = (await c.getTask(TASK))!.toJSON();
            expect(
              rule.to,
              `${cell}: the store left the task ${t.state}, the table says ${rule.to.join(' | ')}`,
            ).to.include(t.state);
            expect(
              t.allowedActions,
              `${cell}: allowedActions of the resulting ${t.state} task`,
            ).to.deep.equal(allowedActions(t.state));
            return;
          }

          // Refused: the actor's own refusal, and not one byte of the task written.
          if (op === 'claim') {
            expect(
              'value' in out && out.value,
              `${cell}: the table refuses it, but claimNext handed out the task`,
            ).to.equal(null);
          } else if (op === 'bypass') {
            if ('error' in out) expect.fail(`${cell}: the dependency's success threw ${describeError(out.error)}`);
          } else if (op === 'expire' || op === 'timeout') {
            if ('error' in out) expect.fail(`${cell}: recoverStale threw ${describeError(out.error)}`);
            const report = out.value as { recovered: unknown[] };
            expect(
              report.recovered,
              `${cell}: the table refuses it, but the sweep recovered the task`,
            ).to.deep.equal([]);
          } else {
            const expected = rule.by === 'worker' ? LeaseLostError : InvalidTransitionError;
            if (!('error' in out)) expect.fail(`${cell}: the table refuses it, but the store accepted it`);
            expect(
              out.error,
              `${cell}: expected ${expected.name}, got ${describeError(out.error)}`,
            ).to.be.instanceOf(expected);
          }
          const after = await raw(c.name(), TASK);
          expect(after, `${cell}: refused, but the raw task document changed`).to.deep.equal(before);
          const bytes = (d: Document | null) => Buffer.from(BSON.serialize(d!)).toString('hex');
          expect(
            bytes(after) === bytes(before),
            `${cell}: refused, but the raw document's bytes changed`,
          ).to.equal(true);
        });
      }
    });
  }

  describe('container-wide actions on a container holding one task in each state', function () {
    for (const action of CONTAINER_ACTIONS) {
      const rule = TRANSITIONS[action];
      it(`${action}(): exactly the ${rule.from.join(', ')} tasks move to ${rule.to.join(' | ')}; the others are unchanged`, async function () {
        const c = await freshContainer(`bulk ${action}`, [...TASK_STATES], ['failed']);
        for (const state of TASK_STATES) await bring(c, state, state, false);
        expect(
          (await c.summary()).allowedActions,
          'a container with every state offers every action',
        ).to.deep.equal([...CONTAINER_ACTIONS]);
        const before = new Map<TaskState, Document | null>();
        for (const state of TASK_STATES) before.set(state, await raw(c.name(), state));

        const affected = await c[action]();

        for (const state of TASK_STATES) {
          const cell = `bulk ${action}() on the ${state} task`;
          if (rule.from.includes(state)) {
            const now = await stateOf(c, state);
            expect(
              rule.to,
              `${cell}: the store left it ${now}, the table says ${rule.to.join(' | ')}`,
            ).to.include(now);
          } else {
            const after = await raw(c.name(), state);
            expect(
              after,
              `${cell}: not in TRANSITIONS.${action}.from, but the raw document changed`,
            ).to.deep.equal(before.get(state));
          }
        }
        expect(affected, `bulk ${action}(): affected count`).to.equal(rule.from.length);
      });
    }
  });
});
