/**
 * Leases on the database's clock (lib/server-clock.ts): the offset estimate, that every time is
 * computed on the server's clock whatever this process's clock says, that nothing is written on
 * the unmeasured clock, that a ManualClock stays the test's, and two worker processes whose
 * clocks are 10 minutes off either way agreeing on when a lease runs out.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { expect } from 'chai';
import mongoose from 'mongoose';
import { createClient, ManualClock, type Clock, type ClockOffset } from '../lib';
import { findFreePort, startFerretDB, type FerretDBServer } from '../lib/embedded';
import { CLOCK_SAMPLES, estimateOffset, type ClockSample } from '../lib/server-clock';
import { useTestDatabase } from './helpers/db';
import { trackResource } from './helpers/leaks';

const TEN_MINUTES = 10 * 60_000;
const skewedBy = (ms: number): Clock => ({ now: () => new Date(Date.now() + ms) });

/** A connection whose `hello` commands (run by the library, not the driver's monitoring) are counted, in order with every other command. */
async function monitored(uri: string): Promise<{ conn: mongoose.Connection; commands: string[]; close: () => Promise<void> }> {
  const conn = await mongoose.createConnection(uri, { monitorCommands: true }).asPromise();
  const untrack = trackResource('server-clock monitored connection', () => conn.close(true));
  const commands: string[] = [];
  conn.getClient().on('commandStarted', (e) => {
    if (['endSessions', 'saslStart', 'saslContinue', 'buildInfo', 'ping'].includes(e.commandName)) return;
    commands.push(e.commandName === 'hello' ? `hello ${e.databaseName}` : e.commandName);
  });
  return {
    conn,
    commands,
    close: async () => {
      await conn.close(true);
      untrack();
    },
  };
}

describe('server clock', function () {
  const db = useTestDatabase();

  describe('estimateOffset', function () {
    it('keeps the sample with the shortest round trip: offset from its midpoint, bound = rtt/2 + both resolutions', function () {
      const samples: ClockSample[] = [
        { t0: 1_000, server: 5_000, t1: 1_040, rttMs: 40 }, // offset 3 980 ± 22
        { t0: 2_000, server: 6_003, t1: 2_006, rttMs: 6 }, // offset 4 000 ± 5.5 → 6
        { t0: 3_000, server: 7_100, t1: 3_200, rttMs: 200 },
      ];
      expect(estimateOffset(samples)).to.deep.equal({ offsetMs: 4_000, errorBoundMs: 6, rttMs: 6 });
      // A clock ahead of the server: negative offset; a zero round trip still leaves the resolutions.
      expect(estimateOffset([{ t0: 10_000, server: 4_000, t1: 10_000, rttMs: 0 }])).to.deep.equal({ offsetMs: -6_000, errorBoundMs: 3, rttMs: 0 });
      expect(() => estimateOffset([])).to.throw(RangeError);
    });
  });

  describe('against the real server', function () {
    it('a clock 10 minutes ahead or behind is measured to within its bound, and times are stored on the server clock', async function () {
      for (const skew of [TEN_MINUTES, -TEN_MINUTES]) {
        const client = createClient({ connection: db.connection, clock: skewedBy(skew), leaseMs: 60_000 });
        const before = Date.now();
        const c = await client.getOrCreateTaskContainer(`skew ${skew}`);
        await c.addTask('t', null);
        const lease = (await client.claimNext({ container: c.name() }))!;
        const after = Date.now();
        const o = client.clockOffset() as ClockOffset;
        expect(o.source).to.equal('server');
        // The server shares this machine's clock: the true offset is exactly -skew.
        expect(Math.abs(o.offsetMs + skew), `offset ${o.offsetMs} ± ${o.errorBoundMs}`).to.be.at.most(o.errorBoundMs!);
        expect(o.errorBoundMs).to.equal(Math.ceil(o.rttMs / 2 + 2.5));
        expect(o.sampledAt.getTime()).to.be.within(before - o.errorBoundMs!, after + o.errorBoundMs!);
        const b = o.errorBoundMs!;
        console.log(`      [server-clock] clock ${skew > 0 ? '+' : ''}${skew / 60_000} min: offset ${o.offsetMs} ms ± ${b} ms (best round trip ${o.rttMs} ms of ${CLOCK_SAMPLES})`);
        const task = (await c.getTask('t'))!.toJSON();
        expect(task.createdAt.getTime(), 'createdAt').to.be.within(before - b, after + b);
        expect(lease.task.lease!.expiresAt.getTime(), 'lease expiry').to.be.within(before + 60_000 - b, after + 60_000 + b);
        await lease.succeed(null);
        await client.close();
      }
    });

    it('measures before the first operation (with autoIndex off too), CLOCK_SAMPLES hellos; operations then ask no more', async function () {
      const m = await monitored(db.uri);
      try {
        const setup = createClient({ connection: db.connection });
        await (await setup.getOrCreateTaskContainer('gate')).addTasks([{ name: 'a' }, { name: 'b' }]);
        const client = createClient({ connection: m.conn, clock: skewedBy(TEN_MINUTES), autoIndex: false });
        expect(client.clockOffset()).to.equal(null);
        const lease = (await client.claimNext({ container: 'gate' }))!;
        const hellos = Array<string>(CLOCK_SAMPLES).fill('hello admin');
        expect(m.commands.slice(0, CLOCK_SAMPLES), 'the measurement comes first').to.deep.equal(hellos);
        expect(m.commands.slice(CLOCK_SAMPLES)).to.not.include('hello admin');
        expect(lease.task.lease!.expiresAt.getTime() - Date.now()).to.be.within(25_000, 30_000 + client.clockOffset()!.errorBoundMs!);
        m.commands.length = 0;
        await lease.heartbeat({ percentageComplete: 5 });
        await lease.succeed('ok');
        expect((await client.claimNext({ container: 'gate' }))!.task.name).to.equal('b');
        expect(m.commands.filter((x) => x.startsWith('hello'))).to.deep.equal([]);
        // An explicit re-measurement: CLOCK_SAMPLES hellos, a new sample.
        const first = client.clockOffset()!;
        const again = (await client.syncClock())!;
        expect(m.commands.filter((x) => x.startsWith('hello'))).to.deep.equal(hellos);
        expect(again.sampledAt.getTime()).to.be.at.least(first.sampledAt.getTime());
        await client.close();
      } finally {
        await m.close();
      }
    });

    it('re-measures on its timer (clockSyncIntervalMs); close() stops the timer', async function () {
      const m = await monitored(db.uri);
      try {
        const client = createClient({ connection: m.conn, clockSyncIntervalMs: 50 });
        await client.totals();
        const hellos = (): number => m.commands.filter((x) => x === 'hello admin').length;
        expect(hellos()).to.equal(CLOCK_SAMPLES);
        // Wait for two more measurements (event-driven: each hello is a command event).
        await new Promise<void>((resolve) => {
          const check = (): void => {
            if (hellos() >= 3 * CLOCK_SAMPLES) {
              m.conn.getClient().off('commandSucceeded', check);
              resolve();
            }
          };
          m.conn.getClient().on('commandSucceeded', check);
        });
        const clock = client.core.serverClock as unknown as { timer: NodeJS.Timeout | null };
        expect(clock.timer).to.not.equal(null);
        await client.close();
        expect(clock.timer).to.equal(null);
      } finally {
        await m.close();
      }
    });
  });

  describe('after a reconnect', function () {
    it('re-measures when the connection comes back (the server may be another node, with another clock)', async function () {
      this.timeout(90_000);
      const dir = mkdtempSync(path.join(tmpdir(), 'pts-server-clock-'));
      const port = await findFreePort();
      let server: FerretDBServer | null = await startFerretDB({ dataDir: dir, port, log: () => {} });
      const untrackServer = trackResource('server-clock ferretdb', () => server?.stop());
      const conn = mongoose.createConnection(`${server.uri}clock`, { serverSelectionTimeoutMS: 1000, heartbeatFrequencyMS: 300, monitorCommands: true });
      const untrackConn = trackResource('server-clock reconnecting connection', () => conn.close(true));
      conn.on('error', () => {});
      try {
        await conn.asPromise();
        let hellos = 0;
        const waiters: Array<() => void> = [];
        conn.getClient().on('commandSucceeded', (e) => {
          if (e.commandName !== 'hello') return;
          hellos++;
          for (const w of waiters.splice(0)) w();
        });
        const helloCount = (n: number): Promise<void> =>
          new Promise((resolve) => {
            const check = (): void => (hellos >= n ? resolve() : void waiters.push(check));
            check();
          });
        const client = createClient({ connection: conn, clockSyncIntervalMs: 0 });
        await client.totals();
        expect(hellos).to.equal(CLOCK_SAMPLES);
        const first = client.clockOffset()!;
        const disconnected = new Promise((resolve) => conn.once('disconnected', resolve));
        await server.stop();
        server = null;
        await disconnected;
        const reconnected = new Promise((resolve) => conn.once('reconnected', resolve));
        server = await startFerretDB({ dataDir: dir, port, log: () => {} });
        await reconnected;
        await helloCount(2 * CLOCK_SAMPLES);
        await client.syncClock(); // waits for a measurement in flight, makes one more
        expect(client.clockOffset()!.sampledAt.getTime()).to.be.greaterThan(first.sampledAt.getTime());
        await client.close();
      } finally {
        await conn.close(true);
        untrackConn();
        await server?.stop();
        untrackServer();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  describe('injected clocks', function () {
    it('a ManualClock is the test time: used as is, nothing measured, by default', async function () {
      const m = await monitored(db.uri);
      try {
        const clock = new ManualClock(Date.UTC(2030, 0, 1));
        const client = createClient({ connection: m.conn, clock });
        const c = await client.getOrCreateTaskContainer('manual');
        await c.addTask('t', null);
        expect(client.core.ctx.clock).to.equal(clock);
        expect(client.clockOffset()).to.equal(null);
        expect(await client.syncClock()).to.equal(null);
        expect((await c.getTask('t'))!.toJSON().createdAt.getTime()).to.equal(Date.UTC(2030, 0, 1));
        expect(m.commands.filter((x) => x.startsWith('hello'))).to.deep.equal([]);
      } finally {
        await m.close();
      }
    });

    it('serverClock: true with a ManualClock: measured once; advance() moves it, a re-sync does not undo it', async function () {
      const clock = new ManualClock(Date.UTC(2030, 0, 1));
      const client = createClient({ connection: db.connection, clock, serverClock: true, leaseMs: 10_000 });
      const c = await client.getOrCreateTaskContainer('manual on server time');
      await c.addTask('t', null);
      const o = client.clockOffset()!;
      expect(Math.abs(Date.now() - Date.UTC(2030, 0, 1) - o.offsetMs)).to.be.at.most(o.errorBoundMs! + 1_000);
      const lease = (await client.claimNext({ container: c.name() }))!;
      const exp = lease.task.lease!.expiresAt.getTime();
      expect(exp).to.equal(clock.now().getTime() + o.offsetMs + 10_000);
      expect((await client.recoverStale()).recovered).to.deep.equal([]);
      clock.advance(10_001);
      expect(await client.syncClock()).to.deep.equal(o);
      expect(client.core.ctx.clock.now().getTime()).to.equal(exp + 1);
      expect((await client.recoverStale()).recovered.map((r) => r.task)).to.deep.equal(['t']);
      await client.close();
    });

    it('serverClock: false uses the injected clock as is; bad values are a ValidationError', async function () {
      const skewed = skewedBy(TEN_MINUTES);
      const client = createClient({ connection: db.connection, clock: skewed, serverClock: false });
      const c = await client.getOrCreateTaskContainer('unsynced');
      await c.addTask('t', null);
      expect(client.core.ctx.clock).to.equal(skewed);
      expect(client.clockOffset()).to.equal(null);
      expect((await c.getTask('t'))!.toJSON().createdAt.getTime() - Date.now()).to.be.within(TEN_MINUTES - 60_000, TEN_MINUTES);
      for (const bad of [{ serverClock: 'yes' }, { clockSyncIntervalMs: -1 }, { clockSyncIntervalMs: 1.5 }]) {
        expect(() => createClient({ connection: db.connection, ...(bad as object) }), JSON.stringify(bad))
          .to.throw()
          .with.property('code', 'PTS_VALIDATION');
      }
    });
  });

  describe('where operators see it', function () {
    it('/readyz answers the offset (measuring it if nothing did yet), /metrics has it as gauges', async function () {
      const { buildServer } = await import('../lib/http/server');
      const client = createClient({ connection: db.connection, clock: skewedBy(-TEN_MINUTES) });
      const app = await buildServer({ client, auth: false, dashboard: false });
      const untrack = trackResource('server-clock http app', () => app.close());
      try {
        const ready = await app.inject({ method: 'GET', url: '/readyz' });
        expect(ready.statusCode).to.equal(200);
        const body = ready.json() as { ok: boolean; clock: { offsetMs: number; errorBoundMs: number; rttMs: number; sampledAt: string; source: string } };
        expect(body.ok).to.equal(true);
        expect(body.clock.source).to.equal('server');
        expect(Math.abs(body.clock.offsetMs - TEN_MINUTES)).to.be.at.most(body.clock.errorBoundMs);
        expect(body.clock).to.deep.equal(JSON.parse(JSON.stringify(client.clockOffset())));
        const text = (await app.inject({ method: 'GET', url: '/metrics' })).body;
        const gauge = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
        expect(gauge('pts_clock_offset_seconds')).to.equal(body.clock.offsetMs / 1000);
        expect(gauge('pts_clock_offset_error_bound_seconds')).to.equal(body.clock.errorBoundMs / 1000);
      } finally {
        await app.close();
        untrack();
        await client.close();
      }
    });

    it('pts status prints how far this machine is from the database clock', async function () {
      this.timeout(60_000);
      const main = path.join(__dirname, '..', 'lib', 'cli', 'main.ts');
      const child = spawn(process.execPath, ['--import', 'tsx', main, 'status'], {
        env: { ...process.env, NO_COLOR: '1', NODE_OPTIONS: '', MONGODB_URI: db.uri },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const untrack = trackResource('pts status', () => child.kill('SIGKILL'));
      let out = '';
      let err = '';
      child.stdout.on('data', (b: Buffer) => (out += b.toString()));
      child.stderr.on('data', (b: Buffer) => (err += b.toString()));
      const code = await new Promise((resolve) => child.once('close', resolve));
      untrack();
      expect(code, err).to.equal(0);
      // Same machine as the server: in step, or a millisecond or so either way, within the bound.
      const m = /^database clock: this machine is (in step with|(\d+) ms (behind|ahead of)) the database server \(± (\d+) ms\)/m.exec(out);
      expect(m, out).to.not.equal(null);
      expect(Number(m![2] ?? 0)).to.be.at.most(Number(m![4]));
    });
  });

  describe('two worker processes, clocks 10 minutes ahead and behind', function () {
    this.timeout(120_000);

    interface Child {
      child: ChildProcessWithoutNullStreams;
      lines: Array<Record<string, unknown>>;
      next(pred: (l: Record<string, unknown>) => boolean, what: string): Promise<Record<string, unknown>>;
      exited: Promise<unknown>;
      stderr: () => string;
    }

    function start(args: Record<string, unknown>): Child {
      const child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, 'fixtures', 'skewed-clock-worker.ts'), JSON.stringify(args)], {
        stdio: ['pipe', 'pipe', 'pipe'],
        env: { ...process.env, NODE_OPTIONS: '' },
      });
      let err = '';
      child.stderr.on('data', (b: Buffer) => {
        err = (err + b.toString()).slice(-4000);
      });
      const untrack = trackResource(`skewed worker ${String(args.workerId)}`, () => child.kill('SIGKILL'));
      const exited = new Promise((resolve) => child.once('exit', resolve)).then(untrack);
      const lines: Array<Record<string, unknown>> = [];
      const waiters: Array<() => void> = [];
      readline.createInterface({ input: child.stdout }).on('line', (l) => {
        lines.push(JSON.parse(l) as Record<string, unknown>);
        for (const w of waiters.splice(0)) w();
      });
      const next = (pred: (l: Record<string, unknown>) => boolean, what: string): Promise<Record<string, unknown>> =>
        new Promise((resolve, reject) => {
          const check = (): void => {
            const hit = lines.find(pred);
            if (hit) return resolve(hit);
            if (child.exitCode !== null || child.signalCode !== null) return reject(new Error(`${String(args.workerId)} exited before ${what}: ${err}`));
            waiters.push(check);
          };
          child.once('exit', check);
          check();
        });
      return { child, lines, next, exited, stderr: () => err };
    }

    it('the +10 min sweeper does not expire a live lease; after SIGKILL the −10 min sweeper expires it once it really ran out, and retries it', async function () {
      const LEASE_MS = 4_000;
      const admin = createClient({ connection: db.connection });
      const c = await admin.getOrCreateTaskContainer('skewed workers');
      await c.addTasks([
        { name: 'live', maxRetries: 3, retryDelayMs: 0 },
        { name: 'doomed', maxRetries: 3, retryDelayMs: 0 },
      ]);
      const common = { uri: db.uri, container: c.name(), leaseMs: LEASE_MS, heartbeatMs: 500, sweepMs: 250 };
      // behind (−10 min) holds `live` and stays alive; ahead (+10 min) holds `doomed` and is killed.
      const behind = start({ ...common, task: 'live', skewMs: -TEN_MINUTES, workerId: 'behind' });
      const ahead = start({ ...common, task: 'doomed', skewMs: TEN_MINUTES, workerId: 'ahead' });
      try {
        const heldB = await behind.next((l) => l.ev === 'held', 'claiming live');
        const heldA = await ahead.next((l) => l.ev === 'held', 'claiming doomed');
        const offB = heldB.offset as { offsetMs: number; errorBoundMs: number };
        const offA = heldA.offset as { offsetMs: number; errorBoundMs: number };
        expect(Math.abs(offB.offsetMs - TEN_MINUTES), 'behind measured +10 min').to.be.at.most(offB.errorBoundMs);
        expect(Math.abs(offA.offsetMs + TEN_MINUTES), 'ahead measured −10 min').to.be.at.most(offA.errorBoundMs);
        // Phase 1: both sweep for more than two lease lengths while both heartbeat. On its own
        // clock, `ahead` would see behind's lease as having run out ten minutes ago.
        const sweptFrom = ahead.lines.filter((l) => l.ev === 'swept').length;
        const t0 = Date.now();
        await ahead.next((l) => l.ev === 'swept' && (l.at as number) > t0 + 2 * LEASE_MS, 'sweeping for two lease lengths');
        expect(ahead.lines.filter((l) => l.ev === 'swept').length - sweptFrom).to.be.greaterThan(2);
        for (const w of [ahead, behind]) {
          const swept = w.lines.filter((l) => l.ev === 'swept');
          expect(swept.length).to.be.greaterThan(0);
          expect(swept.flatMap((l) => l.recovered as unknown[]), 'nothing expired while both heartbeat').to.deep.equal([]);
        }
        const tasks = db.connection.collection('pts_tasks');
        const live = await tasks.findOne({ container: c.name(), name: 'live' });
        expect(live).to.deep.include({ state: 'running', fence: heldB.token });
        // The lease expiry each stored is on the server's clock, not 10 minutes off.
        const now = Date.now();
        expect(live!.lease.expiresAt.getTime() - now, 'behind stored its expiry on server time').to.be.within(-1_000, LEASE_MS + offB.errorBoundMs);
        const doomedHeld = await tasks.findOne({ container: c.name(), name: 'doomed' });
        expect(doomedHeld!.lease.expiresAt.getTime() - now, 'ahead stored its expiry on server time').to.be.within(-1_000, LEASE_MS + offA.errorBoundMs);

        // Phase 2: kill the holder of `doomed`; on its own clock `behind` would wait 20 more minutes.
        ahead.child.kill('SIGKILL');
        await ahead.exited;
        const expiresAt = (await tasks.findOne({ container: c.name(), name: 'doomed' }))!.lease.expiresAt.getTime() as number;
        const retried = await behind.next((l) => l.ev === 'retried' && l.task === 'doomed', 'retrying doomed');
        const seenAt = Date.now();
        expect(retried).to.include({ state: 'succeeded', invokeCount: 2 });
        const doomed = (await c.getTask('doomed'))!;
        expect(doomed.state()).to.equal('succeeded');
        expect(doomed.result()).to.deep.equal({ retriedBy: 'behind' });
        const [f] = doomed.failures();
        expect(f).to.include({ code: 'LEASE_EXPIRED', kind: 'interrupted', attempt: 1, workerId: 'ahead' });
        // Not before the lease ran out (on the server's clock, as far as behind's bound allows) …
        expect(f.at.getTime(), 'expired no earlier than its expiry').to.be.at.least(expiresAt);
        expect(seenAt, 'expired no earlier than its expiry, real time').to.be.at.least(expiresAt - offB.errorBoundMs);
        // … and soon after: within a sweep interval, the bound and scheduling slack (not 20 minutes).
        expect(f.at.getTime() - expiresAt, 'expired soon after its expiry').to.be.at.most(common.sweepMs + offB.errorBoundMs + 3_000);
        console.log(
          `      [server-clock] two processes: ahead ${offA.offsetMs} ± ${offA.errorBoundMs} ms, behind ${offB.offsetMs} ± ${offB.errorBoundMs} ms; ` +
            `${ahead.lines.filter((l) => l.ev === 'swept').length} sweeps by ahead and ${behind.lines.filter((l) => l.ev === 'swept').length} by behind; ` +
            `doomed expired ${f.at.getTime() - expiresAt} ms after its stored expiry and was retried by behind`,
        );
        // `live` was never taken from behind.
        expect(await tasks.findOne({ container: c.name(), name: 'live' })).to.deep.include({ state: 'running', fence: heldB.token, invokeCount: 1 });
      } finally {
        for (const w of [ahead, behind]) {
          if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
          await w.exited;
        }
      }
    });
  });
});
