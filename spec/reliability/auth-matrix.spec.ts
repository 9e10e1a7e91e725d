/**
 * The authorization matrix of the HTTP service: EVERY route the server registers (enumerated
 * from fastify's own route tree, so a new route without a row fails the test) × every kind of
 * credential × container inside / outside the token's prefix (existing or not). The expected
 * status of each cell is computed from the documented rules (docs/http.md: scope order
 * read < worker < admin, prefix confinement with 403, listings filtered instead of 403,
 * `?access_token=` on GET only, public routes), never recorded from the server.
 * The server logs at trace level into a captured stream: no token secret may appear in it.
 */
import { expect } from 'chai';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { scopeAllows, type TokenScope } from '../../lib/auth';
import { useTestDatabase } from '../helpers/db';
import { startFixture, type HttpFixture } from '../http/support';

/* eslint-disable @typescript-eslint/no-explicit-any -- response bodies are checked field by field */

type Scope = TokenScope | 'none';
type Target = 'in' | 'out' | 'in-missing' | 'out-missing' | '-';

interface Cred {
  label: string;
  /** Scope of the token, or 'none' for no token at all. */
  scope: Scope;
  prefix: string;
  via: 'header' | 'query';
  revoked?: boolean;
  token?: string;
}

interface Prepared {
  path: string;
  body?: unknown;
}

interface Row {
  method: string;
  /** fastify route pattern (what printRoutes lists) */
  route: string;
  label?: string;
  scope: Scope;
  /** Where the container (or pipeline, policy prefix) is named: path param, body or query, list prefix query, or nowhere. */
  container: 'path' | 'body' | 'list' | 'none';
  /** Success status for an existing container / a missing one. */
  ok: number;
  missing?: number;
  /** The names the targets stand for (default {@link NAMES}: containers; {@link PIPES}: pipelines). */
  names?: Record<Exclude<Target, '-'>, string>;
  /** Status of a target outside the token's prefix (default 403; the schedule routes answer 404). */
  outside?: number;
  sse?: boolean;
  /** Prefixed tokens are 403 whatever the target (claim without a container). */
  needsNoPrefix?: boolean;
  build(name: string, exists: boolean, allowed: boolean): Promise<Prepared>;
  check?(cell: Cell, res: Res): void;
}

interface Cell {
  row: Row;
  cred: Cred;
  target: Target;
  name: string;
  expected: number;
}

interface Res {
  status: number | 'timeout';
  body: any;
  events: any[];
}

const NAMES: Record<Exclude<Target, '-'>, string> = {
  in: 'team-a/x',
  out: 'team-b/y',
  'in-missing': 'team-a/missing',
  'out-missing': 'team-b/missing',
};
/** Pipelines (and their schedules, named like them) inside / outside the prefix. */
const PIPES: Record<Exclude<Target, '-'>, string> = {
  in: 'team-a/p',
  out: 'team-b/p',
  'in-missing': 'team-a/nopipe',
  'out-missing': 'team-b/nopipe',
};
/** Containers that had a task fail for good: each got an alert delivery. */
const ALERTED = ['team-a/alerted', 'team-b/alerted'];
const RULE = 'matrix';
/**
 * Alert rules named after the container prefix they watch (a rule's `prefix` is what confines it):
 * `team-a/rule` watches `team-a/`. Missing ones are never created.
 */
const RULES: Record<Exclude<Target, '-'>, string> = {
  in: 'team-a/rule',
  out: 'team-b/rule',
  'in-missing': 'team-a/norule',
  'out-missing': 'team-b/norule',
};
/** The container prefix a rule of {@link RULES} (or a POSTed one) watches: its first segment. */
const ruleScope = (name: string): string => `${name.split('/')[0]}/`;
/** A cron that never fires during the test (the serving client runs no scheduler anyway). */
const CRON = '0 0 1 1 *';
const PREFIX = 'team-a/';
/** Retention policies of the matrix keep containers this many days (the maximum): nothing goes. */
const KEEP_DAYS = 36_500;
/** A webhook nobody listens on (connection refused at once): deliveries and tests record an error. */
const DEAD_URL = 'http://127.0.0.1:9/hook';
const TIMEOUT_MS = 3_000;
const enc = encodeURIComponent;

/** (method, route) pairs of every registered route, from fastify's radix-tree dump. */
function routesOf(app: FastifyInstance): Array<{ method: string; route: string }> {
  const out: Array<{ method: string; route: string }> = [];
  const stack: string[] = [];
  for (const line of app.printRoutes().split('\n')) {
    const m = /^((?:[│ ] {3})*)(?:├── |└── )(.*?)(?: \(([A-Z, ]+)\))?$/.exec(line);
    if (!m) continue;
    const depth = m[1].length / 4;
    stack.length = depth;
    stack.push(m[2]);
    if (m[3]) for (const method of m[3].split(', ')) out.push({ method, route: stack.join('') });
  }
  return out;
}

describe('reliability: HTTP authorization matrix', function () {
  const db = useTestDatabase();
  let f: HttpFixture;
  const log: string[] = [];
  const secrets: string[] = [];
  let seq = 0;
  const fresh = (): string => `cell-${++seq}`;
  let year = 1990;
  const backfillYear = (): { from: string; to: string } => {
    const at = `${++year}-01-01T00:00:00.000Z`;
    return { from: at, to: at };
  };

  before(async function () {
    const stream = new Writable({
      write(chunk, _enc, cb) {
        log.push(String(chunk));
        cb();
      },
    });
    f = await startFixture(db, { dashboard: true, logger: { level: 'trace', stream } });
    secrets.push(f.token.read, f.token.worker, f.token.admin);
  });
  after(async function () {
    // HEAD on the SSE routes never ends (see docs/reliability.md): do not let it hold close() up.
    const force = setTimeout(() => f?.server.app.server.closeAllConnections(), 2_000);
    await f?.close();
    clearTimeout(force);
  });

  /** The fixed world every cell starts from. */
  async function ensure(): Promise<void> {
    for (const name of ['team-b/frozen', NAMES.in, NAMES.out]) {
      const c = await f.client.getOrCreateTaskContainer(name);
      if (!(await c.getTask('seed'))) await c.addTask('seed', { n: 1 });
      if (c.isPaused()) await c.resume(); // after a pause cell: claims must work again
      if (name !== 'team-b/frozen' && !(await c.getTask('logged'))) await loggedTask(name);
    }
    for (const name of [NAMES['in-missing'], NAMES['out-missing']]) await f.client.deleteTaskContainer(name);
    // Schedules: recreated only after a DELETE cell, unpaused after a pause cell.
    const schedules = new Map((await f.client.listSchedules()).map((s) => [s.name, s]));
    for (const name of [PIPES.in, PIPES.out]) {
      const s = schedules.get(name);
      if (!s) await f.client.schedule(name, { cron: CRON });
      else if (s.paused) await f.client.unpauseSchedule(name);
    }
    for (const name of [PIPES['in-missing'], PIPES['out-missing']])
      if (schedules.has(name)) await f.client.deleteSchedule(name);
    // Retention policies named by their prefix (a century: they never delete anything here).
    const policies = new Set((await f.client.listRetentionPolicies()).map((p) => p.prefix));
    for (const name of [NAMES.in, NAMES.out])
      if (!policies.has(name)) await f.client.setRetentionPolicy(name, { succeededDays: KEEP_DAYS });
    for (const name of [NAMES['in-missing'], NAMES['out-missing']])
      if (policies.has(name)) await f.client.deleteRetentionPolicy(name);
    // Alert rules named by the prefix they watch, disabled (their webhook is dead anyway).
    const rules = new Set((await f.client.listAlertRules()).map((r) => r.name));
    for (const name of [RULES.in, RULES.out])
      if (!rules.has(name))
        await f.client.addAlertRule({
          name,
          events: ['container:failed'],
          url: DEAD_URL,
          secret: 'matrix-rule-secret',
          prefix: ruleScope(name),
          enabled: false,
        });
  }

  /** A succeeded task `logged` in `name` with one step-log line (the logs rows read it). */
  async function loggedTask(name: string): Promise<void> {
    await (await f.client.getTaskContainer(name))!.addTask('logged', {});
    const lease = await f.client.claimNext(
      { container: name, names: ['logged'] },
      { owner: 'prep', leaseMs: 600_000 },
    );
    expect(lease, `prepare ${name}/logged`).to.not.equal(null);
    lease!.log('info', `a line of ${name}`);
    await lease!.flushLogs();
    await lease!.succeed({ ok: true });
  }

  /**
   * Once, before the cells: both pipelines defined (so a trigger starts a run) with one finished
   * run each (runs and durations to list), an alert rule, and a task failed for good in
   * team-a/ and team-b/ (each gets a delivery once the alert pass runs, after the feed horizon).
   */
  async function setupOnce(): Promise<void> {
    for (const p of [PIPES.in, PIPES.out]) f.client.definePipeline(p, { tasks: [{ name: 'step' }] });
    await ensure();
    for (const p of [PIPES.in, PIPES.out]) {
      const run = await f.client.triggerSchedule(p);
      const lease = await f.client.claimNext(
        { container: run.container, names: ['step'] },
        { owner: 'prep', leaseMs: 600_000 },
      );
      expect(lease, `prepare the run ${run.container}`).to.not.equal(null);
      await lease!.succeed(null);
    }
    await f.client.addAlertRule({
      name: RULE,
      events: ['task:failed'],
      url: DEAD_URL,
      secret: 'matrix-rule-secret',
    });
    for (const name of ALERTED) {
      const c = await f.client.getOrCreateTaskContainer(name);
      await c.addTasks([{ name: 't', maxRetries: 0 }]);
      const lease = await f.client.claimNext(
        { container: name, names: ['t'] },
        { owner: 'prep', leaseMs: 600_000 },
      );
      await lease!.fail({ message: 'boom' }, { retryable: false });
    }
  }

  /** One alert pass after another until the two deliveries exist (their attempts fail: DEAD_URL). */
  async function deliverAlerts(): Promise<void> {
    const h = f.client.startAlerts({ intervalMs: 0, horizonMs: 0, requestTimeoutMs: 1_000 });
    let created = 0;
    try {
      for (let i = 0; i < 50 && created < ALERTED.length; i++) {
        created += (await h.pass()).created;
        if (created < ALERTED.length) await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      await h.stop();
    }
    expect(created, 'alert deliveries prepared').to.equal(ALERTED.length);
  }

  /** A new task in `name`, claimed through the library: `{ task, token }`. */
  async function claimed(name: string): Promise<{ task: string; token: number }> {
    const task = fresh();
    const c = await f.client.getTaskContainer(name);
    await c!.addTask(task, {});
    const lease = await f.client.claimNext(
      { container: name, names: [task] },
      { owner: 'prep', leaseMs: 600_000 },
    );
    expect(lease, `prepare ${name}/${task}`).to.not.equal(null);
    return { task, token: lease!.token };
  }

  async function pendingTask(name: string): Promise<string> {
    const task = fresh();
    await (await f.client.getTaskContainer(name))!.addTask(task, {});
    return task;
  }

  const base = (name: string): string => `/api/v1/containers/${enc(name)}`;
  const only = (p: string) => async (): Promise<Prepared> => ({ path: p });
  const onName =
    (suffix: string, body?: unknown) =>
    async (name: string): Promise<Prepared> => ({
      path: base(name) + suffix,
      body,
    });
  const worker =
    (verb: string, extra: Record<string, unknown>) =>
    async (name: string, exists: boolean, allowed: boolean): Promise<Prepared> => {
      if (!exists || !allowed)
        return { path: `${base(name)}/tasks/seed/${verb}`, body: { token: 1, ...extra } };
      const { task, token } = await claimed(name);
      return { path: `${base(name)}/tasks/${enc(task)}/${verb}`, body: { token, ...extra } };
    };

  /** Prefixed tokens see only their prefix; unprefixed ones see other prefixes too (positive control). */
  function noLeak(names: string[], cell: Cell, what: string): void {
    const ctx = `${what}: ${cellLabel(cell)} saw ${JSON.stringify(names.slice(0, 5))}`;
    if (cell.cred.prefix) {
      for (const n of names) expect(n.startsWith(cell.cred.prefix), ctx).to.equal(true);
    }
  }

  const ROWS: Row[] = [
    // public
    ...['/', '/healthz', '/readyz', '/metrics', '/openapi.json', '/ui/states.js', '/ui/*'].map(
      (route): Row => ({
        method: 'GET',
        route,
        scope: 'none',
        container: 'none',
        ok: 200,
        build: only(route === '/ui/*' ? '/ui/app.js' : route),
      }),
    ),
    {
      method: 'GET',
      route: '/api/v1/containers',
      scope: 'read',
      container: 'list',
      ok: 200,
      build: async (name) => ({
        path: `/api/v1/containers?limit=1000&prefix=${enc(name.split('/')[0] + '/')}`,
      }),
      check(cell, res) {
        const names = (res.body.items as Array<{ name: string }>).map((c) => c.name);
        noLeak(names, cell, 'container list');
        const requested = cell.name.split('/')[0] + '/';
        for (const n of names) expect(n.startsWith(requested), cellLabel(cell)).to.equal(true);
        if (!cell.cred.prefix || requested === cell.cred.prefix)
          expect(names, `${cellLabel(cell)}: list is empty`).to.include(
            requested === PREFIX ? NAMES.in : NAMES.out,
          );
        else expect(names, cellLabel(cell)).to.deep.equal([]);
      },
    },
    {
      method: 'PUT',
      route: '/api/v1/containers/:name',
      scope: 'admin',
      container: 'path',
      ok: 200,
      missing: 201,
      build: onName('', {}),
    },
    {
      method: 'GET',
      route: '/api/v1/containers/:name',
      scope: 'read',
      container: 'path',
      ok: 200,
      missing: 404,
      build: onName(''),
      check: (cell, res) => expect(res.body.name, cellLabel(cell)).to.equal(cell.name),
    },
    {
      method: 'DELETE',
      route: '/api/v1/containers/:name',
      scope: 'admin',
      container: 'path',
      ok: 204,
      missing: 404,
      build: onName(''),
    },
    {
      method: 'POST',
      route: '/api/v1/containers/:name/tasks',
      scope: 'admin',
      container: 'path',
      ok: 200,
      missing: 404,
      build: async (name) => ({ path: `${base(name)}/tasks`, body: { tasks: [{ name: fresh() }] } }),
    },
    {
      method: 'GET',
      route: '/api/v1/containers/:name/tasks',
      scope: 'read',
      container: 'path',
      ok: 200,
      missing: 404,
      build: onName('/tasks?limit=1000'),
      check(cell, res) {
        for (const t of res.body.items) expect(t.container, cellLabel(cell)).to.equal(cell.name);
      },
    },
    {
      method: 'GET',
      route: '/api/v1/containers/:name/tasks/:task',
      scope: 'read',
      container: 'path',
      ok: 200,
      missing: 404,
      build: onName('/tasks/seed'),
      check: (cell, res) => expect(res.body.container, cellLabel(cell)).to.equal(cell.name),
    },
    ...['retry', 'cancel', 'reset'].map((a): Row => ({
      method: 'POST',
      route: `/api/v1/containers/:name/actions/${a}`,
      scope: 'admin',
      container: 'path',
      ok: 200,
      missing: 404,
      build: onName(`/actions/${a}`, {}),
    })),
    {
      method: 'POST',
      route: '/api/v1/containers/:name/actions/resume',
      scope: 'admin',
      container: 'path',
      ok: 200,
      missing: 404,
      build: onName('/actions/resume'),
    },
    ...['pause', 'unpause'].map((a): Row => ({
      method: 'POST',
      route: `/api/v1/containers/:name/actions/${a}`,
      scope: 'admin',
      container: 'path',
      ok: 200,
      missing: 404,
      build: onName(`/actions/${a}`),
      check: (cell, res) => expect(res.body.paused, cellLabel(cell)).to.equal(a === 'pause'),
    })),
    {
      method: 'GET',
      route: '/api/v1/whoami',
      scope: 'read',
      container: 'none',
      ok: 200,
      build: only('/api/v1/whoami'),
      check(cell, res) {
        expect(res.body.scope, cellLabel(cell)).to.equal(cell.cred.scope);
        expect(res.body.prefix, cellLabel(cell)).to.equal(cell.cred.prefix);
      },
    },
    {
      method: 'POST',
      route: '/api/v1/containers/:name/tasks/:task/skip',
      scope: 'admin',
      container: 'path',
      ok: 200,
      missing: 404,
      build: async (name, exists, allowed) => ({
        path: `${base(name)}/tasks/${enc(exists && allowed ? await pendingTask(name) : 'seed')}/skip`,
      }),
    },
    {
      method: 'DELETE',
      route: '/api/v1/containers/:name/tasks/:task',
      scope: 'admin',
      container: 'path',
      ok: 204,
      missing: 404,
      build: async (name, exists, allowed) => ({
        path: `${base(name)}/tasks/${enc(exists && allowed ? await pendingTask(name) : 'seed')}`,
      }),
    },
    {
      method: 'GET',
      route: '/api/v1/containers/:name/worker-config',
      scope: 'read',
      container: 'path',
      ok: 200,
      missing: 404,
      build: onName('/worker-config'),
    },
    {
      method: 'PUT',
      route: '/api/v1/containers/:name/worker-config',
      scope: 'admin',
      container: 'path',
      ok: 200,
      missing: 404,
      build: onName('/worker-config', { pollIntervalMs: 500 }),
    },
    {
      method: 'POST',
      route: '/api/v1/claim',
      scope: 'worker',
      container: 'body',
      ok: 200,
      missing: 204,
      build: async (name, exists, allowed) => ({
        path: '/api/v1/claim',
        body: {
          container: name,
          owner: 'matrix',
          names: [exists && allowed ? await pendingTask(name) : 'seed'],
          leaseMs: 600_000,
        },
      }),
      check: (cell, res) => expect(res.body.task.container, cellLabel(cell)).to.equal(cell.name),
    },
    {
      method: 'POST',
      route: '/api/v1/claim',
      label: 'POST /api/v1/claim (no container)',
      scope: 'worker',
      container: 'none',
      needsNoPrefix: true,
      ok: 200,
      build: async (_n, _e, allowed) => ({
        path: '/api/v1/claim',
        body: { owner: 'matrix', names: [allowed ? await pendingTask(NAMES.in) : 'seed'], leaseMs: 600_000 },
      }),
    },
    {
      method: 'POST',
      route: '/api/v1/containers/:name/tasks/:task/heartbeat',
      scope: 'worker',
      container: 'path',
      ok: 200,
      missing: 404,
      build: worker('heartbeat', { percentageComplete: 10 }),
    },
    {
      method: 'POST',
      route: '/api/v1/containers/:name/tasks/:task/succeed',
      scope: 'worker',
      container: 'path',
      ok: 200,
      missing: 404,
      build: worker('succeed', { result: { ok: true } }),
    },
    {
      method: 'POST',
      route: '/api/v1/containers/:name/tasks/:task/fail',
      scope: 'worker',
      container: 'path',
      ok: 200,
      missing: 404,
      build: worker('fail', { error: { message: 'boom' } }),
    },
    {
      method: 'GET',
      route: '/api/v1/changes',
      scope: 'read',
      container: 'none',
      ok: 200,
      build: only('/api/v1/changes?limit=1000'),
      check(cell, res) {
        const names = (res.body.changes as Array<{ container: string }>).map((c) => c.container);
        expect(names.length, `${cellLabel(cell)}: empty feed`).to.be.greaterThan(0);
        noLeak(names, cell, 'changes feed');
        if (!cell.cred.prefix) expect(names, cellLabel(cell)).to.include('team-b/frozen');
      },
    },
    {
      method: 'GET',
      route: '/api/v1/containers/:name/changes',
      scope: 'read',
      container: 'path',
      ok: 200,
      missing: 404,
      build: onName('/changes?limit=1000'),
      check(cell, res) {
        expect(res.body.changes.length, cellLabel(cell)).to.be.greaterThan(0);
        for (const c of res.body.changes) expect(c.container, cellLabel(cell)).to.equal(cell.name);
      },
    },
    {
      method: 'GET',
      route: '/api/v1/events',
      scope: 'read',
      container: 'none',
      ok: 200,
      sse: true,
      build: only('/api/v1/events'),
      check(cell, res) {
        const names = res.events.map((e) => e.container as string);
        expect(names.length, `${cellLabel(cell)}: no event`).to.be.greaterThan(0);
        noLeak(names, cell, 'SSE stream');
        if (!cell.cred.prefix) expect(names[0], cellLabel(cell)).to.equal('team-b/frozen');
      },
    },
    {
      method: 'GET',
      route: '/api/v1/containers/:name/events',
      scope: 'read',
      container: 'path',
      ok: 200,
      missing: 404,
      sse: true,
      build: onName('/events'),
      check(cell, res) {
        expect(res.events.length, `${cellLabel(cell)}: no event`).to.be.greaterThan(0);
        for (const e of res.events) expect(e.container, cellLabel(cell)).to.equal(cell.name);
      },
    },
    {
      method: 'GET',
      route: '/ui/vendor/:file',
      scope: 'none',
      container: 'none',
      ok: 200,
      build: only('/ui/vendor/uplot.js'),
    },
    {
      method: 'GET',
      route: '/api/v1/containers/:name/tasks/:task/children',
      scope: 'read',
      container: 'path',
      ok: 200,
      missing: 404,
      build: onName('/tasks/seed/children'),
      check: (cell, res) => expect(res.body.parent, cellLabel(cell)).to.equal('seed'),
    },
    {
      method: 'POST',
      route: '/api/v1/containers/:name/actions/rerun',
      scope: 'admin',
      container: 'path',
      ok: 200,
      missing: 404,
      build: async (name, exists, allowed) => {
        if (!exists || !allowed) return { path: `${base(name)}/actions/rerun`, body: { task: 'seed' } };
        const { task, token } = await claimed(name); // a succeeded step, re-run for real
        await (await f.client.lease(name, task, token)).succeed(null);
        return { path: `${base(name)}/actions/rerun`, body: { task } };
      },
      check(cell, res) {
        expect(res.body.dryRun, cellLabel(cell)).to.equal(false);
        expect(res.body.reset, cellLabel(cell)).to.deep.equal([res.body.step]);
      },
    },
    {
      method: 'POST',
      route: '/api/v1/containers/:name/tasks/:task/mark-succeeded',
      scope: 'admin',
      container: 'path',
      ok: 200,
      missing: 404,
      build: async (name, exists, allowed) => ({
        path: `${base(name)}/tasks/${enc(exists && allowed ? await pendingTask(name) : 'seed')}/mark-succeeded`,
        body: { result: { byHand: true } },
      }),
      check: (cell, res) => expect(res.body.task.state, cellLabel(cell)).to.equal('succeeded'),
    },
    {
      method: 'POST',
      route: '/api/v1/containers/:name/tasks/:task/spawn',
      scope: 'worker',
      container: 'path',
      ok: 200,
      missing: 404,
      build: async (name, exists, allowed) => {
        const tasks = [{ name: fresh() }];
        if (!exists || !allowed) return { path: `${base(name)}/tasks/seed/spawn`, body: { token: 1, tasks } };
        const { task, token } = await claimed(name);
        return { path: `${base(name)}/tasks/${enc(task)}/spawn`, body: { token, tasks } };
      },
      check: (cell, res) => expect(res.body.created, cellLabel(cell)).to.equal(1),
    },
    {
      method: 'POST',
      route: '/api/v1/containers/:name/tasks/:task/log',
      scope: 'worker',
      container: 'path',
      ok: 200,
      missing: 404,
      build: worker('log', { lines: [{ level: 'info', message: 'from the matrix' }] }),
      check: (cell, res) => expect(res.body.accepted, cellLabel(cell)).to.equal(1),
    },
    {
      method: 'GET',
      route: '/api/v1/containers/:name/tasks/:task/logs',
      scope: 'read',
      container: 'path',
      ok: 200,
      missing: 404,
      build: onName('/tasks/logged/logs?limit=1000'),
      check(cell, res) {
        const messages = (res.body.lines as Array<{ message: string }>).map((l) => l.message);
        expect(messages, cellLabel(cell)).to.deep.equal([`a line of ${cell.name}`]);
      },
    },
    {
      method: 'GET',
      route: '/api/v1/containers/:name/tasks/:task/logs/stream',
      scope: 'read',
      container: 'path',
      ok: 200,
      missing: 404,
      sse: true,
      build: onName('/tasks/logged/logs/stream'),
      check(cell, res) {
        const messages = res.events.flatMap((e) =>
          (e.lines as Array<{ message: string }>).map((l) => l.message),
        );
        expect(messages, `${cellLabel(cell)}: no log page`).to.deep.equal([`a line of ${cell.name}`]);
      },
    },
    // Schedules and pipelines: named by the pipeline; outside the prefix 404 (docs/http.md#schedules-pipelines-and-runs).
    {
      method: 'GET',
      route: '/api/v1/schedules',
      scope: 'read',
      container: 'none',
      ok: 200,
      build: only('/api/v1/schedules'),
      check(cell, res) {
        const items = res.body.items as Array<{ name: string; pipeline: string }>;
        noLeak(
          items.map((s) => s.name),
          cell,
          'schedule names',
        );
        noLeak(
          items.map((s) => s.pipeline),
          cell,
          'schedule pipelines',
        );
        expect(
          items.map((s) => s.name),
          cellLabel(cell),
        ).to.include(cell.cred.prefix ? PIPES.in : PIPES.out);
      },
    },
    ...(
      [
        ['GET', '', 200, 404],
        ['PUT', '', 200, 201],
        ['DELETE', '', 204, 404],
        ['POST', '/actions/pause', 200, 404],
        ['POST', '/actions/unpause', 200, 404],
        ['POST', '/actions/trigger', 200, 404],
        ['POST', '/actions/backfill', 200, 404],
      ] as const
    ).map(([method, suffix, ok, missing]): Row => ({
      method,
      route: `/api/v1/schedules/:pipeline${suffix}`,
      scope: method === 'GET' ? 'read' : 'admin',
      container: 'path',
      names: PIPES,
      outside: 404,
      ok,
      missing,
      build: async (name) => ({
        path: `/api/v1/schedules/${enc(name)}${suffix}`,
        body:
          method === 'PUT'
            ? { cron: CRON }
            : suffix === '/actions/pause'
              ? { note: 'matrix' }
              : suffix === '/actions/backfill'
                ? backfillYear() // one CRON slot never decided before
                : undefined,
      }),
      check:
        method === 'DELETE'
          ? undefined
          : (cell, res) => {
              if (suffix === '/actions/trigger')
                expect(res.body.run.pipeline, cellLabel(cell)).to.equal(cell.name);
              else if (suffix === '/actions/backfill')
                expect(
                  res.body.items.map((r: { pipeline: string }) => r.pipeline),
                  cellLabel(cell),
                ).to.deep.equal([cell.name]);
              else {
                expect(res.body.name, cellLabel(cell)).to.equal(cell.name);
                if (suffix) expect(res.body.paused, cellLabel(cell)).to.equal(suffix === '/actions/pause');
              }
            },
    })),
    {
      method: 'GET',
      route: '/api/v1/pipelines/:pipeline/runs',
      scope: 'read',
      container: 'path',
      names: PIPES,
      outside: 404,
      ok: 200,
      missing: 200, // listRuns of a pipeline without runs: an empty page
      build: async (name) => ({ path: `/api/v1/pipelines/${enc(name)}/runs?limit=1000` }),
      check(cell, res) {
        const items = res.body.items as Array<{ pipeline: string; container: string }>;
        for (const r of items) {
          expect(r.pipeline, cellLabel(cell)).to.equal(cell.name);
          expect(r.container.startsWith(`${cell.name}@`), cellLabel(cell)).to.equal(true);
        }
        expect(items.length > 0, `${cellLabel(cell)}: ${items.length} runs`).to.equal(
          !cell.target.endsWith('missing'),
        );
      },
    },
    {
      method: 'GET',
      route: '/api/v1/pipelines/:pipeline/durations',
      scope: 'read',
      container: 'path',
      names: PIPES,
      outside: 404,
      ok: 200,
      missing: 200,
      build: async (name) => ({ path: `/api/v1/pipelines/${enc(name)}/durations` }),
      check(cell, res) {
        expect(Object.keys(res.body), cellLabel(cell)).to.deep.equal(
          cell.target.endsWith('missing') ? [] : ['step'],
        );
      },
    },
    // Alert rules: admin; a prefixed token sees and manages the rules whose prefix starts with its
    // own (others answer 404 as if missing); it may only add rules inside its prefix (403).
    {
      method: 'GET',
      route: '/api/v1/alerts/rules',
      scope: 'admin',
      container: 'none',
      ok: 200,
      build: only('/api/v1/alerts/rules'),
      check(cell, res) {
        const rules = res.body.items as Array<{ name: string; prefix: string }>;
        noLeak(
          rules.map((r) => r.prefix),
          cell,
          'alert rules',
        );
        expect(
          rules.map((r) => r.name),
          cellLabel(cell),
        ).to.include(cell.cred.prefix ? RULES.in : RULE);
        if (!cell.cred.prefix)
          expect(
            rules.map((r) => r.name),
            cellLabel(cell),
          ).to.include.members([RULES.in, RULES.out]);
        expect(JSON.stringify(res.body), `${cellLabel(cell)}: a rule secret`).to.not.include('secret');
      },
    },
    {
      method: 'POST',
      route: '/api/v1/alerts/rules',
      scope: 'admin',
      container: 'body',
      ok: 201,
      missing: 201, // the prefix need not name a container
      build: async (name) => ({
        path: '/api/v1/alerts/rules',
        body: {
          name: fresh(),
          events: ['container:failed'],
          url: DEAD_URL,
          secret: 'matrix-rule-secret',
          prefix: name,
          enabled: false,
        },
      }),
      check: (cell, res) =>
        expect(res.body, cellLabel(cell)).to.include({ prefix: cell.name, enabled: false }),
    },
    {
      method: 'PATCH',
      route: '/api/v1/alerts/rules/:name',
      scope: 'admin',
      container: 'path',
      names: RULES,
      outside: 404,
      ok: 200,
      missing: 404,
      build: async (name) => ({ path: `/api/v1/alerts/rules/${enc(name)}`, body: { enabled: false } }),
      check: (cell, res) => expect(res.body, cellLabel(cell)).to.include({ name: cell.name, enabled: false }),
    },
    {
      method: 'DELETE',
      route: '/api/v1/alerts/rules/:name',
      scope: 'admin',
      container: 'path',
      names: RULES,
      outside: 404,
      ok: 204,
      missing: 404,
      build: async (name) => ({ path: `/api/v1/alerts/rules/${enc(name)}` }), // ensure() puts it back
    },
    {
      method: 'POST',
      route: '/api/v1/alerts/rules/:name/test',
      scope: 'admin',
      container: 'path',
      names: RULES,
      outside: 404,
      ok: 200,
      missing: 404,
      build: async (name) => ({ path: `/api/v1/alerts/rules/${enc(name)}/test` }),
      check(cell, res) {
        expect(res.body.statusCode, cellLabel(cell)).to.equal(null); // DEAD_URL refuses the connection
        expect(res.body.error, cellLabel(cell)).to.be.a('string');
      },
    },
    {
      method: 'GET',
      route: '/api/v1/alerts/deliveries',
      scope: 'read',
      container: 'list',
      ok: 200,
      build: async (name) => ({
        path: `/api/v1/alerts/deliveries?limit=1000&prefix=${enc(name.split('/')[0] + '/')}`,
      }),
      check(cell, res) {
        const names = (res.body.items as Array<{ container: string }>).map((d) => d.container);
        noLeak(names, cell, 'deliveries');
        const requested = cell.name.split('/')[0] + '/';
        for (const n of names) expect(n.startsWith(requested), cellLabel(cell)).to.equal(true);
        if (!cell.cred.prefix || requested === cell.cred.prefix)
          expect(names, `${cellLabel(cell)}: no delivery`).to.deep.equal([
            requested === PREFIX ? ALERTED[0] : ALERTED[1],
          ]);
        else expect(names, cellLabel(cell)).to.deep.equal([]);
      },
    },
    // Retention policies: named by their prefix, confined like containers (403 outside), listed filtered.
    {
      method: 'GET',
      route: '/api/v1/retention/policies',
      scope: 'admin',
      container: 'none',
      ok: 200,
      build: only('/api/v1/retention/policies'),
      check(cell, res) {
        const prefixes = (res.body.items as Array<{ prefix: string }>).map((p) => p.prefix);
        noLeak(prefixes, cell, 'retention policies');
        expect(prefixes, cellLabel(cell)).to.include(cell.cred.prefix ? NAMES.in : NAMES.out);
      },
    },
    {
      method: 'PUT',
      route: '/api/v1/retention/policies',
      scope: 'admin',
      container: 'body',
      ok: 200,
      missing: 200, // create or replace
      build: async (name) => ({
        path: '/api/v1/retention/policies',
        body: { prefix: name, succeededDays: KEEP_DAYS },
      }),
      check: (cell, res) =>
        expect(res.body, cellLabel(cell)).to.include({ prefix: cell.name, succeededDays: KEEP_DAYS }),
    },
    {
      method: 'DELETE',
      route: '/api/v1/retention/policies',
      scope: 'admin',
      container: 'body',
      ok: 204,
      missing: 404,
      build: async (name) => ({ path: `/api/v1/retention/policies?prefix=${enc(name)}` }),
    },
    {
      method: 'POST',
      route: '/api/v1/retention/apply',
      scope: 'admin',
      container: 'none',
      ok: 200,
      build: async () => ({ path: '/api/v1/retention/apply', body: {} }),
      check: (cell, res) =>
        expect(res.body, cellLabel(cell)).to.deep.include({ dryRun: false, containers: [] }),
    },
  ];
  // HEAD mirrors every GET (fastify exposes it automatically): same status, no body.
  for (const r of ROWS.filter((x) => x.method === 'GET'))
    ROWS.push({ ...r, method: 'HEAD', label: undefined, check: undefined });

  function cellLabel(c: Cell): string {
    return `${c.row.label ?? `${c.row.method} ${c.row.route}`} as ${c.cred.label} on ${c.target === '-' ? '-' : c.name}`;
  }

  /** The documented rules, in the order the server must apply them. */
  function expectedStatus(row: Row, cred: Cred, target: Target): number {
    if (row.scope === 'none') return row.ok;
    if (cred.scope === 'none' || cred.revoked) return 401;
    if (cred.via === 'query' && row.method !== 'GET') return 401; // ?access_token= is for GET only
    if (!scopeAllows(cred.scope, row.scope)) return 403;
    if (row.needsNoPrefix && cred.prefix) return 403;
    if (target === '-' || row.container === 'list') return row.ok; // listings filter, never 403
    if (!(row.names ?? NAMES)[target].startsWith(cred.prefix)) return row.outside ?? 403;
    return target.endsWith('missing') ? row.missing! : row.ok;
  }

  async function send(method: string, path: string, cred: Cred, body: unknown, sse: boolean): Promise<Res> {
    const headers: Record<string, string> = {};
    let url = f.url + path;
    if (cred.token && cred.via === 'header') headers.authorization = `Bearer ${cred.token}`;
    if (cred.token && cred.via === 'query')
      url += `${path.includes('?') ? '&' : '?'}access_token=${enc(cred.token)}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), TIMEOUT_MS);
    const res: Res = { status: 'timeout', body: null, events: [] };
    let text = '';
    try {
      const r = await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: ac.signal,
      });
      res.status = r.status;
      if (sse && method === 'GET' && r.status === 200) {
        expect(r.headers.get('content-type')).to.match(/^text\/event-stream/);
        const reader = r.body!.getReader();
        const dec = new TextDecoder();
        // The first page is written in one go: read until an event arrived, then a little more.
        let until = Infinity;
        while (Date.now() < until) {
          const { value, done } = await reader.read();
          if (done) break;
          text += dec.decode(value, { stream: true });
          if (until === Infinity && /\ndata: /.test(text)) {
            until = Date.now() + 100;
            setTimeout(() => ac.abort(), 100);
          }
        }
      } else {
        const t = await r.text();
        res.body = t ? safeJson(t) : null;
      }
    } catch (err) {
      if (!ac.signal.aborted) throw err;
    } finally {
      clearTimeout(timer);
      ac.abort();
    }
    if (sse) res.events = parseEvents(text);
    return res;
  }

  it('every route × credential × in/out-of-prefix container answers the documented status', async function () {
    this.timeout(120_000);
    const started = Date.now();
    await setupOnce();
    // Positive controls for the listings: an old change outside team-a/ heads the feed.
    await new Promise((r) => setTimeout(r, 1_300)); // let the seeding pass the changes-feed horizon
    await deliverAlerts();
    const setupMs = Date.now() - started;

    // Every registered route has a row, and every row is a registered route.
    const registered = routesOf(f.server.app);
    expect(registered.length, 'route enumeration found nothing').to.be.greaterThan(20);
    const covered = new Set(ROWS.map((r) => `${r.method} ${r.route}`));
    const uncovered = registered.filter((r) => !covered.has(`${r.method} ${r.route}`));
    expect(uncovered, 'routes missing from the auth matrix').to.deep.equal([]);
    for (const r of ROWS)
      expect(
        f.server.app.hasRoute({ method: r.method as 'GET', url: r.route }),
        `${r.method} ${r.route}`,
      ).to.equal(true);

    // Credentials.
    const creds: Cred[] = [{ label: 'none', scope: 'none', prefix: '', via: 'header' }];
    for (const scope of ['read', 'worker', 'admin'] as const) {
      creds.push({ label: scope, scope, prefix: '', via: 'header', token: f.token[scope] });
      const { token } = await f.tokens.create({ scope, prefix: PREFIX, name: `${scope}-team-a` });
      secrets.push(token);
      creds.push({ label: `${scope}@${PREFIX}`, scope, prefix: PREFIX, via: 'header', token });
    }
    creds.push({ label: 'read ?access_token', scope: 'read', prefix: '', via: 'query', token: f.token.read });
    const adminA = creds.find((c) => c.label === `admin@${PREFIX}`)!;
    creds.push({ ...adminA, label: `admin@${PREFIX} ?access_token`, via: 'query' });
    creds.push({ label: 'revoked admin', scope: 'admin', prefix: '', via: 'header', revoked: true });

    const cells: Cell[] = [];
    for (const row of ROWS) {
      const targets: Target[] = row.container === 'none' ? ['-'] : ['in', 'out', 'in-missing', 'out-missing'];
      for (const cred of creds)
        for (const target of targets) {
          if (row.container === 'list' && target.endsWith('missing')) continue; // same query as in/out
          // A revoked token is 401 before anything looks at the target: one cell per row (each mints,
          // warms and revokes a token of its own, three database writes).
          if (cred.revoked && target !== targets[0]) continue;
          cells.push({
            row,
            cred,
            target,
            name: target === '-' ? '' : (row.names ?? NAMES)[target],
            expected: expectedStatus(row, cred, target),
          });
        }
    }

    const failures: string[] = [];
    let revokedChecked = 0;
    let ensureMs = 0;
    /** Rows whose check ran on at least one allowed cell (a check never run proves nothing). */
    const checked = new Set<Row>();
    const runCell = async (cell: Cell): Promise<void> => {
      const { row } = cell;
      let cred = cell.cred;
      if (cred.revoked) {
        // A token that just worked (and sits in the verify cache) is rejected by the very next request.
        const { token, record } = await f.tokens.create({ scope: 'admin', name: 'to-revoke' });
        secrets.push(token);
        const warm = await send('GET', '/api/v1/whoami', { ...cred, token }, undefined, false);
        expect(warm.status, 'token before revocation').to.equal(200);
        await f.tokens.revoke(record.id);
        cred = { ...cred, token };
        revokedChecked++;
      }
      const allowed = cell.expected >= 200 && cell.expected < 300;
      const exists = !cell.target.endsWith('missing');
      const prep = await row.build(cell.name, exists, allowed);
      const res = await send(row.method, prep.path, cred, prep.body, row.sse === true);
      if (res.status !== cell.expected) {
        failures.push(
          `${cellLabel(cell)}: expected ${cell.expected}, got ${res.status} ${JSON.stringify(res.body)?.slice(0, 160)}`,
        );
        return;
      }
      if (row.method !== 'HEAD' && typeof res.status === 'number' && res.status >= 400) {
        expect(res.body?.error?.code, `${cellLabel(cell)} error body`).to.be.a('string');
        const code = { 401: 'PTS_UNAUTHORIZED', 403: 'PTS_FORBIDDEN', 404: 'PTS_NOT_FOUND' }[res.status];
        if (code) expect(res.body.error.code, cellLabel(cell)).to.equal(code);
      }
      if (allowed && res.status !== 204 && row.method !== 'HEAD' && row.check) {
        try {
          checked.add(row);
          row.check(cell, res);
        } catch (err) {
          failures.push(`${cellLabel(cell)}: ${(err as Error).message}`);
        }
      }
      if (allowed && row.method !== 'GET' && row.method !== 'HEAD') {
        const t0 = Date.now();
        await ensure();
        ensureMs += Date.now() - t0;
      }
    };

    // Reads run 8 at a time (they change nothing); writes one by one, each from the fixed world.
    const reads = cells.filter((c) => c.row.method === 'GET' || c.row.method === 'HEAD');
    const writes = cells.filter((c) => !reads.includes(c));
    const t0 = Date.now();
    for (let i = 0; i < reads.length; i += 8) await Promise.all(reads.slice(i, i + 8).map(runCell));
    const readsMs = Date.now() - t0;
    for (const c of writes) await runCell(c);
    const writesMs = Date.now() - t0 - readsMs;

    // Tokens never reach the log (the server logged every request at trace level).
    await new Promise((r) => setImmediate(r));
    const text = log.join('');
    expect(log.length, 'the server logged nothing').to.be.greaterThan(cells.length);
    expect(text, 'access_token redaction').to.include('access_token=[REDACTED]');
    for (const s of secrets) {
      expect(text.includes(s), 'a token secret is in the log').to.equal(false);
      expect(text.includes(s.slice(4)), 'a token secret (without pts_) is in the log').to.equal(false);
    }
    expect(/access_token=(?!\[REDACTED\])/.exec(text)?.[0] ?? null, 'unredacted access_token').to.equal(null);
    console.log(
      `[reliability] auth-matrix: ${cells.length} cells (${cells.length - failures.length} as documented) (${ROWS.length} route rows × ${creds.length} credentials × targets), ` +
        `${registered.length} registered routes covered, ${secrets.length} secrets absent from ${log.length} log lines, ${Date.now() - started} ms ` +
        `(setup ${setupMs} ms, ${reads.length} reads ${readsMs} ms, ${writes.length} writes ${writesMs} ms of which ensure() ${ensureMs} ms)`,
    );
    expect(revokedChecked).to.be.greaterThan(0);
    expect(
      failures,
      `${failures.length} of ${cells.length} cells differ:\n${failures.join('\n')}`,
    ).to.deep.equal([]);
    const unchecked = ROWS.filter((r) => r.check && !checked.has(r)).map(
      (r) => r.label ?? `${r.method} ${r.route}`,
    );
    expect(unchecked, 'rows whose check never ran').to.deep.equal([]);
  });
});

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function parseEvents(text: string): any[] {
  const out: any[] = [];
  for (const block of text.split('\n\n')) {
    const data = block
      .split('\n')
      .filter((l) => l.startsWith('data: '))
      .map((l) => l.slice(6))
      .join('\n');
    if (!data || !/(^|\n)event: (task|container|logs)(\n|$)/.test(block)) continue;
    try {
      out.push(JSON.parse(data));
    } catch {
      // a block cut by the abort
    }
  }
  return out;
}
