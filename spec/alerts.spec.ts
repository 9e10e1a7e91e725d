/**
 * Alerts on the real server: a real HTTP receiver on loopback (node:http) that answers 500 for a
 * while and is stopped and restarted mid-run; the alert process restarted; two alert processes
 * competing for the lease, one dying without giving it up. Time moves by a ManualClock (lease
 * expiry, backoff); only the changes feed's one-second horizon is waited for (real time).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import { ObjectId, Timestamp } from 'mongodb';
import {
  createClient,
  DuplicateError,
  ManualClock,
  ValidationError,
  verifyAlertSignature,
  type AlertsHandle,
  type AlertsPassReport,
  type Client,
  type DeliveryRecord,
  type TaskContainer,
} from '../lib';
import { startServer } from '../lib/http/server';
import { alertsAdd, alertsDeliveries, alertsList } from '../lib/cli/alerts';
import { CliError } from '../lib/cli/exit';
import { useTestDatabase } from './helpers/db';
import { startFixture } from './http/support';
import { trackResource } from './helpers/leaks';

interface Received {
  path: string;
  key: string;
  body: string;
  /** The body's bytes as received (what the signature covers). */
  raw: Buffer;
  status: number;
  signature: string | undefined;
  timestamp: string | undefined;
  attempt: string | undefined;
}

/** A webhook receiver: answers 500 while `failLeft` > 0, else 200; can be stopped and restarted on the same port. */
class Receiver {
  port = 0;
  failLeft = 0;
  /** If set, the next request's answer waits for it. */
  hold: Promise<void> | null = null;
  readonly received: Received[] = [];
  private server: http.Server | null = null;
  private untrack: (() => void) | null = null;

  async start(): Promise<void> {
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (b: Buffer) => chunks.push(b));
      req.on('end', () => {
        const raw = Buffer.concat(chunks);
        const body = raw.toString('utf8');
        const status = this.failLeft > 0 ? 500 : 200;
        if (this.failLeft > 0) this.failLeft--;
        this.received.push({
          path: req.url ?? '',
          key: String(req.headers['x-pts-idempotency-key']),
          body,
          raw,
          status,
          signature: req.headers['x-pts-signature'] as string | undefined,
          timestamp: req.headers['x-pts-timestamp'] as string | undefined,
          attempt: req.headers['x-pts-attempt'] as string | undefined,
        });
        const answer = () =>
          res.writeHead(status, { 'content-type': 'text/plain' }).end(status === 200 ? 'ok' : 'down');
        const hold = this.hold;
        this.hold = null;
        if (hold) void hold.then(answer);
        else answer();
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
    this.untrack = trackResource('alert receiver', () => this.stop());
  }

  async stop(): Promise<void> {
    const s = this.server;
    if (!s) return;
    this.server = null;
    this.untrack?.();
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  url(path: string): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }
}

const SECRET = 's3cret-for-specs';
const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Passes until `done` (entries show up in the feed within about a second of their write). */
async function passUntil(
  h: AlertsHandle,
  done: (total: AlertsPassReport) => boolean,
  limitMs = 15_000,
): Promise<AlertsPassReport> {
  const total: AlertsPassReport = {
    leader: false,
    created: 0,
    attempted: 0,
    delivered: 0,
    failedAttempts: 0,
  };
  const until = Date.now() + limitMs;
  for (;;) {
    const r = await h.pass();
    total.leader = r.leader;
    total.created += r.created;
    total.attempted += r.attempted;
    total.delivered += r.delivered;
    total.failedAttempts += r.failedAttempts;
    if (done(total)) return total;
    if (Date.now() > until) throw new Error(`passUntil: gave up: ${JSON.stringify(total)}`);
    await delay(100);
  }
}

async function all(c: Client): Promise<DeliveryRecord[]> {
  return (await c.listDeliveries({ limit: 1000 })).items;
}

describe('alerts', function () {
  this.timeout(60_000);
  const db = useTestDatabase();
  let clock: ManualClock;
  const clients: Client[] = [];
  const receiver = new Receiver();
  let n = 0;
  let prefix: string;

  const newClient = (workerId: string, p = prefix): Client => {
    const c = createClient({
      connection: db.connection,
      clock,
      workerId,
      collectionPrefix: p,
      sweepIntervalMs: 0,
    });
    clients.push(c);
    return c;
  };
  const fail = async (client: Client, c: TaskContainer, task: string): Promise<void> => {
    const l = await client.claimNext({ container: c.name() }, { owner: 'worker' });
    expect(l?.task.name).to.equal(task);
    await l!.fail(new Error(`${task} broke`));
  };
  const succeed = async (client: Client, c: TaskContainer, task: string): Promise<void> => {
    const l = await client.claimNext({ container: c.name() }, { owner: 'worker' });
    expect(l?.task.name).to.equal(task);
    await l!.succeed('ok');
  };

  beforeEach(async function () {
    clock = new ManualClock(Date.now());
    prefix = `al${++n}_`;
    receiver.received.length = 0;
    receiver.failLeft = 0;
    await receiver.start();
  });
  afterEach(async function () {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await receiver.stop();
  });

  it('refuses malformed rules with PTS_VALIDATION and a taken name with PTS_DUPLICATE, writing nothing', async function () {
    const client = newClient('v');
    const good = { name: 'ok', events: ['task:failed' as const], url: receiver.url('/x'), secret: SECRET };
    const bad: unknown[] = [
      null,
      { ...good, name: '' },
      { ...good, events: [] },
      { ...good, events: ['task:exploded'] },
      { ...good, url: 'ftp://example.com/x' },
      { ...good, url: 'not a url' },
      { ...good, secret: '' },
      { ...good, secret: 7 },
      { ...good, template: 'teams' },
      { ...good, prefix: 3 },
      { ...good, enabled: 'yes' },
    ];
    for (const b of bad) {
      const err = await client.addAlertRule(b as never).catch((e: unknown) => e);
      expect(err, JSON.stringify(b)).to.be.instanceOf(ValidationError);
      expect((err as ValidationError).code).to.equal('PTS_VALIDATION');
    }
    expect(await client.listAlertRules()).to.deep.equal([]);
    const rule = await client.addAlertRule(good);
    expect(rule).to.not.have.property('secret');
    const dup = await client.addAlertRule({ ...good, url: receiver.url('/y') }).catch((e: unknown) => e);
    expect(dup).to.be.instanceOf(DuplicateError);
    expect((await client.listAlertRules()).map((r) => r.url)).to.deep.equal([receiver.url('/x')]);
    const raw = await db.connection.collection(`${prefix}alert_rules`).findOne({ name: 'ok' });
    expect(raw?.secret).to.equal(SECRET);
    expect(await client.listDeliveries({ limit: 0 }).catch((e: { code?: string }) => e.code)).to.equal(
      'PTS_VALIDATION',
    );
    expect(
      await client.listDeliveries({ status: 'lost' as never }).catch((e: { code?: string }) => e.code),
    ).to.equal('PTS_VALIDATION');
    expect(() => client.startAlerts({ leaseMs: 5 })).to.throw(ValidationError);
  });

  it('a receiver that answers 500, is stopped and restarted, and an alert process restarted mid-run: nothing lost, duplicates share the key', async function () {
    const client = newClient('alerts-1');
    await client.addAlertRule({
      name: 'ops',
      events: ['task:failed', 'container:failed'],
      url: receiver.url('/ops'),
      secret: SECRET,
      prefix: 'out-',
    });
    await client.addAlertRule({
      name: 'chat',
      events: ['task:failed'],
      url: receiver.url('/slack'),
      secret: SECRET,
      prefix: 'out-',
      template: 'slack',
    });
    await client.addAlertRule({
      name: 'elsewhere',
      events: ['task:failed', 'container:failed'],
      url: receiver.url('/else'),
      secret: SECRET,
      prefix: 'zzz-',
    });
    clock.advance(1);
    const c1 = await client.getOrCreateTaskContainer('out-1');
    await c1.addTasks([{ name: 'a', maxRetries: 0 }, { name: 'b' }]);
    await fail(client, c1, 'a');
    await succeed(client, c1, 'b');
    const c2 = await client.getOrCreateTaskContainer('out-2');
    await c2.addTasks([{ name: 'c', maxRetries: 1, retryDelayMs: 0 }]);
    await fail(client, c2, 'c'); // retried: no task:failed yet
    await fail(client, c2, 'c'); // failed for good
    expect((await c1.summary()).status).to.equal('failed');
    expect((await c2.summary()).status).to.equal('failed');

    receiver.failLeft = 3;
    const opts = { intervalMs: 0, backoffMs: 1000, maxBackoffMs: 8000, requestTimeoutMs: 2000, horizonMs: 0 };
    const h = client.startAlerts(opts);
    // ops: task:failed ×2, container:failed ×2; chat: task:failed ×2; elsewhere: nothing.
    const first = await passUntil(h, (t) => t.created >= 6);
    expect(first.created).to.equal(6);
    let ds = await all(client);
    expect(ds).to.have.length(6);
    expect(ds.filter((d) => d.status === 'pending')).to.have.length(3);
    expect(receiver.received.filter((r) => r.status === 500)).to.have.length(3);

    // The receiver goes away: the due retries are refused, recorded, and backed off.
    await receiver.stop();
    clock.advance(1000);
    const down = await h.pass();
    expect(down).to.include({ leader: true, created: 0, attempted: 3, delivered: 0, failedAttempts: 3 });
    ds = await all(client);
    for (const d of ds.filter((x) => x.status === 'pending')) {
      expect(d.attempts.map((a) => a.statusCode)).to.deep.equal([500, null]);
      expect(d.attempts[1].error).to.be.a('string').and.not.equal('');
      expect(d.nextAttemptAt!.getTime()).to.equal(clock.now().getTime() + 2000); // 1 s, then 2 s
    }

    // The alert process restarts (a new client on the same database), then the receiver comes back.
    await h.stop();
    const client2 = newClient('alerts-2');
    const h2 = client2.startAlerts(opts);
    await receiver.start();
    clock.advance(1999);
    expect(await h2.pass()).to.include({ leader: true, attempted: 0 });
    clock.advance(1);
    expect(await h2.pass()).to.include({ leader: true, created: 0, attempted: 3, delivered: 3 });

    // A failure after the restart: the cursor resumed where the first process left it.
    const c3 = await client2.getOrCreateTaskContainer('out-3');
    await c3.addTasks([{ name: 'd', maxRetries: 0 }]);
    await fail(client2, c3, 'd');
    const later = await passUntil(h2, (t) => t.delivered >= 3);
    expect(later).to.include({ created: 3, delivered: 3 });

    ds = await all(client2);
    expect(ds).to.have.length(9);
    expect(ds.every((d) => d.status === 'delivered')).to.equal(true);
    expect(ds.filter((d) => d.rule === 'elsewhere')).to.deep.equal([]);
    expect(
      ds.map((d) => `${d.rule} ${d.event} ${d.container}${d.task ? `/${d.task}` : ''}`).sort(),
    ).to.deep.equal([
      'chat task:failed out-1/a',
      'chat task:failed out-2/c',
      'chat task:failed out-3/d',
      'ops container:failed out-1',
      'ops container:failed out-2',
      'ops container:failed out-3',
      'ops task:failed out-1/a',
      'ops task:failed out-2/c',
      'ops task:failed out-3/d',
    ]);
    const retried = ds.filter((d) => d.attempts.length > 1);
    expect(retried).to.have.length(3);
    for (const d of retried) {
      expect(d.attempts.map((a) => a.statusCode)).to.deep.equal([500, null, 200]);
      expect(d.attempts.map((a) => a.by)).to.deep.equal(['alerts-1', 'alerts-1', 'alerts-2']);
    }

    // Nothing lost: every delivery reached the receiver with a 200; every request of one key
    // carried the same body; each is signed with the rule's secret.
    const byKey = new Map<string, Received[]>();
    for (const r of receiver.received) byKey.set(r.key, [...(byKey.get(r.key) ?? []), r]);
    expect([...byKey.keys()].sort()).to.deep.equal(ds.map((d) => d.key).sort());
    for (const d of ds) {
      const got = byKey.get(d.key)!;
      expect(
        got.filter((r) => r.status === 200),
        d.key,
      ).to.have.length(1);
      for (const r of got) {
        expect(r.body).to.equal(d.body);
        expect(
          verifyAlertSignature({
            secret: SECRET,
            body: r.raw,
            signature: r.signature,
            timestamp: r.timestamp,
            now: clock.now(),
          }),
        ).to.equal(true);
        expect(
          verifyAlertSignature({
            secret: SECRET,
            body: r.body,
            signature: r.signature,
            timestamp: r.timestamp,
            now: clock.now(),
          }),
        ).to.equal(true);
        expect(
          verifyAlertSignature({
            secret: SECRET,
            body: `${r.body} `,
            signature: r.signature,
            timestamp: r.timestamp,
            now: clock.now(),
          }),
        ).to.equal(false);
        expect(
          verifyAlertSignature({
            secret: 'wrong',
            body: r.body,
            signature: r.signature,
            timestamp: r.timestamp,
            now: clock.now(),
          }),
        ).to.equal(false);
      }
      // The attempts that got an answer are the requests the receiver saw (a refused one never arrived).
      expect(got.map((r) => r.attempt)).to.deep.equal(
        d.attempts.filter((x) => x.statusCode !== null).map((x) => String(x.n)),
      );
      if (d.rule === 'chat') {
        expect(got[0].path).to.equal('/slack');
        const body = JSON.parse(d.body) as Record<string, unknown>;
        expect(Object.keys(body)).to.deep.equal(['text']);
        expect(body.text, d.body)
          .to.be.a('string')
          .and.include(`${d.container} / ${d.task}`)
          .and.include(`${d.task} broke`);
      } else {
        const body = JSON.parse(d.body) as Record<string, unknown>;
        expect(body).to.include({
          id: d.key,
          rule: 'ops',
          event: d.event,
          container: d.container,
          task: d.task,
        });
      }
    }
    // A replay outside the tolerance is refused.
    const r0 = receiver.received[0];
    expect(
      verifyAlertSignature({
        secret: SECRET,
        body: r0.body,
        signature: r0.signature,
        timestamp: r0.timestamp,
        now: new Date(clock.now().getTime() + 3_600_000),
      }),
    ).to.equal(false);
    await h2.stop();
  });

  it('two alert processes: only the lease holder delivers; one dies holding it, the other takes over, nothing lost, keys stable', async function () {
    const a = newClient('A');
    const b = newClient('B');
    await a.addAlertRule({ name: 'all', events: ['task:failed'], url: receiver.url('/all'), secret: SECRET });
    clock.advance(1);
    const opts = { intervalMs: 0, leaseMs: 5000, backoffMs: 1000, requestTimeoutMs: 2000, horizonMs: 0 };
    const ha = a.startAlerts(opts);
    const hb = b.startAlerts(opts);
    expect((await ha.pass()).leader).to.equal(true);
    expect(await hb.pass()).to.deep.equal({
      leader: false,
      created: 0,
      attempted: 0,
      delivered: 0,
      failedAttempts: 0,
    });

    receiver.failLeft = 1_000;
    const c = await a.getOrCreateTaskContainer('lease-1');
    await c.addTasks(['t1', 't2', 't3'].map((name) => ({ name, maxRetries: 0 })));
    for (const t of ['t1', 't2', 't3']) await fail(a, c, t);
    expect((await passUntil(ha, (t) => t.created >= 3)).created).to.equal(3);
    expect((await hb.pass()).leader).to.equal(false);
    const state = () =>
      db.connection
        .collection<{ _id: string; token: number; holder: string }>(`${prefix}alert_state`)
        .findOne({ _id: 'alerts' });
    const held = (await state())!;
    expect(held.holder).to.equal('A');

    // A dies without giving the lease up: B waits for it to expire, then takes over.
    clock.advance(4999);
    expect((await hb.pass()).leader).to.equal(false);
    clock.advance(1);
    receiver.failLeft = 0;
    const takeover = await hb.pass();
    expect(takeover).to.include({ leader: true, created: 0, attempted: 3, delivered: 3 });
    expect((await state())!).to.include({ holder: 'B', token: held.token + 1 });

    // A comes back: it cannot renew, deliver, or move the cursor with its old token.
    expect(await ha.pass()).to.deep.equal({
      leader: false,
      created: 0,
      attempted: 0,
      delivered: 0,
      failedAttempts: 0,
    });
    const moved = await a.core.store.advanceAlertCursor(
      'A',
      held.token,
      { ts: new Timestamp({ t: 0, i: 1 }), id: new ObjectId() },
      null,
    );
    expect(moved).to.equal(false);

    // The deliveries were created before the cursor passed their events: re-reading the feed from
    // the start (a holder that died between the two) re-creates none of them.
    await db.connection
      .collection(`${prefix}alert_state`)
      .updateOne({ _id: 'alerts' as never }, { $unset: { cursor: '', runsSince: '' } });
    const sent = receiver.received.length;
    expect((await hb.pass()).created).to.equal(0);
    expect(receiver.received.length).to.equal(sent);

    const ds = await all(b);
    expect(ds.map((d) => d.task).sort()).to.deep.equal(['t1', 't2', 't3']);
    for (const d of ds) {
      expect(d.status).to.equal('delivered');
      expect(d.attempts.map((x) => [x.by, x.statusCode])).to.deep.equal([
        ['A', 500],
        ['B', 200],
      ]);
      const got = receiver.received.filter((r) => r.key === d.key);
      expect(got.map((r) => r.status)).to.deep.equal([500, 200]);
      expect(new Set(got.map((r) => r.body)).size).to.equal(1);
    }
    // stop() gives the lease up: the other process takes over at once.
    await hb.stop();
    expect((await ha.pass()).leader).to.equal(true);
    await ha.stop();
  });

  it('a holder whose lease is taken over while its request is in flight is fenced: its outcome is not recorded, the new holder sends again under the same key', async function () {
    const a = newClient('A');
    const b = newClient('B');
    await a.addAlertRule({ name: 'fence', events: ['task:failed'], url: receiver.url('/f'), secret: SECRET });
    clock.advance(1);
    const c = await a.getOrCreateTaskContainer('fence-1');
    await c.addTasks([{ name: 't', maxRetries: 0 }]);
    await fail(a, c, 't');
    const opts = { intervalMs: 0, leaseMs: 5000, backoffMs: 1000, requestTimeoutMs: 3000, horizonMs: 0 };
    const ha = a.startAlerts(opts);
    const hb = b.startAlerts(opts);
    let answer!: () => void;
    receiver.hold = new Promise<void>((resolve) => (answer = resolve));
    // A creates the delivery and sends it; the receiver keeps the answer back.
    const inFlight = passUntil(ha, (t) => t.attempted >= 1);
    for (let i = 0; receiver.received.length === 0; i++) {
      if (i > 150) throw new Error('the receiver saw no request');
      await delay(100);
    }
    // A's lease runs out meanwhile: B takes over (fencing every pending delivery) — the delivery
    // is not due for B until A's attempt timed out (requestTimeoutMs + 5 s).
    clock.advance(5000);
    expect(await hb.pass()).to.include({ leader: true, attempted: 0 });
    answer();
    const stale = await inFlight;
    expect(stale).to.include({ leader: false, attempted: 1, delivered: 0 });
    let [d] = await all(b);
    expect(d).to.include({ status: 'pending', attemptCount: 1 });
    expect(d.attempts).to.deep.equal([]); // the stale holder could not record its 200
    expect((await ha.pass()).leader).to.equal(false);
    // The attempt's hold runs out: B sends again, under the same key and body.
    clock.advance(3000 + 5000);
    expect(await hb.pass()).to.include({ leader: true, attempted: 1, delivered: 1 });
    [d] = await all(b);
    expect(d.status).to.equal('delivered');
    expect(d.attempts.map((x) => [x.n, x.by, x.statusCode])).to.deep.equal([[2, 'B', 200]]);
    expect(receiver.received.map((r) => [r.key, r.attempt, r.status])).to.deep.equal([
      [d.key, '1', 200],
      [d.key, '2', 200],
    ]);
    for (const r of receiver.received) {
      expect(r.body).to.equal(d.body);
      expect(
        verifyAlertSignature({
          secret: SECRET,
          body: r.raw,
          signature: r.signature,
          timestamp: r.timestamp,
          now: clock.now(),
        }),
      ).to.equal(true);
    }
    await Promise.all([ha.stop(), hb.stop()]);
  });

  it('task:timeout / task:stalled from deadlines, schedule:missed from the scheduler, and only events after the rule was added', async function () {
    const client = newClient('d');
    await client.addAlertRule({
      name: 'deadlines',
      events: ['task:timeout', 'task:stalled', 'task:failed'],
      url: receiver.url('/dl'),
      secret: SECRET,
      prefix: 'dl-',
    });
    await client.addAlertRule({
      name: 'missed',
      events: ['schedule:missed'],
      url: receiver.url('/missed'),
      secret: SECRET,
    });
    clock.advance(1);
    const c = await client.getOrCreateTaskContainer('dl-1');
    await c.addTasks([
      { name: 'slow', timeoutMs: 5000, maxRetries: 1, retryDelayMs: 0 },
      { name: 'stuck', stallMs: 1000, maxRetries: 0 },
    ]);
    const l1 = await client.claimNext({ container: c.name() }, { owner: 'w' });
    const l2 = await client.claimNext({ container: c.name() }, { owner: 'w' });
    expect([l1?.task.name, l2?.task.name].sort()).to.deep.equal(['slow', 'stuck']);
    clock.advance(5001);
    await client.recoverStale({ container: c.name() });
    expect((await c.getTask('slow'))!.toJSON().state).to.equal('pending');
    expect((await c.getTask('stuck'))!.toJSON().state).to.equal('failed');
    // The timed-out task is retried and fails for good before any alert pass read it: the
    // timeout (an older failure of its history) is still delivered, and so is the final failure.
    await fail(client, c, 'slow');

    client.definePipeline('nightly', { tasks: [{ name: 'x' }] });
    await client.schedule('nightly', { cron: '* * * * *', catchupWindowMs: 60_000, overlap: 'allowAll' });
    clock.advance(10 * 60_000);
    const sr = await client.runSchedulerPass();
    expect(sr.skipped.filter((s) => s.reason === 'missed')).to.have.length(1);

    // A rule added now sees none of that.
    clock.advance(1);
    await client.addAlertRule({
      name: 'late',
      events: ['task:failed', 'task:timeout', 'task:stalled', 'schedule:missed', 'container:failed'],
      url: receiver.url('/late'),
      secret: SECRET,
    });

    const h = client.startAlerts({ intervalMs: 0, horizonMs: 0 });
    await passUntil(h, (t) => t.delivered >= 5);
    const ds = await all(client);
    expect(ds.map((d) => `${d.rule} ${d.event} ${d.task ?? d.container}`).sort()).to.deep.equal([
      'deadlines task:failed slow',
      'deadlines task:failed stuck',
      'deadlines task:stalled stuck',
      'deadlines task:timeout slow',
      `missed schedule:missed ${sr.skipped[0].container}`,
    ]);
    const timeout = JSON.parse(ds.find((d) => d.event === 'task:timeout')!.body) as {
      details: Record<string, unknown>;
    };
    expect(timeout.details).to.include({
      kind: 'timeout',
      code: 'TASK_TIMEOUT',
      state: 'failed',
      failureCount: 2,
      failure: 1,
    });
    const missed = JSON.parse(ds.find((d) => d.event === 'schedule:missed')!.body) as {
      details: Record<string, unknown>;
    };
    expect(missed.details).to.include({ pipeline: 'nightly', count: sr.skipped[0].count });
    expect(receiver.received.map((r) => r.path).sort()).to.deep.equal([
      '/dl',
      '/dl',
      '/dl',
      '/dl',
      '/missed',
    ]);
    await h.stop();
  });

  it('CLI: pts alerts add / list / deliveries --attempts show rules (never the secret) and every attempt of each delivery', async function () {
    // The CLI opens its own connection with the default collection prefix.
    const client = newClient('cli', 'pts_');
    const mongodbUri = db.uri;
    const run = async (fn: () => Promise<void>): Promise<{ out: string; err: unknown }> => {
      let out = '';
      const write = process.stdout.write.bind(process.stdout);
      process.stdout.write = ((chunk: string | Uint8Array) => (
        (out += String(chunk)),
        true
      )) as typeof process.stdout.write;
      try {
        await fn();
        return { out, err: null };
      } catch (err) {
        return { out, err };
      } finally {
        process.stdout.write = write;
      }
    };
    const bad = await run(() =>
      alertsAdd('cli-hook', {
        mongodbUri,
        events: 'task:failed,task:exploded',
        url: receiver.url('/cli'),
        secret: SECRET,
      }),
    );
    expect(bad.err).to.be.instanceOf(CliError).and.include({ exitCode: 2 });
    const badUrl = await run(() =>
      alertsAdd('cli-hook', { mongodbUri, events: 'task:failed', url: 'ftp://x', secret: SECRET }),
    );
    expect((badUrl.err as { code?: string }).code).to.equal('PTS_VALIDATION');
    expect(await client.listAlertRules()).to.deep.equal([]);
    const added = await run(() =>
      alertsAdd('cli-hook', {
        mongodbUri,
        events: 'task:failed',
        url: receiver.url('/cli'),
        secret: SECRET,
        prefix: 'cli-',
      }),
    );
    expect(added.err).to.equal(null);
    expect(added.out).to.include('added alert rule cli-hook').and.not.include(SECRET);
    const listed = await run(() => alertsList({ mongodbUri, json: true }));
    expect(listed.out).to.include('"cli-hook"').and.not.include(SECRET).and.not.include('secret');

    // The CLI's client runs on the real clock: move the test's clock past the rule's creation.
    clock.advance(Math.max(1, Date.now() + 1000 - clock.now().getTime()));
    const c = await client.getOrCreateTaskContainer('cli-1');
    await c.addTasks([{ name: 't', maxRetries: 0 }]);
    await fail(client, c, 't');
    receiver.failLeft = 1;
    const h = client.startAlerts({ intervalMs: 0, backoffMs: 0, horizonMs: 0 });
    await passUntil(h, (t) => t.delivered >= 1);
    await h.stop();
    const text = await run(() => alertsDeliveries({ mongodbUri, attempts: true }));
    expect(text.err).to.equal(null);
    const [d] = await all(client);
    expect(text.out)
      .to.include('cli-hook')
      .and.include('task:failed')
      .and.include('cli-1 / t')
      .and.include('delivered')
      .and.not.include(SECRET);
    expect(text.out).to.match(/#1 \S+ HTTP 500 \(HTTP 500\) \d+ ms by cli/);
    expect(text.out).to.match(/#2 \S+ HTTP 200 \d+ ms by cli/);
    expect(text.out).to.include(d.key);
    const json = await run(() => alertsDeliveries({ mongodbUri, json: true }));
    const items = JSON.parse(json.out) as DeliveryRecord[];
    expect(items.map((x) => x.attempts.map((a) => a.statusCode))).to.deep.equal([[500, 200]]);
    expect(json.out).to.not.include(SECRET);
  });

  it("HTTP: a prefixed admin token manages the rules inside its prefix only; a rule it adds without a prefix watches the token's", async function () {
    const f = await startFixture(db);
    try {
      const { token } = await f.tokens.create({ scope: 'admin', prefix: 'team-a/', name: 'team-a admin' });
      await f.client.addAlertRule({ name: 'global', events: ['task:failed'], url: receiver.url('/g'), secret: 'k' });
      const rule = { events: ['task:failed'], url: receiver.url('/a'), secret: 'k' };
      const added = await f.call('POST', '/api/v1/alerts/rules', { token, body: { name: 'team-a-ops', ...rule } });
      expect(added.status).to.equal(201);
      expect(added.body).to.include({ name: 'team-a-ops', prefix: 'team-a/' });
      const outside = await f.call('POST', '/api/v1/alerts/rules', { token, body: { name: 'sneaky', ...rule, prefix: 'team-b/' } });
      expect(outside.status).to.equal(403);
      const everything = await f.call('POST', '/api/v1/alerts/rules', { token, body: { name: 'all', ...rule, prefix: '' } });
      expect(everything.status, "'' watches every container: outside a prefixed token").to.equal(403);
      const listed = await f.call('GET', '/api/v1/alerts/rules', { token });
      expect((listed.body as { items: Array<{ name: string }> }).items.map((r) => r.name)).to.deep.equal(['team-a-ops']);
      // The global rule is invisible to it: 404 on every route by name, and nothing changed.
      expect((await f.call('PATCH', '/api/v1/alerts/rules/global', { token, body: { enabled: false } })).status).to.equal(404);
      expect((await f.call('DELETE', '/api/v1/alerts/rules/global', { token })).status).to.equal(404);
      expect((await f.call('POST', '/api/v1/alerts/rules/global/test', { token })).status).to.equal(404);
      const mine = (await f.client.listAlertRules()).filter((r) => ['global', 'team-a-ops'].includes(r.name));
      expect(mine.map((r) => [r.name, r.enabled])).to.deep.equal([
        ['global', true],
        ['team-a-ops', true],
      ]);
      expect((await f.call('DELETE', '/api/v1/alerts/rules/team-a-ops', { token })).status).to.equal(204);
      // An admin token without a prefix sees every rule.
      const all = await f.call('GET', '/api/v1/alerts/rules');
      const names = (all.body as { items: Array<{ name: string }> }).items.map((r) => r.name);
      expect(names).to.include('global').and.not.include('team-a-ops');
    } finally {
      await f.client.deleteAlertRule('global');
      await f.close();
    }
  });

  it('HTTP: rules need admin (secrets never returned), deliveries need read and follow the token prefix', async function () {
    const client = newClient('http');
    const server = await startServer({ client, auth: false, dashboard: false });
    try {
      const api = (path: string, init: RequestInit = {}) =>
        fetch(
          `${server.url}/api/v1${path}`,
          init.body === undefined ? init : { ...init, headers: { 'content-type': 'application/json' } },
        );
      const bad = await api('/alerts/rules', {
        method: 'POST',
        body: JSON.stringify({ name: 'x', events: ['nope'], url: receiver.url('/h'), secret: 'k' }),
      });
      expect(bad.status).to.equal(400);
      const created = await api('/alerts/rules', {
        method: 'POST',
        body: JSON.stringify({
          name: 'web',
          events: ['task:failed'],
          url: receiver.url('/h'),
          secret: 'k',
          prefix: 'web-',
        }),
      });
      expect(created.status).to.equal(201);
      expect(await created.json())
        .to.include({ name: 'web', prefix: 'web-', template: 'json', enabled: true })
        .and.not.have.property('secret');
      expect(
        (
          await api('/alerts/rules', {
            method: 'POST',
            body: JSON.stringify({
              name: 'web',
              events: ['task:failed'],
              url: receiver.url('/h'),
              secret: 'k',
            }),
          })
        ).status,
      ).to.equal(409);
      const list = await (await api('/alerts/rules')).text();
      expect(list).to.include('"web"').and.not.include('"k"').and.not.include('secret');
      const off = await api('/alerts/rules/web', {
        method: 'PATCH',
        body: JSON.stringify({ enabled: false }),
      });
      expect(await off.json()).to.include({ enabled: false });
      const test = await (await api('/alerts/rules/web/test', { method: 'POST' })).json();
      expect(test).to.include({ statusCode: 200, error: null });
      expect(receiver.received.at(-1)!.path).to.equal('/h');

      await api('/alerts/rules/web', { method: 'PATCH', body: JSON.stringify({ enabled: true }) });
      const c = await client.getOrCreateTaskContainer('web-1');
      await c.addTasks([{ name: 't', maxRetries: 0 }]);
      await fail(client, c, 't');
      const h = client.startAlerts({ intervalMs: 0, horizonMs: 0 });
      await passUntil(h, (t) => t.delivered >= 1);
      await h.stop();
      const page = (await (await api('/alerts/deliveries?rule=web')).json()) as {
        items: Array<Record<string, unknown>>;
        nextCursor: string | null;
      };
      expect(page.items).to.have.length(1);
      expect(page.items[0]).to.include({
        rule: 'web',
        event: 'task:failed',
        container: 'web-1',
        task: 't',
        status: 'delivered',
        attemptCount: 1,
      });
      expect((page.items[0].attempts as Array<Record<string, unknown>>)[0]).to.include({
        n: 1,
        statusCode: 200,
        error: null,
        by: 'http',
      });
      expect((await (await api('/alerts/deliveries?prefix=zzz')).json()).items).to.deep.equal([]);
      expect((await api('/alerts/deliveries?status=lost')).status).to.equal(400);
      expect((await api('/alerts/rules/nope', { method: 'DELETE' })).status).to.equal(404);
      expect((await api('/alerts/rules/web', { method: 'DELETE' })).status).to.equal(204);
      const doc = (await (await fetch(`${server.url}/openapi.json`)).json()) as {
        paths: Record<string, unknown>;
      };
      expect(Object.keys(doc.paths)).to.include.members([
        '/api/v1/alerts/rules',
        '/api/v1/alerts/rules/{name}',
        '/api/v1/alerts/rules/{name}/test',
        '/api/v1/alerts/deliveries',
      ]);
    } finally {
      await server.close();
    }
  });
});
