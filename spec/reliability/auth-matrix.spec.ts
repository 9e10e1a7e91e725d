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
  /** Where the container is named: path param, claim body, list prefix query, or nowhere. */
  container: 'path' | 'body' | 'list' | 'none';
  /** Success status for an existing container / a missing one. */
  ok: number;
  missing?: number;
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
const PREFIX = 'team-a/';
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
    }
    for (const name of [NAMES['in-missing'], NAMES['out-missing']]) await f.client.deleteTaskContainer(name);
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
    if (!NAMES[target].startsWith(cred.prefix)) return 403;
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
    await ensure();
    // Positive controls for the listings: an old change outside team-a/ heads the feed.
    await new Promise((r) => setTimeout(r, 1_300)); // let the seeding pass the changes-feed horizon

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
          cells.push({
            row,
            cred,
            target,
            name: target === '-' ? '' : NAMES[target],
            expected: expectedStatus(row, cred, target),
          });
        }
    }

    const failures: string[] = [];
    let revokedChecked = 0;
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
          row.check(cell, res);
        } catch (err) {
          failures.push(`${cellLabel(cell)}: ${(err as Error).message}`);
        }
      }
      if (allowed && row.method !== 'GET' && row.method !== 'HEAD') await ensure();
    };

    // Reads run 8 at a time (they change nothing); writes one by one, each from the fixed world.
    const reads = cells.filter((c) => c.row.method === 'GET' || c.row.method === 'HEAD');
    const writes = cells.filter((c) => !reads.includes(c));
    for (let i = 0; i < reads.length; i += 8) await Promise.all(reads.slice(i, i + 8).map(runCell));
    for (const c of writes) await runCell(c);

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
        `${registered.length} registered routes covered, ${secrets.length} secrets absent from ${log.length} log lines, ${Date.now() - started} ms`,
    );
    expect(revokedChecked).to.be.greaterThan(0);
    expect(
      failures,
      `${failures.length} of ${cells.length} cells differ:\n${failures.join('\n')}`,
    ).to.deep.equal([]);
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
    if (!data || !/(^|\n)event: (task|container)(\n|$)/.test(block)) continue;
    try {
      out.push(JSON.parse(data));
    } catch {
      // a block cut by the abort
    }
  }
  return out;
}
