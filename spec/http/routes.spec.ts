import http from 'node:http';
import { expect } from 'chai';
import { CONTAINER_ACTIONS, allowedActions } from '../../lib';
import { useTestDatabase } from '../helpers/db';
import { startFixture, type HttpFixture } from './support';

describe('http routes', function () {
  const db = useTestDatabase();
  let f: HttpFixture;
  before(async function () {
    f = await startFixture(db);
  });
  after(async function () {
    await f?.close();
  });

  it('creates a container, adds tasks and reads them back', async function () {
    const put = await f.call('PUT', '/api/v1/containers/r-basic', {
      body: { failurePolicy: 'continue', metadata: { owner: 'me' } },
    });
    expect(put.status).to.equal(201);
    expect(put.body.created).to.equal(true);
    expect(put.body.container.name).to.equal('r-basic');
    const again = await f.call('PUT', '/api/v1/containers/r-basic', { body: {} });
    expect(again.status).to.equal(200);
    expect(again.body.created).to.equal(false);

    const add = await f.call('POST', '/api/v1/containers/r-basic/tasks', {
      body: {
        tasks: [
          { name: 'a/b c', data: { n: 1 } },
          { name: 'second', dependsOn: ['a/b c'], weight: 2 },
        ],
      },
    });
    expect(add.status).to.equal(200);
    expect(add.body.tasks.map((t: { name: string }) => t.name)).to.deep.equal(['a/b c', 'second']);

    const one = await f.call('GET', `/api/v1/containers/r-basic/tasks/${encodeURIComponent('a/b c')}`, {
      token: f.token.read,
    });
    expect(one.status).to.equal(200);
    expect(one.body.taskData).to.deep.equal({ n: 1 });
    expect(one.body.state).to.equal('pending');

    const summary = await f.call('GET', '/api/v1/containers/r-basic', { token: f.token.read });
    expect(summary.body.total).to.equal(2);
    expect(summary.body.metadata).to.deep.equal({ owner: 'me' });

    expect((await f.call('GET', '/api/v1/containers/r-basic/tasks/nope')).status).to.equal(404);
    expect((await f.call('GET', '/api/v1/containers/nope')).body.error.code).to.equal('PTS_NOT_FOUND');
  });

  it('paginates containers and tasks with cursors', async function () {
    for (let i = 0; i < 5; i++) await f.call('PUT', `/api/v1/containers/page-${i}`, { body: {} });
    const seen: string[] = [];
    let cursor: string | null = '';
    while (cursor !== null) {
      const r = await f.call(
        'GET',
        `/api/v1/containers?prefix=page-&limit=2${cursor ? `&cursor=${cursor}` : ''}`,
        { token: f.token.read },
      );
      expect(r.status).to.equal(200);
      expect(r.body.items.length).to.be.at.most(2);
      seen.push(...r.body.items.map((c: { name: string }) => c.name));
      cursor = r.body.nextCursor;
    }
    expect(seen).to.deep.equal(['page-4', 'page-3', 'page-2', 'page-1', 'page-0']);

    await f.call('POST', '/api/v1/containers/page-0/tasks', {
      body: { tasks: Array.from({ length: 7 }, (_, i) => ({ name: `t${i}` })) },
    });
    const names: string[] = [];
    cursor = '';
    while (cursor !== null) {
      const r = await f.call(
        'GET',
        `/api/v1/containers/page-0/tasks?limit=3&state=pending${cursor ? `&cursor=${cursor}` : ''}`,
        { token: f.token.read },
      );
      names.push(...r.body.items.map((t: { name: string }) => t.name));
      cursor = r.body.nextCursor;
    }
    expect(names).to.deep.equal(['t0', 't1', 't2', 't3', 't4', 't5', 't6']);
    const multi = await f.call('GET', '/api/v1/containers/page-0/tasks?state=running&state=failed', {
      token: f.token.read,
    });
    expect(multi.status).to.equal(200);
    expect(multi.body.items).to.deep.equal([]);
  });

  it('runs the worker protocol: claim, heartbeat, succeed, fail, stale token 409', async function () {
    await f.call('PUT', '/api/v1/containers/w-proto', { body: {} });
    await f.call('POST', '/api/v1/containers/w-proto/tasks', {
      body: { tasks: [{ name: 'one' }, { name: 'two', maxRetries: 0 }] },
    });
    const w = { token: f.token.worker };
    const c1 = await f.call('POST', '/api/v1/claim', {
      ...w,
      body: { container: 'w-proto', owner: 'w1', leaseMs: 60_000 },
    });
    expect(c1.status).to.equal(200);
    expect(c1.body.task.name).to.equal('one');
    expect(c1.body.config).to.deep.equal({ pollIntervalMs: 1000, custom: {} });
    const token = c1.body.token as number;
    const hb = await f.call('POST', '/api/v1/containers/w-proto/tasks/one/heartbeat', {
      ...w,
      body: { token, percentageComplete: 40, statusText: 'half', processingData: { at: 4 } },
    });
    expect(hb.status).to.equal(200);
    expect(new Date(hb.body.leaseExpiresAt).getTime()).to.be.greaterThan(Date.now());
    const t = await f.call('GET', '/api/v1/containers/w-proto/tasks/one', w);
    expect(t.body.percentageComplete).to.equal(40);
    expect(t.body.processingData).to.deep.equal({ at: 4 });

    const stale = await f.call('POST', '/api/v1/containers/w-proto/tasks/one/heartbeat', {
      ...w,
      body: { token: token + 100 },
    });
    expect(stale.status).to.equal(409);
    expect(stale.body.error.code).to.equal('PTS_LEASE_LOST');

    const ok = await f.call('POST', '/api/v1/containers/w-proto/tasks/one/succeed', {
      ...w,
      body: { token, result: { sum: 3 } },
    });
    expect(ok.status).to.equal(200);
    expect(ok.body.task.state).to.equal('succeeded');
    expect(ok.body.task.result).to.deep.equal({ sum: 3 });
    const late = await f.call('POST', '/api/v1/containers/w-proto/tasks/one/succeed', {
      ...w,
      body: { token },
    });
    expect(late.status).to.equal(409);

    const c2 = await f.call('POST', '/api/v1/claim', { ...w, body: { container: 'w-proto', owner: 'w1' } });
    expect(c2.body.task.name).to.equal('two');
    const failed = await f.call('POST', '/api/v1/containers/w-proto/tasks/two/fail', {
      ...w,
      body: { token: c2.body.token, error: { message: 'boom', code: 'E_BOOM' }, retryable: false },
    });
    expect(failed.status).to.equal(200);
    expect(failed.body.task.state).to.equal('failed');
    expect(failed.body.task.failures[0]).to.include({ message: 'boom', code: 'E_BOOM' });

    const none = await f.call('POST', '/api/v1/claim', {
      ...w,
      body: { container: 'w-proto', owner: 'w1', waitMs: 0 },
    });
    expect(none.status).to.equal(204);

    const retried = await f.call('POST', '/api/v1/containers/w-proto/actions/retry', {
      body: { task: 'two' },
    });
    expect(retried.body).to.deep.equal({ affected: 1 });
    const skipped = await f.call('POST', '/api/v1/containers/w-proto/tasks/two/skip');
    expect(skipped.status).to.equal(200);
    expect(skipped.body.task.state).to.equal('skipped');
    const sum = await f.call('GET', '/api/v1/containers/w-proto');
    expect(sum.body.status).to.equal('succeeded');
    const reset = await f.call('POST', '/api/v1/containers/w-proto/actions/reset', { body: {} });
    expect(reset.body, JSON.stringify(reset.body)).to.have.property('affected', 2);
    const cancel = await f.call('POST', '/api/v1/containers/w-proto/actions/cancel');
    expect(cancel.body, JSON.stringify(cancel.body)).to.have.property('affected', 2);
    const invalid = await f.call('POST', '/api/v1/containers/w-proto/tasks/one/skip');
    expect(invalid.status).to.be.oneOf([200, 409]);
  });

  it('long-polls a claim until a task appears', async function () {
    await f.call('PUT', '/api/v1/containers/w-long', { body: {} });
    const started = Date.now();
    const pending = f.call('POST', '/api/v1/claim', {
      token: f.token.worker,
      body: { container: 'w-long', owner: 'w2', waitMs: 10_000 },
    });
    await new Promise((r) => setTimeout(r, 300));
    await f.call('POST', '/api/v1/containers/w-long/tasks', { body: { tasks: [{ name: 'late' }] } });
    const r = await pending;
    expect(r.status).to.equal(200);
    expect(r.body.task.name).to.equal('late');
    expect(Date.now() - started).to.be.lessThan(5_000);

    const t0 = Date.now();
    const empty = await f.call('POST', '/api/v1/claim', {
      token: f.token.worker,
      body: { container: 'w-long', owner: 'w2', waitMs: 400 },
    });
    expect(empty.status).to.equal(204);
    expect(Date.now() - t0).to.be.within(350, 5_000);
  });

  it('gives a claimed task back when the claiming worker disconnected before the reply', async function () {
    await f.call('PUT', '/api/v1/containers/w-gone', { body: {} });
    await f.call('POST', '/api/v1/containers/w-gone/tasks', { body: { tasks: [{ name: 'orphan' }] } });
    // Hold the server inside claimNext until the worker's socket is gone: the claim then
    // succeeds in the database for a client that will never read the reply.
    let enter!: () => void;
    const entered = new Promise<void>((r) => (enter = r));
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const real = f.client.claimNext.bind(f.client);
    f.client.claimNext = (async (...a: Parameters<typeof real>) => {
      enter();
      await gate;
      return real(...a);
    }) as typeof real;
    try {
      const req = http.request(`${f.url}/api/v1/claim`, {
        method: 'POST',
        headers: { authorization: `Bearer ${f.token.worker}`, 'content-type': 'application/json' },
      });
      req.on('error', () => undefined); // the socket is destroyed on purpose
      req.end(JSON.stringify({ container: 'w-gone', owner: 'gone', leaseMs: 600_000 }));
      await entered;
      req.destroy();
      await new Promise((r) => setTimeout(r, 300)); // the server sees the close
      open();
      let task: { state: string; lease: unknown; attempts: number; invokeCount: number } | undefined;
      for (let i = 0; i < 100; i++) {
        task = (await f.call('GET', '/api/v1/containers/w-gone/tasks/orphan')).body;
        // Claimed (invokeCount 1) and given back: the claim behind the gate may not have run yet.
        if (task?.state === 'pending' && task.invokeCount === 1) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      // Without the release it would stay running for the whole 10-minute lease.
      expect(task?.state).to.equal('pending');
      expect(task?.invokeCount).to.equal(1);
      expect(task?.lease).to.equal(null);
      expect(task?.attempts).to.equal(0); // the undelivered claim does not use up a retry
    } finally {
      delete (f.client as { claimNext?: unknown }).claimNext; // back to the prototype's method
      open();
    }
    const again = await f.call('POST', '/api/v1/claim', {
      token: f.token.worker,
      body: { container: 'w-gone', owner: 'next' },
    });
    expect(again.status).to.equal(200);
    expect(again.body.task.name).to.equal('orphan');
  });

  it('stores worker config in the container metadata', async function () {
    await f.call('PUT', '/api/v1/containers/w-cfg', { body: { metadata: { team: 'x' } } });
    const put = await f.call('PUT', '/api/v1/containers/w-cfg/worker-config', {
      body: { pollIntervalMs: 250, custom: { batch: 10 } },
    });
    expect(put.status).to.equal(200);
    const get = await f.call('GET', '/api/v1/containers/w-cfg/worker-config', { token: f.token.worker });
    expect(get.body).to.deep.equal({ pollIntervalMs: 250, custom: { batch: 10 } });
    const summary = await f.call('GET', '/api/v1/containers/w-cfg');
    expect(summary.body.metadata.team).to.equal('x');
    expect(
      (
        await f.call('PUT', '/api/v1/containers/w-cfg/worker-config', {
          token: f.token.worker,
          body: { pollIntervalMs: 300 },
        })
      ).status,
    ).to.equal(403);
    expect((await f.call('GET', '/api/v1/containers/nope/worker-config')).status).to.equal(404);
  });

  it('resume recovers a dead worker\'s task; whoami reports the token\'s scope', async function () {
    await f.call('PUT', '/api/v1/containers/r-resume', { body: {} });
    await f.call('POST', '/api/v1/containers/r-resume/tasks', { body: { tasks: [{ name: 'only' }] } });
    const claim = await f.call('POST', '/api/v1/claim', {
      token: f.token.worker,
      body: { container: 'r-resume', owner: 'doomed', leaseMs: 1 },
    });
    expect(claim.status).to.equal(200);
    await new Promise((r) => setTimeout(r, 20));
    const readOnly = await f.call('POST', '/api/v1/containers/r-resume/actions/resume', { token: f.token.read, body: {} });
    expect(readOnly.status).to.equal(403);
    const r = await f.call('POST', '/api/v1/containers/r-resume/actions/resume', { body: {} });
    expect(r.status).to.equal(200);
    expect(r.body.affected).to.equal(1);
    const t = await f.call('GET', '/api/v1/containers/r-resume/tasks/only', { token: f.token.read });
    expect(t.body.state).to.equal('pending');
    expect(t.body.failures[0].code).to.equal('LEASE_EXPIRED');
    const me = await f.call('GET', '/api/v1/whoami', { token: f.token.worker });
    expect(me.status).to.equal(200);
    expect(me.body).to.include({ scope: 'worker', prefix: '' });
    expect((await f.call('GET', '/api/v1/whoami', { token: null })).status).to.equal(401);
  });

  it('task records and container summaries carry allowedActions from the transition table', async function () {
    await f.call('PUT', '/api/v1/containers/r-allowed', { body: {} });
    await f.call('POST', '/api/v1/containers/r-allowed/tasks', {
      body: { tasks: [{ name: 'one', maxRetries: 0 }, { name: 'two' }] },
    });
    const claimed = await f.call('POST', '/api/v1/claim', {
      token: f.token.worker,
      body: { container: 'r-allowed', names: ['one'], owner: 'w1' },
    });
    await f.call('POST', '/api/v1/containers/r-allowed/tasks/one/fail', {
      token: f.token.worker,
      body: { token: claimed.body.token, error: { message: 'boom' } },
    });
    const one = await f.call('GET', '/api/v1/containers/r-allowed/tasks/one', { token: f.token.read });
    expect(one.body.state).to.equal('failed');
    expect(one.body.allowedActions).to.deep.equal(allowedActions('failed'));
    const page = await f.call('GET', '/api/v1/containers/r-allowed/tasks', { token: f.token.read });
    expect(page.body.items.map((t: { allowedActions: string[] }) => t.allowedActions)).to.deep.equal([
      allowedActions('failed'),
      allowedActions('pending'),
    ]);
    const summary = await f.call('GET', '/api/v1/containers/r-allowed', { token: f.token.read });
    expect(summary.body.allowedActions).to.deep.equal([...CONTAINER_ACTIONS]);
    const list = await f.call('GET', '/api/v1/containers?prefix=r-allowed', { token: f.token.read });
    expect(list.body.items[0].allowedActions).to.deep.equal([...CONTAINER_ACTIONS]);
  });

  it('deletes a task that is not running (DELETE /containers/:name/tasks/:task)', async function () {
    await f.call('PUT', '/api/v1/containers/r-del-task', { body: {} });
    await f.call('POST', '/api/v1/containers/r-del-task/tasks', {
      body: { tasks: [{ name: 'up' }, { name: 'down', dependsOn: ['up'] }, { name: 'busy' }] },
    });
    await f.call('POST', '/api/v1/claim', {
      token: f.token.worker,
      body: { container: 'r-del-task', names: ['busy'], owner: 'w1' },
    });
    const del = (task: string, token?: string) =>
      f.call('DELETE', `/api/v1/containers/r-del-task/tasks/${task}`, { token });
    expect((await del('down', f.token.read)).status).to.equal(403);
    expect((await del('up')).body.error.code).to.equal('PTS_INVALID_TRANSITION'); // down depends on it
    expect((await del('busy')).body.error.code).to.equal('PTS_INVALID_TRANSITION'); // running
    expect((await del('down')).status).to.equal(204);
    expect((await del('down')).status).to.equal(404);
    expect((await del('up')).status).to.equal(204);
    const left = await f.call('GET', '/api/v1/containers/r-del-task/tasks');
    expect(left.body.items.map((t: { name: string }) => t.name)).to.deep.equal(['busy']);
  });

  it('deletes a container', async function () {
    await f.call('PUT', '/api/v1/containers/r-del', { body: {} });
    expect((await f.call('DELETE', '/api/v1/containers/r-del')).status).to.equal(204);
    expect((await f.call('DELETE', '/api/v1/containers/r-del')).status).to.equal(404);
  });

  it('serves healthz, readyz, metrics and the OpenAPI document', async function () {
    expect((await f.call('GET', '/healthz', { token: null })).body).to.deep.equal({ ok: true });
    expect((await f.call('GET', '/readyz', { token: null })).status).to.equal(200);
    const m = await f.call('GET', '/metrics', { token: null });
    expect(m.status).to.equal(200);
    expect(m.body).to.match(/pts_tasks\{state="succeeded"\} \d+/);
    expect(m.body).to.match(/pts_http_request_duration_seconds_bucket/);
    expect(m.body).to.match(/pts_task_transitions_total\{transition="succeeded"\} [1-9]/);
    const o = await f.call('GET', '/openapi.json', { token: null });
    expect(o.status).to.equal(200);
    expect(o.body.openapi).to.match(/^3\./);
    expect(Object.keys(o.body.paths)).to.include.members([
      '/api/v1/claim',
      '/api/v1/containers/{name}/tasks/{task}/heartbeat',
      '/api/v1/changes',
    ]);
    const claim = o.body.paths['/api/v1/claim'].post;
    expect(claim.requestBody.content['application/json'].schema.additionalProperties).to.equal(false);
  });
});

describe('http service with the database down', function () {
  it('answers /readyz with 503 and maps transient database errors to 503', async function () {
    const { createClient } = await import('../../lib/client');
    const { buildServer } = await import('../../lib/http/server');
    const { toHttpError } = await import('../../lib/http/errors');
    const client = createClient({
      uri: 'mongodb://127.0.0.1:9/pts_down?serverSelectionTimeoutMS=300&connectTimeoutMS=300',
    });
    client.connection.on('error', () => undefined);
    const app = await buildServer({ client, auth: false, dashboard: false });
    try {
      const ready = await app.inject({ method: 'GET', url: '/readyz' });
      expect(ready.statusCode).to.equal(503);
      expect(JSON.parse(ready.body).error.code).to.equal('PTS_UNAVAILABLE');
      expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).to.equal(200);
    } finally {
      await app.close();
      await client.close().catch(() => undefined);
    }
    const selection = Object.assign(new Error('connect ECONNREFUSED'), { name: 'MongoServerSelectionError' });
    expect(toHttpError(selection)).to.deep.include({ status: 503, code: 'PTS_UNAVAILABLE' });
    const buffering = Object.assign(
      new Error('Operation `pts_tasks.find()` buffering timed out after 10000ms'),
      { name: 'MongooseError' },
    );
    expect(toHttpError(buffering).status).to.equal(503);
    expect(toHttpError(new Error('boom'))).to.deep.include({ status: 500, code: 'PTS_INTERNAL' });
  });
});
