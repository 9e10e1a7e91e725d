import { expect } from 'chai';
import { Writable } from 'node:stream';
import { createClient } from '../../lib/client';
import { InsecureBindError, startServer } from '../../lib/http/server';
import { useTestDatabase } from '../helpers/db';
import { trackResource } from '../helpers/leaks';
import { startFixture, type HttpFixture } from './support';

describe('http security and input validation', function () {
  const db = useTestDatabase();
  let f: HttpFixture;
  before(async function () {
    f = await startFixture(db);
    await f.call('PUT', '/api/v1/containers/sec', { body: {} });
    await f.call('POST', '/api/v1/containers/sec/tasks', { body: { tasks: [{ name: 't1' }] } });
  });
  after(async function () {
    await f?.close();
  });

  it('401 without or with a bad token, 403 for a weaker scope', async function () {
    const none = await f.call('GET', '/api/v1/containers', { token: null });
    expect(none.status).to.equal(401);
    expect(none.body.error.code).to.equal('PTS_UNAUTHORIZED');
    expect(
      (await f.call('GET', '/api/v1/containers', { token: 'pts_not-a-real-token-at-all' })).status,
    ).to.equal(401);
    expect(
      (await f.call('GET', '/api/v1/containers', { token: null, headers: { authorization: 'Basic abc' } }))
        .status,
    ).to.equal(401);
    // unauthenticated callers are rejected before their body is even validated
    expect(
      (await f.call('PUT', '/api/v1/containers/sec', { token: null, body: { bogus: 1 } })).status,
    ).to.equal(401);

    const readPut = await f.call('PUT', '/api/v1/containers/x', { token: f.token.read, body: {} });
    expect(readPut.status).to.equal(403);
    expect(readPut.body.error.code).to.equal('PTS_FORBIDDEN');
    expect(
      (await f.call('PUT', '/api/v1/containers/x', { token: f.token.worker, body: {} })).status,
    ).to.equal(403);
    expect(
      (await f.call('POST', '/api/v1/claim', { token: f.token.read, body: { owner: 'r' } })).status,
    ).to.equal(403);
    expect((await f.call('GET', '/api/v1/containers/sec', { token: f.token.worker })).status).to.equal(200);
    expect(
      (
        await f.call('POST', '/api/v1/claim', {
          token: f.token.admin,
          body: { owner: 'a', container: 'nope' },
        })
      ).status,
    ).to.equal(204);
  });

  it('isolates containers by token prefix (403 outside, lists filtered)', async function () {
    await f.call('PUT', '/api/v1/containers/team-a%2Fjob', { body: {} });
    await f.call('PUT', '/api/v1/containers/team-b%2Fjob', { body: {} });
    const { token } = await f.tokens.create({ scope: 'admin', prefix: 'team-a/' });
    const own = await f.call('GET', `/api/v1/containers/${encodeURIComponent('team-a/job')}`, { token });
    expect(own.status).to.equal(200);
    const other = await f.call('GET', `/api/v1/containers/${encodeURIComponent('team-b/job')}`, { token });
    expect(other.status).to.equal(403);
    expect(
      (await f.call('PUT', `/api/v1/containers/${encodeURIComponent('team-b/new')}`, { token, body: {} }))
        .status,
    ).to.equal(403);
    expect((await f.call('GET', '/api/v1/containers/sec/tasks', { token })).status).to.equal(403);
    const list = await f.call('GET', '/api/v1/containers', { token });
    expect(list.body.items.map((c: { name: string }) => c.name)).to.deep.equal(['team-a/job']);
    const narrowed = await f.call('GET', '/api/v1/containers?prefix=team-b', { token });
    expect(narrowed.body.items).to.deep.equal([]);
    const unnamed = await f.call('POST', '/api/v1/claim', { token, body: { owner: 'w' } });
    expect(unnamed.status).to.equal(403);
    expect(
      (await f.call('POST', '/api/v1/claim', { token, body: { owner: 'w', container: 'sec' } })).status,
    ).to.equal(403);
    expect((await f.call('GET', '/api/v1/containers/sec/changes', { token })).status).to.equal(403);
  });

  it('revocation takes effect on the next request', async function () {
    const { token, record } = await f.tokens.create({ scope: 'read', name: 'short-lived' });
    expect((await f.call('GET', '/api/v1/containers', { token })).status).to.equal(200);
    await f.tokens.revoke(record.id);
    expect((await f.call('GET', '/api/v1/containers', { token })).status).to.equal(401);
  });

  it('accepts ?access_token= on GET routes only', async function () {
    const ok = await f.call(
      'GET',
      `/api/v1/containers/sec?access_token=${encodeURIComponent(f.token.read)}`,
      { token: null },
    );
    expect(ok.status).to.equal(200);
    const post = await f.call(
      'POST',
      `/api/v1/containers/sec/actions/cancel?access_token=${encodeURIComponent(f.token.admin)}`,
      { token: null, body: {} },
    );
    expect(post.status).to.equal(401);
  });

  it('rejects operator injection, unknown fields, bad types and malformed JSON with 400', async function () {
    const cases: Array<[string, string, unknown]> = [
      ['GET', '/api/v1/containers/sec/tasks?state[$gt]=', undefined],
      ['GET', '/api/v1/containers/sec/tasks?state=bogus', undefined],
      ['GET', '/api/v1/containers?limit=abc', undefined],
      ['GET', '/api/v1/containers?limit=0', undefined],
      ['GET', '/api/v1/containers?status[$ne]=x', undefined],
      ['POST', '/api/v1/claim', { owner: { $ne: 1 } }],
      ['POST', '/api/v1/claim', { owner: 'w', container: { $gt: '' } }],
      ['POST', '/api/v1/claim', { owner: 'w', extra: true }],
      ['POST', '/api/v1/claim', { owner: 'w', waitMs: 60_000 }],
      ['PUT', '/api/v1/containers/sec', { failurePolicy: 'continue', surprise: 1 }],
      ['POST', '/api/v1/containers/sec/tasks', { tasks: [{ name: 'x', nope: 1 }] }],
      ['POST', '/api/v1/containers/sec/tasks', { tasks: [{ name: { $ne: null } }] }],
      ['POST', '/api/v1/containers/sec/tasks/t1/heartbeat', { token: { $gt: 0 } }],
      ['POST', '/api/v1/containers/sec/tasks/t1/fail', { token: 1, error: { message: 'x', extra: 1 } }],
      ['POST', '/api/v1/containers/sec/actions/retry', { task: 't1', all: true }],
    ];
    for (const [method, path, body] of cases) {
      const r = await f.call(method, path, { body });
      expect(r.status, `${method} ${path} ${JSON.stringify(body)}`).to.equal(400);
      expect(r.body.error.code).to.equal('PTS_VALIDATION');
    }
    const bad = await f.call('POST', '/api/v1/claim', { raw: '{"owner": ' });
    expect(bad.status).to.equal(400);
    expect(bad.body.error.code).to.equal('PTS_BAD_REQUEST');
  });

  it('rejects malformed cursors with 400', async function () {
    for (const path of [
      '/api/v1/containers?cursor=%%%',
      '/api/v1/containers?cursor=eyJ2IjoyfQ',
      '/api/v1/containers/sec/tasks?cursor=abc',
      '/api/v1/changes?since=zzz',
      '/api/v1/containers/sec/changes?since=1.2.notanid',
      '/api/v1/events?since=garbage',
    ]) {
      const r = await f.call('GET', path);
      expect(r.status, path).to.equal(400);
      expect(r.body.error.code, path).to.equal('PTS_VALIDATION');
    }
  });

  it('accepts a 3 MB task and answers 413 above the body limit', async function () {
    const big = 'x'.repeat(3 * 1024 * 1024);
    const ok = await f.call('POST', '/api/v1/containers/sec/tasks', {
      body: { tasks: [{ name: 'big', data: { big } }] },
    });
    expect(ok.status).to.equal(200);
    const tooBig = await f.call('POST', '/api/v1/containers/sec/tasks', {
      body: { tasks: [{ name: 'huge', data: 'y'.repeat(9 * 1024 * 1024) }] },
    });
    expect(tooBig.status).to.equal(413);
    expect(tooBig.body.error.code).to.equal('PTS_PAYLOAD_TOO_LARGE');
    expect((await f.call('GET', '/api/v1/containers/sec/tasks/huge')).status).to.equal(404);
  });

  it('refuses to listen on a non-loopback host without auth, allows loopback', async function () {
    const client = createClient({ connection: db.connection });
    try {
      let err: unknown;
      await startServer({ client, auth: false, host: '0.0.0.0', dashboard: false }).catch((e) => (err = e));
      expect(err).to.be.instanceOf(InsecureBindError);
      expect((err as InsecureBindError).code).to.equal('PTS_INSECURE_BIND');
      const s = await startServer({ client, auth: false, host: '127.0.0.1', dashboard: false });
      const untrack = trackResource('open server', () => s.close());
      try {
        const r = await fetch(`${s.url}/api/v1/containers/sec`);
        expect(r.status).to.equal(200);
      } finally {
        await s.close();
        untrack();
      }
    } finally {
      await client.close();
    }
  });

  it('never logs tokens', async function () {
    const lines: string[] = [];
    const stream = new Writable({
      write(chunk, _enc, cb) {
        lines.push(String(chunk));
        cb();
      },
    });
    const g = await startFixture(db, { logger: { level: 'trace', stream } });
    try {
      await g.call('GET', '/api/v1/containers', { token: g.token.read });
      await g.call('GET', `/api/v1/containers?access_token=${encodeURIComponent(g.token.admin)}`, {
        token: null,
      });
      await g.call('GET', '/api/v1/containers/nope', { token: 'pts_wrong-token-value-1234567890' });
    } finally {
      await g.close();
    }
    const log = lines.join('');
    expect(log).to.include('/api/v1/containers');
    expect(log).to.include('access_token=[REDACTED]');
    for (const secret of [g.token.read, g.token.admin, 'pts_wrong-token-value-1234567890'])
      expect(log).not.to.include(secret);
  });

  it('close() ends a pending long-poll claim promptly', async function () {
    const g = await startFixture(db);
    await g.call('PUT', '/api/v1/containers/idle', { body: {} });
    const started = Date.now();
    const pending = g.call('POST', '/api/v1/claim', {
      token: g.token.worker,
      body: { container: 'idle', owner: 'w', waitMs: 30_000 },
    });
    await new Promise((r) => setTimeout(r, 200));
    await g.close();
    const r = await pending;
    expect(r.status).to.equal(204);
    expect(Date.now() - started).to.be.lessThan(10_000);
  });
});
