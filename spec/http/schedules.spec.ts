/**
 * The schedule, pipeline and run routes on a real server (ManualClock client): create/update with
 * PUT (the pipeline need not be defined in the serving process), the read records (next fire
 * times, recent skipped ranges, the run history and step durations exactly as the library
 * returns them), the actions, scopes (read may not write) and name prefixes (a prefix-limited
 * token sees only its schedules and pipelines: everything else is 404), bad input answered 400
 * with nothing written, and every answer valid against the OpenAPI document's schemas.
 */
import { expect } from 'chai';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';
import { createClient, ManualClock, type Client } from '../../lib';
import { TokenStore } from '../../lib/auth';
import { startServer, type RunningServer } from '../../lib/http/server';
import { useTestDatabase } from '../helpers/db';
import { trackResource } from '../helpers/leaks';

const json = (v: unknown): unknown => JSON.parse(JSON.stringify(v));

describe('http schedules', function () {
  const db = useTestDatabase();
  let clock: ManualClock;
  let client: Client;
  let server: RunningServer;
  let untrack: () => void;
  const token: Record<string, string> = {};
  let doc: { paths: Record<string, Record<string, { responses: Record<string, unknown> }>> };
  let ajv: Ajv;

  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- bodies are asserted field by field
  async function call(method: string, path: string, opts: { token?: string; body?: unknown } = {}): Promise<{ status: number; body: any }> {
    const headers: Record<string, string> = { authorization: `Bearer ${opts.token ?? token.admin}` };
    if (opts.body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(server.url + path, {
      method,
      headers,
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  }
  /** Asserts the body is valid against the document's response schema of that operation and status. */
  function conforms(method: string, path: string, status: number, body: unknown): void {
    const key = `doc#/paths/${path.replace(/\//g, '~1').replace(/\{/g, '%7B').replace(/\}/g, '%7D')}/${method}/responses/${status}/content/application~1json/schema`;
    const validate = ajv.getSchema(key);
    expect(validate, key).to.be.a('function');
    expect(validate!(body), `${method} ${path} ${status}: ${JSON.stringify(validate!.errors)}`).to.equal(true);
  }

  before(async function () {
    clock = new ManualClock(Date.parse('2026-05-01T00:30:00Z'));
    client = createClient({ connection: db.connection, clock, workerId: 'w' });
    await client.ensureIndexes();
    client.definePipeline('etl', { tasks: [{ name: 'fetch' }, { name: 'load', dependsOn: ['fetch'] }] });
    const tokens = new TokenStore(client);
    for (const scope of ['read', 'admin'] as const) token[scope] = (await tokens.create({ scope })).token;
    token.prefixed = (await tokens.create({ scope: 'admin', prefix: 'team-' })).token;
    server = await startServer({ client, auth: { tokens }, dashboard: false });
    untrack = trackResource(`http server ${server.url}`, () => server.close());
    doc = (await (await fetch(`${server.url}/openapi.json`)).json()) as typeof doc;
    ajv = new Ajv({ strict: false, allErrors: true });
    addFormats(ajv);
    // OpenAPI 3.0 `nullable`: accept null where a schema says nullable (Ajv's own support needs a type).
    const withNull = (v: unknown): unknown => {
      if (Array.isArray(v)) return v.map(withNull);
      if (v === null || typeof v !== 'object') return v;
      const o = Object.fromEntries(Object.entries(v).map(([k, c]) => [k, withNull(c)])) as Record<string, unknown>;
      if (o.nullable !== true) return o;
      delete o.nullable;
      return { anyOf: [{ type: 'null' }, o] };
    };
    ajv.addSchema({ ...(withNull(doc) as object), $id: 'doc' });
  });
  after(async function () {
    await server?.close();
    untrack?.();
    await client?.close();
  });

  it('PUT creates (201) then updates (200) a schedule of a pipeline this process does not define; GET shows the next fire times', async function () {
    const put = await call('PUT', '/api/v1/schedules/remote', {
      body: { cron: '0 * * * *', timezone: 'Europe/Berlin', overlap: 'bufferOne', jitterMs: 0, pauseOnFailure: true, paused: true },
    });
    expect(put.status).to.equal(201);
    conforms('put', '/api/v1/schedules/{pipeline}', 201, put.body);
    expect(put.body).to.include({ name: 'remote', pipeline: 'remote', cron: '0 * * * *', overlap: 'bufferOne', paused: true, pauseOnFailure: true });
    expect(put.body.nextFireTimes).to.deep.equal([
      '2026-05-01T01:00:00.000Z',
      '2026-05-01T02:00:00.000Z',
      '2026-05-01T03:00:00.000Z',
      '2026-05-01T04:00:00.000Z',
      '2026-05-01T05:00:00.000Z',
    ]);
    expect(put.body.recentSkipped).to.deep.equal([]);
    const again = await call('PUT', '/api/v1/schedules/remote', { body: { cron: '*/30 * * * *', paused: false } });
    expect(again.status).to.equal(200);
    expect(again.body).to.include({ cron: '*/30 * * * *', paused: true, timezone: 'UTC' });
    const got = await call('GET', '/api/v1/schedules/remote');
    expect(got.status).to.equal(200);
    conforms('get', '/api/v1/schedules/{pipeline}', 200, got.body);
    expect(got.body).to.deep.equal(json(await client.describeSchedule('remote')));
  });

  it('bad bodies answer 400 PTS_VALIDATION and write nothing', async function () {
    for (const body of [
      { cron: '61 * * * *' },
      { cron: '0 * * * *', timezone: 'Mars/Olympus' },
      { cron: '0 * * * *', overlap: 'bufferAll' },
      { cron: '0 * * * *', every: '1h' },
      { cron: '0 * * * *', pipeline: 'a@b' },
      { timezone: 'UTC' },
    ]) {
      const r = await call('PUT', '/api/v1/schedules/bad', { body });
      expect(r.status, JSON.stringify(body)).to.equal(400);
      expect(r.body.error.code).to.equal('PTS_VALIDATION');
    }
    expect(await client.getSchedule('bad')).to.equal(null);
    await call('PUT', '/api/v1/schedules/etl', { body: { cron: '0 * * * *' } });
    const back = await call('POST', '/api/v1/schedules/etl/actions/backfill', {
      body: { from: '2026-05-01T05:00:00Z', to: '2026-05-01T06:00:00Z' },
    });
    expect(back.status).to.equal(400);
    expect(back.body.error.code).to.equal('PTS_VALIDATION');
    expect((await client.listRuns('etl')).items).to.deep.equal([]);
    const missing = await call('POST', '/api/v1/schedules/nope/actions/trigger');
    expect(missing.status).to.equal(404);
    expect(missing.body.error.code).to.equal('PTS_NOT_FOUND');
  });

  it('actions: pause (skipped range in recentSkipped), unpause, trigger, backfill; runs and durations as the library returns them; delete', async function () {
    await call('PUT', '/api/v1/schedules/etl', { body: { cron: '0 * * * *', overlap: 'allowAll' } });
    const paused = await call('POST', '/api/v1/schedules/etl/actions/pause', { body: { note: 'maintenance' } });
    expect(paused.status).to.equal(200);
    expect(paused.body).to.include({ paused: true, note: 'maintenance' });
    clock.set(Date.parse('2026-05-01T03:10:00Z'));
    const un = await call('POST', '/api/v1/schedules/etl/actions/unpause');
    expect(un.status).to.equal(200);
    expect(un.body.paused).to.equal(false);
    expect(un.body.recentSkipped).to.have.length(1);
    expect(un.body.recentSkipped[0]).to.include({ status: 'skipped', reason: 'paused', count: 3, slot: '2026-05-01T01:00:00.000Z', lastSlot: '2026-05-01T03:00:00.000Z' });
    expect(un.body.nextFireTimes[0]).to.equal('2026-05-01T04:00:00.000Z');
    conforms('post', '/api/v1/schedules/{pipeline}/actions/unpause', 200, un.body);

    const trig = await call('POST', '/api/v1/schedules/etl/actions/trigger');
    expect(trig.status).to.equal(200);
    conforms('post', '/api/v1/schedules/{pipeline}/actions/trigger', 200, trig.body);
    expect(trig.body.run).to.include({ kind: 'trigger', status: 'started', slot: '2026-05-01T03:10:00.000Z', container: 'etl@2026-05-01T03:10:00.000Z' });
    const c = await client.getTaskContainer('etl@2026-05-01T03:10:00.000Z');
    expect((await c!.summary()).total).to.equal(2);

    const back = await call('POST', '/api/v1/schedules/etl/actions/backfill', {
      body: { from: '2026-04-30T21:00:00Z', to: '2026-04-30T23:00:00Z' },
    });
    expect(back.status).to.equal(200);
    conforms('post', '/api/v1/schedules/{pipeline}/actions/backfill', 200, back.body);
    expect(back.body.items.map((r: { slot: string; kind: string }) => `${r.kind} ${r.slot}`)).to.deep.equal([
      'backfill 2026-04-30T21:00:00.000Z',
      'backfill 2026-04-30T22:00:00.000Z',
      'backfill 2026-04-30T23:00:00.000Z',
    ]);
    await c!.run(async () => {
      clock.advance(1500);
      return 'ok';
    });
    const runs = await call('GET', '/api/v1/pipelines/etl/runs?limit=2');
    expect(runs.status).to.equal(200);
    conforms('get', '/api/v1/pipelines/{pipeline}/runs', 200, runs.body);
    expect(runs.body).to.deep.equal(json(await client.listRuns('etl', { limit: 2 })));
    expect(runs.body.items).to.have.length(2);
    expect(runs.body.items[0].steps.map((s: { durationMs: number }) => s.durationMs)).to.deep.equal([1500, 1500]);
    const page2 = await call('GET', `/api/v1/pipelines/etl/runs?limit=2&cursor=${runs.body.nextCursor}`);
    expect(page2.body).to.deep.equal(json(await client.listRuns('etl', { limit: 2, cursor: runs.body.nextCursor })));
    const bad = await call('GET', '/api/v1/pipelines/etl/runs?cursor=xyz');
    expect(bad.status).to.equal(400);
    const dur = await call('GET', '/api/v1/pipelines/etl/durations');
    expect(dur.status).to.equal(200);
    conforms('get', '/api/v1/pipelines/{pipeline}/durations', 200, dur.body);
    expect(dur.body).to.deep.equal(json(await client.stepDurations('etl')));
    expect(dur.body.fetch).to.deep.equal([{ slot: '2026-05-01T03:10:00.000Z', durationMs: 1500 }]);

    const list = await call('GET', '/api/v1/schedules');
    expect(list.status).to.equal(200);
    conforms('get', '/api/v1/schedules', 200, list.body);
    expect(list.body).to.deep.equal(json({ items: await client.describeSchedules() }));

    expect((await call('DELETE', '/api/v1/schedules/etl')).status).to.equal(204);
    expect((await call('GET', '/api/v1/schedules/etl')).status).to.equal(404);
    expect((await call('DELETE', '/api/v1/schedules/etl')).status).to.equal(404);
    expect((await call('GET', '/api/v1/pipelines/etl/runs')).body.items.length).to.be.greaterThan(0);
  });

  it('scopes: a read token reads but may not write (403, nothing written)', async function () {
    await client.schedule('shared', { cron: '0 * * * *' });
    expect((await call('GET', '/api/v1/schedules/shared', { token: token.read })).status).to.equal(200);
    for (const [method, path] of [
      ['PUT', '/api/v1/schedules/shared'],
      ['DELETE', '/api/v1/schedules/shared'],
      ['POST', '/api/v1/schedules/shared/actions/pause'],
      ['POST', '/api/v1/schedules/shared/actions/trigger'],
    ]) {
      const r = await call(method, path, { token: token.read, body: method === 'PUT' ? { cron: '* * * * *' } : undefined });
      expect(r.status, `${method} ${path}`).to.equal(403);
      expect(r.body.error.code).to.equal('PTS_FORBIDDEN');
    }
    const s = await client.getSchedule('shared');
    expect(s).to.include({ cron: '0 * * * *', paused: false });
    expect((await client.listRuns('shared')).items).to.deep.equal([]);
  });

  it("name prefixes: a token limited to 'team-' sees and changes only schedules and pipelines inside it (others 404)", async function () {
    await client.schedule('team-a', { cron: '0 * * * *' });
    await client.schedule('other', { cron: '0 * * * *' });
    await client.schedule('other', { cron: '0 * * * *', name: 'team-sneaky' });
    const t = token.prefixed;
    const list = await call('GET', '/api/v1/schedules', { token: t });
    expect(list.body.items.map((s: { name: string }) => s.name)).to.deep.equal(['team-a']);
    expect((await call('GET', '/api/v1/schedules/team-a', { token: t })).status).to.equal(200);
    for (const [method, path, body] of [
      ['GET', '/api/v1/schedules/other', undefined],
      ['GET', '/api/v1/schedules/team-sneaky', undefined],
      ['PUT', '/api/v1/schedules/other', { cron: '* * * * *' }],
      ['PUT', '/api/v1/schedules/team-sneaky', { cron: '* * * * *' }],
      ['PUT', '/api/v1/schedules/team-new', { cron: '* * * * *', pipeline: 'other' }],
      ['DELETE', '/api/v1/schedules/other', undefined],
      ['POST', '/api/v1/schedules/other/actions/trigger', undefined],
      ['GET', '/api/v1/pipelines/other/runs', undefined],
      ['GET', '/api/v1/pipelines/other/durations', undefined],
    ] as const) {
      const r = await call(method, path, { token: t, body });
      expect(r.status, `${method} ${path}`).to.equal(404);
      expect(r.body.error.code).to.equal('PTS_NOT_FOUND');
    }
    expect((await client.getSchedule('other'))!.cron).to.equal('0 * * * *');
    expect((await client.getSchedule('team-sneaky'))!.cron).to.equal('0 * * * *');
    expect(await client.getSchedule('team-new')).to.equal(null);
    const mine = await call('PUT', '/api/v1/schedules/team-b', { token: t, body: { cron: '0 0 * * *' } });
    expect(mine.status).to.equal(201);
    expect(mine.body.pipeline).to.equal('team-b');
  });

  it('the OpenAPI document describes every schedule route with its statuses, and the Schedule and Run records', function () {
    const ops: Array<[string, string, string[]]> = [
      ['/api/v1/schedules', 'get', ['200', '400', '401', '503']],
      ['/api/v1/schedules/{pipeline}', 'get', ['200', '404']],
      ['/api/v1/schedules/{pipeline}', 'put', ['200', '201', '400', '403', '404', '413', '415']],
      ['/api/v1/schedules/{pipeline}', 'delete', ['204', '404']],
      ['/api/v1/schedules/{pipeline}/actions/pause', 'post', ['200', '404']],
      ['/api/v1/schedules/{pipeline}/actions/unpause', 'post', ['200', '404']],
      ['/api/v1/schedules/{pipeline}/actions/trigger', 'post', ['200', '404']],
      ['/api/v1/schedules/{pipeline}/actions/backfill', 'post', ['200', '400', '404']],
      ['/api/v1/pipelines/{pipeline}/runs', 'get', ['200', '400', '404']],
      ['/api/v1/pipelines/{pipeline}/durations', 'get', ['200', '404']],
    ];
    for (const [path, method, statuses] of ops)
      expect(Object.keys(doc.paths[path]?.[method]?.responses ?? {}), `${method} ${path}`).to.include.members(statuses);
    const schemas = (doc as unknown as { components: { schemas: Record<string, unknown> } }).components.schemas;
    expect(schemas).to.include.keys('Schedule', 'Run');
    expect(JSON.stringify(schemas.ContainerSummary)).to.include('"eta"');
  });
});
