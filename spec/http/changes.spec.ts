import { expect } from 'chai';
import http from 'node:http';
import { useTestDatabase } from '../helpers/db';
import { trackResource } from '../helpers/leaks';
import { parseSse, startFixture, type HttpFixture, type SseEvent } from './support';

/** Opens an SSE stream with node:http and collects parsed events until `until` says stop. */
function openSse(url: string, headers: Record<string, string> = {}) {
  const events: SseEvent[] = [];
  let comments = 0;
  let ended = false;
  let status = 0;
  let buf = '';
  const req = http.get(url, { headers: { accept: 'text/event-stream', ...headers } });
  const done = new Promise<void>((resolve) => {
    req.on('response', (res) => {
      status = res.statusCode ?? 0;
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        const parsed = parseSse(buf + chunk);
        buf = parsed.rest;
        for (const b of parsed.blocks) {
          comments += b.comments;
          if (b.event.data !== undefined) events.push(b.event);
        }
      });
      res.on('end', () => {
        ended = true;
        resolve();
      });
      res.on('error', () => resolve());
    });
    req.on('error', () => resolve());
  });
  return {
    events,
    get comments() {
      return comments;
    },
    get ended() {
      return ended;
    },
    get status() {
      return status;
    },
    done,
    close: () => req.destroy(),
  };
}

async function waitFor(cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('http changes feed and SSE', function () {
  const db = useTestDatabase();
  let f: HttpFixture;
  before(async function () {
    f = await startFixture(db, { sseHeartbeatMs: 200 });
  });
  after(async function () {
    await f?.close();
  });

  it('pages a container feed and the global feed with `next` cursors', async function () {
    await f.call('PUT', '/api/v1/containers/ch-a', { body: {} });
    await f.call('POST', '/api/v1/containers/ch-a/tasks', {
      body: { tasks: [{ name: 'x' }, { name: 'y' }] },
    });
    await new Promise((r) => setTimeout(r, 1_300));
    const first = await f.call('GET', '/api/v1/containers/ch-a/changes?limit=2', { token: f.token.read });
    expect(first.status).to.equal(200);
    expect(first.body.changes).to.have.length(2);
    const rest = await f.call('GET', `/api/v1/containers/ch-a/changes?since=${first.body.next}`, {
      token: f.token.read,
    });
    const all = [...first.body.changes, ...rest.body.changes];
    expect(
      all
        .filter((c: { kind: string }) => c.kind === 'task')
        .map((c: { task: string }) => c.task)
        .sort(),
    ).to.deep.equal(['x', 'y']);
    expect(
      all.some((c: { kind: string; status: string }) => c.kind === 'container' && c.status === 'pending'),
    ).to.equal(true);
    const global = await f.call('GET', '/api/v1/changes', { token: f.token.read });
    expect(global.body.changes.length).to.be.at.least(3);
    expect((await f.call('GET', '/api/v1/containers/missing/changes')).status).to.equal(404);
  });

  it('streams changes over SSE with ids, heartbeats and Last-Event-ID resume; ends on close()', async function () {
    const g = await startFixture(db, { sseHeartbeatMs: 200 });
    const untrack = trackResource('sse stream', () => undefined);
    try {
      await g.call('PUT', '/api/v1/containers/sse', { body: {} });
      await g.call('POST', '/api/v1/containers/sse/tasks', { body: { tasks: [{ name: 'one' }] } });
      const s = openSse(
        `${g.url}/api/v1/containers/sse/events?access_token=${encodeURIComponent(g.token.read)}`,
      );
      await waitFor(() => s.events.some((e) => e.event === 'task'), 10_000);
      expect(s.status).to.equal(200);
      const taskEv = s.events.find((e) => e.event === 'task')!;
      expect(JSON.parse(taskEv.data!)).to.include({ kind: 'task', task: 'one', state: 'pending' });
      expect(taskEv.id).to.equal(JSON.parse(taskEv.data!).cursor);
      const lastId = s.events[s.events.length - 1].id!;

      await g.call('POST', '/api/v1/containers/sse/tasks', { body: { tasks: [{ name: 'two' }] } });
      await waitFor(() => s.events.some((e) => e.data!.includes('"task":"two"')), 10_000);
      await waitFor(() => s.comments >= 3, 5_000);

      // resume from the id seen before 'two': only newer entries arrive
      const r = openSse(`${g.url}/api/v1/containers/sse/events`, {
        authorization: `Bearer ${g.token.read}`,
        'last-event-id': lastId,
      });
      await waitFor(() => r.events.some((e) => e.data!.includes('"task":"two"')), 10_000);
      expect(r.events.some((e) => e.data!.includes('"task":"one"'))).to.equal(false);

      const started = Date.now();
      await g.close();
      await Promise.all([s.done, r.done]);
      expect(s.ended && r.ended).to.equal(true);
      expect(Date.now() - started).to.be.lessThan(10_000);
    } finally {
      await g.close();
      untrack();
    }
  });

  it('SSE rejects bad cursors and missing tokens before streaming', async function () {
    const s = openSse(`${f.url}/api/v1/events`);
    await s.done;
    expect(s.status).to.equal(401);
    const r = await f.call('GET', '/api/v1/events?since=nope', { token: f.token.read });
    expect(r.status).to.equal(400);
  });
});
