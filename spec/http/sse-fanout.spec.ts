/**
 * SSE fan-out (lib/http/feed-hub.ts) on real connections: 200 streams share one poller, so a
 * write is not slowed down by them and every stream gets the event; database commands do not
 * grow with the number of streams; the per-token cap answers 429; a client that stops reading is
 * dropped with its socket buffer bounded while the others get everything.
 */
import { expect } from 'chai';
import http from 'node:http';
import net from 'node:net';
import mongoose from 'mongoose';
import { createClient, type Client } from '../../lib/client';
import { TokenStore } from '../../lib/auth';
import { startServer, type RunningServer, type StartServerOptions } from '../../lib/http/server';
import { useTestDatabase, type TestDatabase } from '../helpers/db';
import { trackResource } from '../helpers/leaks';
import { jsonRequest, parseSse, type SseEvent } from './support';

/** An SSE client on node:http: parsed events, status, end. */
function openSse(url: string, token: string, agent: http.Agent) {
  const events: SseEvent[] = [];
  let status = 0;
  let connected = false;
  let ended = false;
  let buf = '';
  const req = http.get(url, {
    agent,
    headers: { accept: 'text/event-stream', authorization: `Bearer ${token}` },
  });
  const done = new Promise<void>((resolve) => {
    req.on('response', (res) => {
      status = res.statusCode ?? 0;
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        const parsed = parseSse(buf + chunk);
        buf = parsed.rest;
        for (const b of parsed.blocks) {
          if (b.raw === ': connected') connected = true;
          if (b.event.data !== undefined) events.push(b.event);
        }
      });
      res.on('end', () => {
        ended = true;
        resolve();
      });
      res.on('error', () => resolve());
      res.on('close', () => resolve());
    });
    req.on('error', () => resolve());
  });
  return {
    events,
    done,
    get status() {
      return status;
    },
    get connected() {
      return connected;
    },
    get ended() {
      return ended;
    },
    close: () => req.destroy(),
  };
}
type Sse = ReturnType<typeof openSse>;

async function waitFor(what: string, cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`${what}: not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The body of a raw HTTP/1.1 response with chunked transfer encoding. */
function dechunk(raw: string): string {
  let rest = raw.slice(raw.indexOf('\r\n\r\n') + 4);
  let out = '';
  for (;;) {
    const eol = rest.indexOf('\r\n');
    const size = eol < 0 ? 0 : parseInt(rest.slice(0, eol), 16);
    if (!size) return out;
    out += rest.slice(eol + 2, eol + 2 + size);
    rest = rest.slice(eol + 2 + size + 2);
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

interface Setup {
  conn: mongoose.Connection;
  client: Client;
  server: RunningServer;
  read: string;
  admin: string;
  /** Database commands started on the server's connection (all of them, `hello` included). */
  commands: string[];
  agent: http.Agent;
  call(method: string, path: string, body?: unknown, token?: string): Promise<{ status: number; body: any }>; // eslint-disable-line @typescript-eslint/no-explicit-any -- asserted field by field
  close(): Promise<void>;
}

async function setup(db: TestDatabase, extra: Partial<StartServerOptions>): Promise<Setup> {
  const conn = await mongoose.createConnection(db.uri, { monitorCommands: true }).asPromise();
  const untrackConn = trackResource('sse-fanout connection', () => conn.close(true));
  const commands: string[] = [];
  conn.getClient().on('commandStarted', (e) => commands.push(e.commandName));
  const client = createClient({ connection: conn });
  const tokens = new TokenStore(client);
  const read = (await tokens.create({ scope: 'read', name: 'fan-read' })).token;
  const admin = (await tokens.create({ scope: 'admin', name: 'fan-admin' })).token;
  const server = await startServer({ client, auth: { tokens }, dashboard: false, ...extra });
  const untrackServer = trackResource(`http server ${server.url}`, () => server.close());
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  return {
    conn,
    client,
    server,
    read,
    admin,
    commands,
    agent,
    call: (method, path, body, token = admin) => jsonRequest(server.url + path, method, body, token),
    async close() {
      await server.close();
      untrackServer();
      agent.destroy();
      await client.close();
      await conn.close(true);
      untrackConn();
    },
  };
}

describe('http SSE fan-out', function () {
  const db = useTestDatabase();

  it('200 streams share one poller: a write stays within 2× its idle latency + 250 ms, every stream gets it, commands do not grow', async function () {
    this.timeout(120_000);
    const s = await setup(db, { pollMs: 250, sseMaxStreamsPerToken: 250 });
    const streams: Sse[] = [];
    try {
      const put = async (name: string): Promise<number> => {
        const t0 = performance.now();
        const r = await s.call('PUT', `/api/v1/containers/${name}`, {});
        expect(r.status).to.be.oneOf([200, 201]);
        return performance.now() - t0;
      };
      await put('warm-up');
      const idle: number[] = [];
      for (let i = 0; i < 7; i++) idle.push(await put(`idle-${i}`));

      // Commands per second with one stream, then with 200 (no requests meanwhile).
      const rate = async (): Promise<number> => {
        const from = s.commands.length;
        await new Promise((r) => setTimeout(r, 3_000));
        return (s.commands.length - from) / 3;
      };
      const url = `${s.server.url}/api/v1/events`;
      streams.push(openSse(url, s.read, s.agent));
      await waitFor('first stream connected', () => streams[0].connected, 10_000);
      await waitFor(
        'first stream caught up',
        () => streams[0].events.some((e) => e.data!.includes('"idle-6"')),
        10_000,
      );
      const one = await rate();
      for (let i = 1; i < 200; i++) streams.push(openSse(url, s.read, s.agent));
      await waitFor('200 streams connected', () => streams.every((x) => x.connected), 30_000);
      await waitFor(
        '200 streams caught up',
        () => streams.every((x) => x.events.some((e) => e.data!.includes('"idle-6"'))),
        30_000,
      );
      expect(streams.every((x) => x.status === 200)).to.equal(true);
      const many = await rate();

      const busy: number[] = [];
      for (let i = 0; i < 7; i++) busy.push(await put(`busy-${i}`));
      const t0 = Date.now();
      await waitFor(
        'every stream got the last write',
        () => streams.every((x) => x.events.some((e) => e.data!.includes('"busy-6"'))),
        10_000,
      );
      const delivered = Date.now() - t0;
      console.log(
        `[pts-test] PUT latency median idle ${median(idle).toFixed(1)} ms, with 200 streams ${median(busy).toFixed(1)} ms; ` +
          `commands/s with 1 stream ${one.toFixed(1)}, with 200 streams ${many.toFixed(1)}; all 200 had the last write ${delivered} ms after it returned`,
      );
      // 250 ms absorbs FerretDB noise (its requests are serialized; one poll is a few commands).
      expect(median(busy)).to.be.at.most(2 * median(idle) + 250);
      // One poller either way (heartbeats and catch-up are not queries): the same rate ± noise.
      expect(many).to.be.at.most(one * 1.5 + 2);
      for (const x of streams) {
        const names = x.events
          .filter((e) => e.event === 'container')
          .map((e) => JSON.parse(e.data!).container);
        expect(names.filter((n: string) => n.startsWith('busy-'))).to.deep.equal(
          [0, 1, 2, 3, 4, 5, 6].map((i) => `busy-${i}`),
        );
      }
    } finally {
      for (const x of streams) x.close();
      await s.close();
    }
  });

  it('streams joining at old, recent and future cursors while writes go on each get the feed after their cursor, in order', async function () {
    this.timeout(90_000);
    const s = await setup(db, { pollMs: 50 });
    const streams: Array<{ since: string; sse: Sse }> = [];
    const open = (since: string): void => {
      const q = since ? `?since=${encodeURIComponent(since)}` : '';
      streams.push({ since, sse: openSse(`${s.server.url}/api/v1/events${q}`, s.read, s.agent) });
    };
    try {
      const c = await s.client.getOrCreateTaskContainer('join');
      open('');
      for (let round = 0; round < 6; round++) {
        await c.addTasks(Array.from({ length: 20 }, (_, i) => ({ name: `r${round}-${i}` })));
        if (round > 0) await c.updateTask(`r${round - 1}-0`, { statusText: `again ${round}` });
        await new Promise((r) => setTimeout(r, 400 + round * 150));
        const seen = streams[0].sse.events;
        // From the start, from a cursor a few entries back, from the newest one.
        open('');
        if (seen.length > 5) open(seen[seen.length - 5].id!);
        if (seen.length > 0) open(seen[seen.length - 1].id!);
      }
      // A cursor past everything: nothing until the feed passes it, and it must not hold others up.
      const last = streams[0].sse.events[streams[0].sse.events.length - 1].id!;
      const future = `${(parseInt(last.split('.')[0], 36) + 3600).toString(36)}.0.ffffffffffffffffffffffff`;
      open(future);
      await c.addTasks([{ name: 'final' }]);
      await waitFor(
        'every stream but the future one got the final write',
        () => streams.slice(0, -1).every((x) => x.sse.events.some((e) => e.data!.includes('"task":"final"'))),
        20_000,
      );
      await new Promise((r) => setTimeout(r, 1_500));
      const key = (d: { kind: string; container: string; task?: string }): string =>
        `${d.kind}/${d.container}/${d.task ?? ''}`;
      const fold = (entries: Array<Record<string, unknown>>): Record<string, unknown> =>
        Object.fromEntries(entries.map((d) => [key(d as never), d]));
      const pos = (cursor: string): [number, number, string] => {
        const [t, i, id] = cursor.split('.');
        return [parseInt(t, 36), parseInt(i, 36), id];
      };
      const before = (a: string, b: string): boolean => {
        const [x, y] = [pos(a), pos(b)];
        return x[0] !== y[0] ? x[0] < y[0] : x[1] !== y[1] ? x[1] < y[1] : x[2] < y[2];
      };
      for (const { since, sse } of streams) {
        const ids = sse.events.map((e) => e.id!);
        for (let i = 1; i < ids.length; i++)
          expect(before(ids[i - 1], ids[i]), `order after ${since}`).to.equal(true);
        if (since && ids.length) expect(before(since, ids[0]), `first entry after ${since}`).to.equal(true);
        // Folding the stream by key gives what reading the feed from the same cursor gives now.
        const direct: Array<Record<string, unknown>> = [];
        let next = since;
        for (;;) {
          const page = await s.call(
            'GET',
            `/api/v1/changes?limit=1000${next ? `&since=${encodeURIComponent(next)}` : ''}`,
          );
          direct.push(...page.body.changes);
          if (page.body.changes.length < 1000) break;
          next = page.body.next;
        }
        expect(
          fold(sse.events.map((e) => JSON.parse(e.data!))),
          `stream from ${since || 'the start'}`,
        ).to.deep.equal(fold(direct));
      }
      expect(streams[streams.length - 1].sse.events).to.deep.equal([]);
      console.log(`[pts-test] ${streams.length} streams joined at different cursors`);
    } finally {
      for (const x of streams) x.sse.close();
      await s.close();
    }
  });

  it('20 long-poll claims and 20 streams add no MaxListenersExceededWarning; close() ends them all', async function () {
    this.timeout(60_000);
    const s = await setup(db, { pollMs: 100 });
    const warnings: Error[] = [];
    const onWarning = (w: Error): void => {
      if (w.name === 'MaxListenersExceededWarning') warnings.push(w);
    };
    process.on('warning', onWarning);
    const streams: Sse[] = [];
    try {
      await s.call('PUT', '/api/v1/containers/quiet', {});
      for (let i = 0; i < 20; i++) streams.push(openSse(`${s.server.url}/api/v1/events`, s.read, s.agent));
      await waitFor('streams connected', () => streams.every((x) => x.connected), 10_000);
      const claims = Array.from({ length: 20 }, () =>
        s.call('POST', '/api/v1/claim', { owner: 'w', container: 'quiet', waitMs: 20_000 }),
      );
      // Every claim must have reached the server before close() (a request arriving after it is
      // answered 503 by design): wait for its 40 sockets, then let the handlers start.
      const sockets = (): Promise<number> =>
        new Promise((resolve, reject) =>
          s.server.app.server.getConnections((err, n) => (err ? reject(err) : resolve(n))),
        );
      const until = Date.now() + 10_000;
      while ((await sockets()) < 40 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      await new Promise((r) => setTimeout(r, 500));
      const started = Date.now();
      await s.server.close();
      const answers = await Promise.all(claims);
      await Promise.all(streams.map((x) => x.done));
      expect(answers.map((a) => a.status)).to.deep.equal(answers.map(() => 204));
      expect(streams.every((x) => x.ended)).to.equal(true);
      expect(Date.now() - started).to.be.below(10_000);
      // Warnings are emitted on the next tick.
      await new Promise((r) => setImmediate(r));
      expect(warnings.map((w) => w.message)).to.deep.equal([]);
    } finally {
      process.off('warning', onWarning);
      for (const x of streams) x.close();
      await s.close();
    }
  });

  it('caps concurrent streams per token with 429 and the error envelope', async function () {
    this.timeout(60_000);
    const s = await setup(db, { pollMs: 100, sseMaxStreamsPerToken: 3 });
    const streams: Sse[] = [];
    try {
      const url = `${s.server.url}/api/v1/events`;
      for (let i = 0; i < 3; i++) streams.push(openSse(url, s.read, s.agent));
      await waitFor('3 streams connected', () => streams.every((x) => x.connected), 10_000);
      const over = await fetch(url, { headers: { authorization: `Bearer ${s.read}` } });
      expect(over.status).to.equal(429);
      expect(over.headers.get('retry-after')).to.equal('5');
      const body = (await over.json()) as { error: { code: string; message: string } };
      expect(body.error.code).to.equal('PTS_TOO_MANY_STREAMS');
      expect(body.error.message).to.be.a('string');
      // Another token has its own allowance.
      const other = openSse(url, s.admin, s.agent);
      streams.push(other);
      await waitFor('other token connected', () => other.connected, 10_000);
      // A slot comes back when a stream ends.
      streams[0].close();
      await streams[0].done;
      let again: Sse | null = null;
      const until = Date.now() + 5_000;
      while (Date.now() < until) {
        const x = openSse(url, s.read, s.agent);
        await waitFor('answered', () => x.status !== 0, 5_000);
        if (x.status === 200) {
          again = x;
          break;
        }
        x.close();
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(again, 'a fourth stream after one closed').to.not.equal(null);
      streams.push(again!);
    } finally {
      for (const x of streams) x.close();
      await s.close();
    }
  });

  it('drops a client that stops reading, bounding its buffer, while the other streams get everything', async function () {
    this.timeout(120_000);
    const limit = 64 * 1024;
    const s = await setup(db, { pollMs: 100, sseMaxBufferedBytes: limit });
    const streams: Sse[] = [];
    const serverSockets = new Map<number, net.Socket>();
    s.server.app.server.on('connection', (sock: net.Socket) => serverSockets.set(sock.remotePort!, sock));
    let slow: net.Socket | null = null;
    try {
      const r = await s.call('PUT', '/api/v1/containers/flood', {});
      expect(r.status).to.be.oneOf([200, 201]);
      const url = `${s.server.url}/api/v1/containers/flood/events`;
      for (let i = 0; i < 3; i++) streams.push(openSse(url, s.read, s.agent));
      await waitFor('streams connected', () => streams.every((x) => x.connected), 10_000);
      // A raw client that sends its request and never reads.
      const { port } = new URL(s.server.url);
      const sock = net.connect(Number(port), '127.0.0.1');
      slow = sock;
      await new Promise<void>((resolve, reject) => sock.once('connect', resolve).once('error', reject));
      sock.pause();
      sock.write(
        `GET /api/v1/containers/flood/events HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${s.read}\r\n\r\n`,
      );
      await waitFor('server side of the slow client', () => serverSockets.has(sock.localPort!), 5_000);
      const serverSide = serverSockets.get(sock.localPort!)!;
      let maxQueued = 0;
      const sampler = setInterval(() => {
        maxQueued = Math.max(maxQueued, serverSide.writableLength);
      }, 5);
      try {
        // The loopback socket buffers hold ~4 MB, which would take minutes of FerretDB writes to
        // fill; corking the server's side of the socket makes it "not draining" at once (what
        // Node sees of a full socket: write() returns false and the data queues in the process).
        await waitFor('slow stream connected', () => serverSide.bytesWritten > 0, 5_000);
        serverSide.cork();
        // Rounds of ~40 KB of entries, each delivered to the readers before the next: the slow
        // stream queues one round, then another, and is dropped when the next page finds it over
        // the 64 KiB limit.
        const rounds = 6;
        const perRound = 50;
        const n = rounds * perRound;
        const pad = 'x'.repeat(480);
        const c = await s.client.getOrCreateTaskContainer('flood');
        const tasksOf = (x: Sse): number => x.events.filter((e) => e.event === 'task').length;
        for (let r = 0; r < rounds; r++) {
          await c.addTasks(
            Array.from({ length: perRound }, (_, i) => ({
              name: `${pad}-${r}-${String(i).padStart(3, '0')}`,
            })),
          );
          await waitFor(
            `round ${r} delivered`,
            () => streams.every((x) => tasksOf(x) >= (r + 1) * perRound),
            20_000,
          );
        }
        await waitFor(
          'the reading streams got every task',
          () => streams.every((x) => tasksOf(x) >= n),
          20_000,
        );
        // Dropped: the final event is queued, the socket uncorked by end() flushes into the kernel
        // and the server closes it (or destroys it after DROP_GRACE_MS if it cannot).
        await waitFor('the slow client was closed by the server', () => serverSide.destroyed, 10_000);
        console.log(
          `[pts-test] slow client: server-side socket queued at most ${maxQueued} bytes (limit ${limit})`,
        );
        // The limit plus one page (one round here).
        expect(maxQueued).to.be.below(limit + 64 * 1024);
        for (const x of streams) {
          expect(tasksOf(x)).to.equal(n);
          expect(x.ended).to.equal(false);
          const ids = x.events.map((e) => e.id);
          expect(new Set(ids).size).to.equal(ids.length);
        }
      } finally {
        clearInterval(sampler);
      }
      // What the slow client did get is the start of the same sequence (no gap, no reordering).
      sock.resume();
      let received = '';
      sock.setEncoding('utf8');
      sock.on('data', (d: string) => (received += d));
      await new Promise<void>((resolve) => {
        sock.once('close', () => resolve());
        sock.once('end', () => resolve());
      });
      const body = dechunk(received);
      const got = [...body.matchAll(/^id: (.+)$/gm)].map((m) => m[1]);
      const all = streams[0].events.map((e) => e.id);
      expect(got.length).to.be.greaterThan(0);
      expect(got.length).to.be.below(all.length);
      expect(got).to.deep.equal(all.slice(0, got.length));
      // Its last event tells it where to resume.
      const last = /event: reconnect\ndata: (.+)\n\n$/.exec(body);
      expect(last, body.slice(-300)).to.not.equal(null);
      expect(JSON.parse(last![1])).to.include({ code: 'PTS_SLOW_CONSUMER', cursor: got[got.length - 1] });
    } finally {
      slow?.destroy();
      for (const x of streams) x.close();
      await s.close();
    }
  });
});
