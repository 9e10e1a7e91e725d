/**
 * Events come from one place (lib/notify.ts) and each operation of the transition table emits
 * what docs/api.md says it emits. The table is read from docs/api.md (between the
 * `operation-events` markers), compared with `OPERATION_EVENTS` in the code, and then every
 * operation is performed against the real database with a listener on every event name: the
 * task and lease events it emitted must be exactly the documented ones (the alternatives of an
 * operation such as fail's `task:retrying` / `task:failed` are each produced by one scenario).
 * Bulk forms must emit one event per task they moved.
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import mongoose from 'mongoose';
import {
  createClient,
  ManualClock,
  TASK_OPERATIONS,
  type Client,
  type PtsEventMap,
  type PtsEventName,
  type TaskContainer,
  type TaskOperation,
} from '../lib';
import { OPERATION_EVENTS } from '../lib/notify';
import { useTestDatabase } from './helpers/db';

const ALL_EVENTS: PtsEventName[] = [
  'task:added',
  'task:started',
  'task:progress',
  'task:succeeded',
  'task:retrying',
  'task:failed',
  'task:cancelled',
  'task:skipped',
  'task:reset',
  'task:released',
  'task:retried',
  'task:updated',
  'task:deleted',
  'task:timeout',
  'task:stalled',
  'lease:expired',
  'lease:lost',
  'container:created',
  'container:deleted',
  'container:started',
  'container:completed',
  'container:failed',
  'container:cancelled',
  'container:status',
  'container:paused',
  'container:resumed',
  'db:unavailable',
  'db:available',
];

/** The documented table: operation → event names, from docs/api.md. */
function documentedTable(): Map<string, string[]> {
  const doc = readFileSync(path.join(__dirname, '..', 'docs', 'api.md'), 'utf8');
  const m = /<!-- operation-events[^>]*-->([\s\S]*?)<!-- \/operation-events -->/.exec(doc);
  if (!m) throw new Error('docs/api.md has no operation-events table');
  const rows = new Map<string, string[]>();
  for (const line of m[1].split('\n')) {
    const cells = line.split('|').map((c) => c.trim());
    if (cells.length < 4 || !/^`[a-zA-Z]+`$/.test(cells[1])) continue;
    rows.set(
      cells[1].slice(1, -1),
      [...cells[2].matchAll(/`([a-z]+:[a-z]+)`/g)].map((x) => x[1]),
    );
  }
  return rows;
}

describe('events', function () {
  const db = useTestDatabase();
  let conn: mongoose.Connection;
  let client: Client;
  let clock: ManualClock;
  let seen: Array<{ event: PtsEventName; payload: unknown }> = [];
  let n = 0;

  before(async function () {
    conn = await mongoose.createConnection(db.uri).asPromise();
    clock = new ManualClock(Date.parse('2026-03-01T00:00:00Z'));
    client = createClient({ connection: conn, clock, leaseMs: 10_000, workerId: 'w1' });
    await client.ensureIndexes();
    for (const e of ALL_EVENTS)
      client.on(e, (payload: PtsEventMap[typeof e]) => seen.push({ event: e, payload }));
  });
  after(async function () {
    await conn.close();
  });

  /** The task/lease events emitted by `fn` (container and db events are checked separately). */
  async function taskEvents(fn: () => Promise<unknown>): Promise<string[]> {
    seen = [];
    await fn();
    return seen.map((s) => s.event).filter((e) => e.startsWith('task:') || e.startsWith('lease:'));
  }

  async function container(tasks = 1, opts: { maxRetries?: number } = {}): Promise<TaskContainer> {
    const c = await client.getOrCreateTaskContainer(`ev-${++n}`);
    await c.addTasks(
      Array.from({ length: tasks }, (_, i) => ({
        name: `t${i}`,
        retryDelayMs: 0,
        maxRetries: opts.maxRetries ?? 1,
      })),
    );
    return c;
  }
  const claim = async (c: TaskContainer) =>
    (await client.claimNext({ container: c.name() }, { owner: 'w1' }))!;

  it('docs/api.md documents every operation, with the events the code emits for it', function () {
    const documented = documentedTable();
    expect([...documented.keys()].sort()).to.deep.equal([...TASK_OPERATIONS].sort());
    for (const op of TASK_OPERATIONS) {
      expect(documented.get(op), `docs/api.md row for ${op}`).to.deep.equal([...OPERATION_EVENTS[op]]);
      for (const e of OPERATION_EVENTS[op]) expect(ALL_EVENTS, `${op}: ${e} is an event name`).to.include(e);
    }
  });

  it('each operation emits exactly the documented events', async function () {
    this.timeout(120_000);
    /** Scenarios per operation; the union of what they emit must equal the documented list. */
    const scenarios: Record<TaskOperation, Array<() => Promise<string[]>>> = {
      claim: [
        async () => {
          const c = await container();
          return taskEvents(() => claim(c));
        },
      ],
      heartbeat: [
        async () => {
          const l = await claim(await container());
          return taskEvents(() => l.heartbeat({ percentageComplete: 5, statusText: 'five' }));
        },
        async () => {
          const l = await claim(await container());
          const evs = await taskEvents(() => l.heartbeat());
          expect(evs, 'a bare heartbeat emits nothing').to.deep.equal([]);
          return evs;
        },
      ],
      succeed: [
        async () => {
          const l = await claim(await container());
          return taskEvents(() => l.succeed('ok'));
        },
      ],
      fail: [
        async () => {
          const l = await claim(await container(1, { maxRetries: 1 }));
          const evs = await taskEvents(() => l.fail(new Error('once')));
          expect(evs).to.deep.equal(['task:retrying']);
          return evs;
        },
        async () => {
          const l = await claim(await container(1, { maxRetries: 0 }));
          const evs = await taskEvents(() => l.fail(new Error('for good')));
          expect(evs).to.deep.equal(['task:failed']);
          return evs;
        },
      ],
      release: [
        async () => {
          const l = await claim(await container());
          return taskEvents(() => l.release());
        },
      ],
      expire: [
        async () => {
          const c = await container(1, { maxRetries: 1 });
          await claim(c);
          clock.advance(20_000);
          const evs = await taskEvents(() => client.recoverStale({ container: c.name() }));
          expect(evs).to.deep.equal(['lease:expired', 'task:retrying']);
          return evs;
        },
        async () => {
          const c = await container(1, { maxRetries: 0 });
          await claim(c);
          clock.advance(20_000);
          const evs = await taskEvents(() => client.recoverStale({ container: c.name() }));
          expect(evs).to.deep.equal(['lease:expired', 'task:failed']);
          return evs;
        },
      ],
      timeout: [
        async () => {
          const c = await client.getOrCreateTaskContainer(`ev-${++n}`);
          await c.addTasks([{ name: 't0', timeoutMs: 1_000, retryDelayMs: 0, maxRetries: 1 }]);
          await claim(c);
          clock.advance(1_001);
          const evs = await taskEvents(() => client.recoverStale({ container: c.name() }));
          expect(evs).to.deep.equal(['task:timeout', 'task:retrying']);
          return evs;
        },
        async () => {
          const c = await client.getOrCreateTaskContainer(`ev-${++n}`);
          await c.addTasks([{ name: 't0', stallMs: 1_000, maxRetries: 0 }]);
          await claim(c);
          clock.advance(1_001);
          const evs = await taskEvents(() => client.recoverStale({ container: c.name() }));
          expect(evs).to.deep.equal(['task:stalled', 'task:failed']);
          return evs;
        },
      ],
      retry: [
        async () => {
          const c = await container();
          await c.cancel('t0');
          return taskEvents(() => c.retry('t0'));
        },
      ],
      cancel: [
        async () => {
          const c = await container();
          return taskEvents(() => c.cancel('t0'));
        },
      ],
      skip: [
        async () => {
          const c = await container();
          return taskEvents(() => c.skip('t0'));
        },
      ],
      bypass: [
        async () => {
          // A runWhen 'failed' step whose one dependency succeeds: the success, then its bypass.
          const c = await container();
          await c.addTasks([{ name: 'report', dependsOn: ['t0'], runWhen: 'failed' }]);
          const l = await claim(c);
          const evs = await taskEvents(() => l.succeed('ok'));
          expect(evs).to.deep.equal(['task:succeeded', 'task:skipped']);
          return evs.slice(1);
        },
      ],
      reset: [
        async () => {
          const c = await container();
          return taskEvents(() => c.reset('t0'));
        },
      ],
      rerun: [
        async () => {
          const c = await container();
          await (await claim(c)).succeed('ok');
          return taskEvents(() => c.rerun('t0'));
        },
      ],
      markSucceeded: [
        async () => {
          const c = await container();
          await c.cancel('t0');
          return taskEvents(() => c.markSucceeded('t0', { fixed: true }));
        },
      ],
      update: [
        async () => {
          const c = await container();
          return taskEvents(() => c.updateTask('t0', { statusText: 'half', percentageComplete: 50 }));
        },
        async () => {
          const c = await container();
          const evs = await taskEvents(() => c.updateTask('t0', { processingData: { at: 1 } }));
          expect(evs, 'an update without progress or status text').to.deep.equal(['task:updated']);
          return evs;
        },
      ],
      complete: [
        async () => {
          const c = await container();
          return taskEvents(() => c.updateTask('t0', { isComplete: true, statusText: 'done by hand' }));
        },
      ],
      delete: [
        async () => {
          const c = await container();
          return taskEvents(() => c.deleteTask('t0'));
        },
      ],
    };
    for (const op of TASK_OPERATIONS) {
      const union = new Set<string>();
      for (const run of scenarios[op]) for (const e of await run()) union.add(e);
      expect([...union].sort(), `events of ${op}`).to.deep.equal([...OPERATION_EVENTS[op]].sort());
    }
  });

  it('container status changes are emitted with the transition that caused them', async function () {
    const c = await container();
    seen = [];
    const l = await claim(c);
    expect(seen.map((s) => s.event)).to.include.members([
      'task:started',
      'container:status',
      'container:started',
    ]);
    seen = [];
    await l.succeed();
    expect(seen.map((s) => s.event)).to.include.members([
      'task:succeeded',
      'container:status',
      'container:completed',
    ]);
    seen = [];
    await client.deleteTaskContainer(c.name());
    expect(seen).to.deep.equal([{ event: 'container:deleted', payload: { container: c.name(), tasks: 1 } }]);
  });

  it('bulk retry/cancel/reset emit the event of every task they move, and one container status change', async function () {
    this.timeout(60_000);
    const c = await container(3);
    seen = [];
    expect(await c.cancel()).to.equal(3);
    expect(
      seen
        .filter((s) => s.event === 'task:cancelled')
        .map((s) => (s.payload as { task: { name: string } }).task.name)
        .sort(),
    ).to.deep.equal(['t0', 't1', 't2']);
    expect(seen.filter((s) => s.event === 'container:cancelled')).to.have.length(1);
    seen = [];
    expect(await c.retry()).to.equal(3);
    expect(seen.filter((s) => s.event === 'task:retried')).to.have.length(3);
    seen = [];
    expect(await c.reset()).to.equal(3);
    expect(seen.filter((s) => s.event === 'task:reset')).to.have.length(3);
    expect(seen.every((s) => s.event === 'task:reset' || s.event.startsWith('container:'))).to.equal(true);
  });
});
