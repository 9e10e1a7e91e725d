/**
 * Database outage: a separate FerretDB is stopped in the middle of a run and started again on the
 * same data directory and port. The runner must report the outage, keep going and lose nothing.
 */
import { expect } from 'chai';
import mongoose from 'mongoose';
import { createClient, PtsError, type TaskRecord } from '../../lib';
import { startServer } from '../../lib/server';
import { findFreePort, startFerretDB, type FerretDBServer } from '../../lib/embedded';
import { trackResource } from '../helpers/leaks';
import { sleep, tempDir } from './helpers';

describe('reliability: database outage', function () {
  this.timeout(180_000);

  it('reports db:unavailable/db:available, keeps running and loses no result across a server restart', async function () {
    const tmp = tempDir('outage');
    const port = await findFreePort();
    let server: FerretDBServer | null = await startFerretDB({ dataDir: tmp.dir, port, log: () => {} });
    const untrackServer = trackResource('outage ferretdb', () => server?.stop());
    const conn = mongoose.createConnection(`${server.uri}outage`, {
      serverSelectionTimeoutMS: 1000,
      heartbeatFrequencyMS: 500,
    });
    const untrackConn = trackResource('outage connection', () => conn.close(true));
    try {
      await conn.asPromise();
      // A claim whose reply is lost when the server goes away is adopted by the runner; should
      // that ever miss, a short lease keeps the cost at seconds (the summary line counts them).
      const client = createClient({ connection: conn, leaseMs: 8_000, progressIntervalMs: 0 });
      const events: string[] = [];
      const done = new Map<string, TaskRecord>();
      const t0 = Date.now();
      client.on('db:unavailable', (e) => events.push(`unavailable:${e.op}`));
      client.on('db:available', (e) => events.push(`available:${e.op}`));
      client.on(
        'db:unavailable',
        (e) =>
          process.env.PTS_DEBUG_OUTAGE &&
          console.log(Date.now() - t0, 'unavailable', e.op, e.error.name, e.error.message),
      );
      client.on(
        'db:available',
        (e) => process.env.PTS_DEBUG_OUTAGE && console.log(Date.now() - t0, 'available', e.op),
      );
      client.on(
        'task:succeeded',
        (e) => process.env.PTS_DEBUG_OUTAGE && console.log(Date.now() - t0, 'succeeded', e.task.name),
      );
      client.on('task:succeeded', (e) => done.set(e.task.name, e.task));
      // The HTTP service on the same client reports the outage through /readyz and 503s.
      const http = await startServer({ client, auth: false, host: '127.0.0.1', port: 0, dashboard: false });
      const untrackHttp = trackResource('outage http server', () => http.close());
      const status = async (path: string): Promise<number> => (await fetch(http.url + path)).status;
      const httpSeen: string[] = [];
      const c = await client.getOrCreateTaskContainer('outage');
      expect(await status('/readyz')).to.equal(200);
      await c.addTasks(
        Array.from({ length: 24 }, (_, i) => ({
          name: `s${i}`,
          dependsOn: i >= 2 ? [`s${i - 2}`] : [],
          maxRetries: 50,
          retryDelayMs: 100,
        })),
      );
      const run = c.run(
        async (ctx) => {
          for (let i = 1; i <= 2; i++) {
            await sleep(60);
            await ctx.saveCheckpoint({ i });
          }
          return { name: ctx.name, at: Date.now() };
        },
        { concurrency: 2, pollIntervalMs: 200 },
      );
      while (done.size < 6) await sleep(20);
      const beforeOutage = new Map(done);
      await server.stop();
      server = null;
      await sleep(1500);
      const readyDown = await status('/readyz');
      const readDown = await status('/api/v1/containers/outage');
      httpSeen.push(`readyz ${readyDown}`, `GET container ${readDown}`);
      expect(readyDown, '/readyz while the database is down').to.equal(503);
      expect(readDown, 'a read while the database is down').to.equal(503);
      await sleep(1500);
      server = await startFerretDB({ dataDir: tmp.dir, port, log: () => {} });
      const restartedAt = Date.now();
      let readyUp = 0;
      for (let i = 0; i < 100 && readyUp !== 200; i++) {
        readyUp = await status('/readyz');
        if (readyUp !== 200) await sleep(100);
      }
      httpSeen.push(`readyz ${readyUp} after ${Date.now() - restartedAt} ms`);
      expect(readyUp, '/readyz after the restart').to.equal(200);
      if (process.env.PTS_DEBUG_OUTAGE) console.log(restartedAt - t0, 'restarted');
      const res = await run;
      const afterRestart = Date.now() - restartedAt;
      expect(res.status).to.equal('succeeded');
      expect(
        events.some((e) => e.startsWith('unavailable:')),
        `events: ${events.join(', ')}`,
      ).to.equal(true);
      expect(
        events.some((e) => e.startsWith('available:')),
        `events: ${events.join(', ')}`,
      ).to.equal(true);
      const tasks = (await c.getTasks()).map((t) => t.toJSON());
      expect(tasks.every((t) => t.state === 'succeeded')).to.equal(true);
      for (const [name, t] of beforeOutage)
        expect(tasks.find((x) => x.name === name)!.result, name).to.deep.equal(t.result);
      expect(await c.reconcile()).to.equal(false);
      // Attempts of this very runner that were taken back by lease expiry: claims whose reply was lost.
      const orphaned = tasks.flatMap((t) =>
        t.failures
          .filter((f) => f.code === 'LEASE_EXPIRED' && f.workerId === client.workerId)
          .map(() => t.name),
      );
      console.log(
        `[reliability] outage: server stopped for 3 s with ${beforeOutage.size}/24 steps done; run finished 'succeeded' ${(afterRestart / 1000).toFixed(1)} s after the restart, 24/24 results kept, ${orphaned.length} orphaned claim(s) recovered only by lease expiry${orphaned.length ? ` (${orphaned.join(', ')})` : ''}, events: ${[...new Set(events)].join(', ')}; http: ${httpSeen.join(', ')}`,
      );
      await http.close();
      untrackHttp();
      await client.close();
    } finally {
      await conn.close(true);
      untrackConn();
      await server?.stop();
      untrackServer();
      tmp.remove();
    }
  });

  it('fails clearly when the server is unreachable at start-up', async function () {
    const port = await findFreePort();
    const client = createClient({ uri: `mongodb://127.0.0.1:${port}/nothing?serverSelectionTimeoutMS=1500` });
    const untrack = trackResource('unreachable client', () => client.close());
    const t0 = Date.now();
    let err: unknown = null;
    try {
      await client.getOrCreateTaskContainer('x');
    } catch (e) {
      err = e;
    } finally {
      await client.close().catch(() => undefined);
      untrack();
    }
    const ms = Date.now() - t0;
    const e = err as Error;
    console.log(
      `[reliability] outage: unreachable server at start-up -> ${e?.name}${err instanceof PtsError ? ` (${err.code})` : ''}: ${String(e?.message).slice(0, 200)} after ${ms} ms`,
    );
    expect(err, 'an unreachable server must fail the call').to.be.instanceOf(Error);
    expect(ms).to.be.below(20_000);
    expect(err instanceof PtsError ? err.code : e.name).to.match(
      /PTS_DATABASE|MongoServerSelectionError|MongooseServerSelectionError/,
    );
    expect(e.message).to.match(new RegExp(`127\\.0\\.0\\.1:${port}|ECONNREFUSED`));
  });
});
