/**
 * Retention policies (lib/retention.ts, lib/store/retention.ts) on the real server, with the
 * injected ManualClock: what the sweep deletes (and its tombstones in the changes feed), what it
 * never touches (unfinished containers of any age, one re-opened between the read and the
 * delete), keep-last-K runs of a pipeline, the batch bound per sweep, and a dry run that lists
 * exactly what the real pass then deletes.
 */
import { expect } from 'chai';
import { createClient, ManualClock, ValidationError, type Change, type Client } from '../lib';
import { useTestDatabase } from './helpers/db';
import { startFixture, type HttpFixture } from './http/support';

const DAY = 86_400_000;

describe('retention', function () {
  const db = useTestDatabase();
  let client: Client;
  let clock: ManualClock;
  let n = 0;
  let prefix: string;

  beforeEach(async function () {
    clock = new ManualClock(Date.parse('2026-03-01T00:00:00Z'));
    client = createClient({ connection: db.connection, clock, workerId: 'w', sweepIntervalMs: 0 });
    await client.ensureIndexes();
    prefix = `ret${++n}/`;
  });
  afterEach(async function () {
    for (const p of await client.listRetentionPolicies()) await client.deleteRetentionPolicy(p.prefix);
    await client.close();
  });

  /** A container under `prefix` whose tasks all end `how` (succeeded, failed or cancelled). */
  async function finished(name: string, how: 'succeeded' | 'failed' | 'cancelled', tasks = 2) {
    const c = await client.getOrCreateTaskContainer(prefix + name);
    await c.addTasks(Array.from({ length: tasks }, (_, i) => ({ name: `t${i}` })));
    if (how === 'cancelled') await c.cancel();
    else
      await c.run(() => {
        if (how === 'failed') throw Object.assign(new Error('boom'), { retryable: false });
      });
    expect((await c.summary()).status).to.equal(how);
    return c;
  }
  const exists = async (name: string) => (await client.getTaskContainer(prefix + name)) !== null;
  const names = (xs: Array<{ container: string }>) => xs.map((x) => x.container.slice(prefix.length)).sort();
  /** The feed under `prefix`, read once the last write's second is behind the feed's horizon (its timestamps have second resolution). */
  async function feed(): Promise<Change[]> {
    await new Promise((r) => setTimeout(r, 1100));
    const out: Change[] = [];
    let since: string | null = null;
    for (;;) {
      const p = await client.changes({ prefixes: [prefix], since, limit: 1000, horizonMs: 0 });
      out.push(...p.changes);
      if (p.changes.length === 0) return out;
      since = p.next;
    }
  }
  const codeOf = (p: Promise<unknown>) =>
    p.then(
      () => 'resolved',
      (e: { code?: string }) => e.code ?? String(e),
    );

  it('refuses bad policies with a typed error (PTS_VALIDATION) and stores nothing', async function () {
    for (const bad of [
      { succeededDays: -1 },
      { failedDays: 0 },
      { succeededDays: Number.NaN },
      { cancelledDays: '3' },
      { keepLastRuns: 0 },
      { keepLastRuns: 1.5 },
      { days: 3 },
      { succeededDays: 1, extra: true },
    ]) {
      const err = await client.setRetentionPolicy(prefix, bad as never).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err, JSON.stringify(bad)).to.be.instanceOf(ValidationError);
      expect((err as ValidationError).code).to.equal('PTS_VALIDATION');
    }
    expect(await codeOf(client.setRetentionPolicy(42 as never, { succeededDays: 1 }))).to.equal(
      'PTS_VALIDATION',
    );
    expect(await codeOf(client.setRetentionPolicy('a\u0000', { succeededDays: 1 }))).to.equal(
      'PTS_VALIDATION',
    );
    expect(await codeOf(client.applyRetention({ limit: 0 }))).to.equal('PTS_VALIDATION');
    expect(await codeOf(client.applyRetention({ dryrun: true } as never))).to.equal('PTS_VALIDATION');
    expect(await codeOf(client.recoverStale({ retentionLimit: -1 }))).to.equal('PTS_VALIDATION');
    expect(await client.listRetentionPolicies()).to.deep.equal([]);
  });

  it('set replaces the policy of a prefix, list returns them by prefix, delete removes one', async function () {
    const a = await client.setRetentionPolicy(prefix, { succeededDays: 7, failedDays: 30 });
    expect(a).to.include({
      prefix,
      succeededDays: 7,
      failedDays: 30,
      cancelledDays: null,
      keepLastRuns: null,
    });
    await client.setRetentionPolicy(prefix + 'x/', { keepLastRuns: 5 });
    const b = await client.setRetentionPolicy(prefix, { succeededDays: 0.5 });
    expect(b).to.include({ succeededDays: 0.5, failedDays: null });
    expect(b.createdAt.getTime()).to.equal(a.createdAt.getTime());
    expect(
      (await client.listRetentionPolicies()).map((p) => [p.prefix, p.succeededDays, p.keepLastRuns]),
    ).to.deep.equal([
      [prefix, 0.5, null],
      [prefix + 'x/', null, 5],
    ]);
    expect(await client.deleteRetentionPolicy(prefix + 'x/')).to.equal(true);
    expect(await client.deleteRetentionPolicy(prefix + 'x/')).to.equal(false);
    expect((await client.listRetentionPolicies()).map((p) => p.prefix)).to.deep.equal([prefix]);
  });

  it('the sweep deletes succeeded/failed/cancelled containers past their days (database time, from the finish), with tombstones in the feed, tasks and events', async function () {
    await client.setRetentionPolicy(prefix, { succeededDays: 2, failedDays: 5 });
    await finished('s-old', 'succeeded');
    await finished('f-old', 'failed');
    await finished('c-old', 'cancelled');
    clock.advance(3 * DAY);
    await finished('s-new', 'succeeded');
    const deleted: string[] = [];
    client.on('container:deleted', (e) => deleted.push(e.container));
    // 3 days after the first three finished: only the succeeded one is past its 2 days.
    let report = await client.recoverStale();
    expect(names((report.pruned ?? []).map((c) => ({ container: c })))).to.deep.equal(['s-old']);
    expect(await exists('s-old')).to.equal(false);
    expect(await exists('f-old')).to.equal(true);
    clock.advance(2 * DAY + 1000);
    // 5 days: failed goes, and cancelled (no cancelledDays: it follows failedDays); s-new too (2 days).
    report = await client.recoverStale();
    expect(names((report.pruned ?? []).map((c) => ({ container: c })))).to.deep.equal([
      'c-old',
      'f-old',
      's-new',
    ]);
    expect(names(deleted.map((c) => ({ container: c })))).to.deep.equal(['c-old', 'f-old', 's-new', 's-old']);
    for (const x of ['s-old', 'f-old', 'c-old', 's-new']) expect(await exists(x)).to.equal(false);
    // Tasks gone with them; a deletion entry per container in the changes feed.
    const tasks = await db.connection
      .db!.collection('pts_tasks')
      .countDocuments({ container: { $regex: `^${prefix}` } });
    expect(tasks).to.equal(0);
    const gone = (await feed()).filter((c) => c.deleted && c.kind === 'container');
    expect(names(gone)).to.deep.equal(['c-old', 'f-old', 's-new', 's-old']);
    expect((await client.recoverStale()).pruned).to.deep.equal([]);
  });

  it('never touches an unfinished container, whatever its age; longest prefix governs', async function () {
    await client.setRetentionPolicy(prefix, { succeededDays: 1, failedDays: 1 });
    await client.setRetentionPolicy(prefix + 'keep/', {});
    const pending = await client.getOrCreateTaskContainer(prefix + 'pending');
    await pending.addTasks([{ name: 'a' }]);
    const running = await client.getOrCreateTaskContainer(prefix + 'running');
    await running.addTasks([{ name: 'a' }, { name: 'b' }]);
    const lease = (await client.claimNext({ container: running.name() }))!;
    await lease.succeed();
    await client.claimNext({ container: running.name() }, { owner: 'w', leaseMs: 7 * DAY });
    await finished('keep/done', 'succeeded');
    await finished('done', 'succeeded');
    clock.advance(100 * DAY);
    const report = await client.applyRetention({ limit: 1000 });
    expect(names(report.containers)).to.deep.equal(['done']);
    for (const x of ['pending', 'running', 'keep/done']) expect(await exists(x), x).to.equal(true);
    expect((await running.summary()).status).to.equal('running');
  });

  it('a container re-opened (or written) between the read and the delete survives, its tombstone withdrawn', async function () {
    await client.setRetentionPolicy(prefix, { succeededDays: 1 });
    const reopened = await finished('reopened', 'succeeded');
    const touched = await finished('touched', 'succeeded');
    await finished('plain', 'succeeded');
    clock.advance(2 * DAY);
    const all = await client.core.store.listRetentionPolicies();
    const { candidates } = await client.core.store.retentionCandidates(all, all, 100);
    expect(candidates.map((c) => c.name.slice(prefix.length)).sort()).to.deep.equal([
      'plain',
      'reopened',
      'touched',
    ]);
    // Between the read and the delete: tasks added (the container runs again), metadata written.
    await reopened.addTasks([{ name: 'more' }]);
    expect((await reopened.summary()).status).to.not.equal('succeeded');
    await touched.setMetadata({ note: 'looked at' });
    const results = new Map<string, number | null>();
    for (const c of candidates)
      results.set(c.name.slice(prefix.length), await client.core.store.purgeContainer(c));
    expect(results.get('reopened')).to.equal(null);
    expect(results.get('touched')).to.equal(null);
    expect(results.get('plain')).to.equal(2);
    expect(await exists('reopened')).to.equal(true);
    expect((await reopened.getTasks()).map((t) => t.name()).sort()).to.deep.equal(['more', 't0', 't1']);
    expect(await exists('touched')).to.equal(true);
    expect(names((await feed()).filter((c) => c.deleted))).to.deep.equal(['plain']);
  });

  it('keepLastRuns keeps the newest K runs of each pipeline and deletes the older finished ones', async function () {
    const pipeline = `${prefix}pipe`;
    client.definePipeline(pipeline, { tasks: [{ name: 'step' }] });
    await client.schedule(pipeline, { cron: '0 0 1 1 *' });
    const containers: string[] = [];
    for (let i = 0; i < 5; i++) {
      clock.advance(60_000);
      const r = await client.triggerSchedule(pipeline);
      expect(r.status).to.equal('started');
      containers.push(r.container);
      await (await client.getTaskContainer(r.container))!.run(() => undefined);
    }
    // A sixth run still running: never deleted, and it counts as one of the newest.
    clock.advance(60_000);
    const open = await client.triggerSchedule(pipeline);
    await client.setRetentionPolicy(prefix, { keepLastRuns: 3 });
    const dry = await client.applyRetention({ dryRun: true });
    expect(dry.containers.map((c) => c.container)).to.have.members(containers.slice(0, 3));
    expect(dry.containers.every((c) => c.reason === 'keepLastRuns')).to.equal(true);
    const real = await client.applyRetention();
    expect(real.containers.map((c) => c.container)).to.deep.equal(dry.containers.map((c) => c.container));
    for (const c of containers.slice(0, 3)) expect(await client.getTaskContainer(c)).to.equal(null);
    for (const c of [...containers.slice(3), open.container])
      expect(await client.getTaskContainer(c)).to.not.equal(null);
    // The run records stay (the history), their container gone.
    const runs = (await client.listRuns(pipeline, { limit: 100 })).items;
    expect(runs).to.have.length(6);
    expect((await client.applyRetention()).containers).to.deep.equal([]);
  });

  it('a sweep deletes at most retentionLimit containers (the batch bound), the next sweep goes on', async function () {
    await client.setRetentionPolicy(prefix, { succeededDays: 1 });
    for (let i = 0; i < 7; i++) await finished(`b${i}`, 'succeeded', 1);
    clock.advance(2 * DAY);
    let deletes = 0;
    client.on('container:deleted', () => deletes++);
    const perSweep: number[] = [];
    for (let i = 0; i < 4; i++) {
      deletes = 0;
      const r = await client.recoverStale({ retentionLimit: 3 });
      expect(r.pruned).to.have.length(deletes);
      perSweep.push(deletes);
    }
    expect(perSweep).to.deep.equal([3, 3, 1, 0]);
    expect(await client.recoverStale({ retentionLimit: 0 })).to.include({ unblocked: 0 });
  });

  it('a dry run changes nothing and lists exactly what the real pass then deletes', async function () {
    await client.setRetentionPolicy(prefix, { succeededDays: 1, failedDays: 3 });
    for (let i = 0; i < 4; i++) await finished(`s${i}`, 'succeeded', 1);
    await finished('f', 'failed', 1);
    clock.advance(2 * DAY);
    await finished('young', 'succeeded', 1);
    const count = () =>
      db.connection.db!.collection('pts_containers').countDocuments({ name: { $regex: `^${prefix}` } });
    const tombstones = () =>
      db.connection.db!.collection('pts_tombstones').countDocuments({ container: { $regex: `^${prefix}` } });
    const before = [await count(), await tombstones()];
    const dry = await client.applyRetention({ dryRun: true, limit: 3 });
    expect(dry.dryRun).to.equal(true);
    expect(dry.containers).to.have.length(3);
    expect([await count(), await tombstones()]).to.deep.equal(before);
    const real = await client.applyRetention({ limit: 3 });
    expect(real.containers.map((c) => c.container)).to.deep.equal(dry.containers.map((c) => c.container));
    expect(await count()).to.equal(before[0] - 3);
    const rest = await client.applyRetention({ dryRun: true, limit: 100 });
    expect(names(rest.containers)).to.have.length(1);
    expect(names((await client.applyRetention({ limit: 100 })).containers)).to.deep.equal(
      names(rest.containers),
    );
    expect(await exists('f')).to.equal(true);
    expect(await exists('young')).to.equal(true);
  });

  it('a guarded delete interrupted after the container went is finished by the next pass (tasks and logs)', async function () {
    await client.setRetentionPolicy(prefix, { succeededDays: 1 });
    const c = await finished('crashed', 'succeeded');
    const raw = db.connection.db!;
    const doc = await raw.collection('pts_containers').findOne({ name: c.name() });
    // What a crash right after the container's deleteOne leaves: a purging tombstone, the tasks.
    await raw.collection('pts_tombstones').insertOne({
      _id: doc!._id,
      kind: 'container',
      container: c.name(),
      containerId: doc!._id,
      task: null,
      deletedAt: clock.now(),
      purging: true,
    });
    await raw.collection('pts_containers').deleteOne({ _id: doc!._id });
    expect(await raw.collection('pts_tasks').countDocuments({ containerId: doc!._id })).to.equal(2);
    await client.applyRetention();
    expect(await raw.collection('pts_tasks').countDocuments({ containerId: doc!._id })).to.equal(0);
    expect(await raw.collection('pts_tombstones').countDocuments({ _id: doc!._id, purging: true })).to.equal(
      0,
    );
  });
});

describe('retention over HTTP (admin scope, prefix-confined)', function () {
  const db = useTestDatabase();
  let fx: HttpFixture;
  let team: string;

  before(async function () {
    fx = await startFixture(db);
    team = (await fx.tokens.create({ scope: 'admin', prefix: 'team-', name: 'team admin' })).token;
  });
  after(async function () {
    await fx.close();
  });
  afterEach(async function () {
    for (const p of await fx.client.listRetentionPolicies()) await fx.client.deleteRetentionPolicy(p.prefix);
  });

  it('PUT/GET/DELETE policies and POST apply (dry run and real), with typed errors for bad bodies', async function () {
    const put = await fx.call('PUT', '/api/v1/retention/policies', {
      body: { prefix: 'http-', succeededDays: 7, keepLastRuns: 3 },
    });
    expect(put.status).to.equal(200);
    expect(put.body).to.include({
      prefix: 'http-',
      succeededDays: 7,
      failedDays: null,
      cancelledDays: null,
      keepLastRuns: 3,
    });
    const list = await fx.call('GET', '/api/v1/retention/policies');
    expect(list.body.items.map((p: { prefix: string }) => p.prefix)).to.deep.equal(['http-']);
    for (const bad of [
      { prefix: 'http-', succeededDays: -1 },
      { prefix: 'http-', days: 3 },
      { succeededDays: 3 },
      { prefix: 'http-', keepLastRuns: 0 },
    ]) {
      const r = await fx.call('PUT', '/api/v1/retention/policies', { body: bad });
      expect(r.status, JSON.stringify(bad)).to.equal(400);
      expect(r.body.error.code).to.equal('PTS_VALIDATION');
    }
    expect((await fx.client.listRetentionPolicies()).map((p) => [p.prefix, p.succeededDays])).to.deep.equal([
      ['http-', 7],
    ]);
    const dry = await fx.call('POST', '/api/v1/retention/apply', { body: { dryRun: true } });
    expect(dry.status).to.equal(200);
    expect(dry.body).to.deep.equal({ dryRun: true, containers: [], kept: [], tasks: 0 });
    expect((await fx.call('POST', '/api/v1/retention/apply', { body: { limit: 0 } })).status).to.equal(400);
    expect(
      (
        await fx.call('PUT', '/api/v1/retention/policies', {
          token: fx.token.read,
          body: { prefix: 'http-', succeededDays: 1 },
        })
      ).status,
    ).to.equal(403);
    expect((await fx.call('DELETE', '/api/v1/retention/policies?prefix=http-')).status).to.equal(204);
    expect((await fx.call('DELETE', '/api/v1/retention/policies?prefix=http-')).status).to.equal(404);
  });

  it("a token limited to 'team-' sets, sees, deletes and applies only policies inside its prefix (403 outside, nothing changed)", async function () {
    await fx.client.setRetentionPolicy('other-', { succeededDays: 1 });
    for (const prefix of ['other-', '', 'team']) {
      const r = await fx.call('PUT', '/api/v1/retention/policies', {
        token: team,
        body: { prefix, succeededDays: 2 },
      });
      expect(r.status, prefix).to.equal(403);
      expect(r.body.error.code).to.equal('PTS_FORBIDDEN');
    }
    expect(
      (await fx.call('DELETE', '/api/v1/retention/policies?prefix=other-', { token: team })).status,
    ).to.equal(403);
    expect(
      (
        await fx.call('PUT', '/api/v1/retention/policies', {
          token: team,
          body: { prefix: 'team-a/', failedDays: 2 },
        })
      ).status,
    ).to.equal(200);
    expect(
      (await fx.call('GET', '/api/v1/retention/policies', { token: team })).body.items.map(
        (p: { prefix: string }) => p.prefix,
      ),
    ).to.deep.equal(['team-a/']);
    expect(
      (await fx.client.listRetentionPolicies()).map((p) => [p.prefix, p.succeededDays, p.failedDays]),
    ).to.deep.equal([
      ['other-', 1, null],
      ['team-a/', null, 2],
    ]);
    // The pass a team token asks for applies the team's policies only: other-'s old container stays.
    const clock = new ManualClock();
    const local = createClient({ connection: db.connection, clock, sweepIntervalMs: 0 });
    try {
      for (const name of ['other-x', 'team-a/x']) {
        const c = await local.getOrCreateTaskContainer(name);
        await c.addTasks([{ name: 't' }]);
        await c.run(() => {
          if (name.startsWith('team')) throw Object.assign(new Error('no'), { retryable: false });
        });
      }
    } finally {
      await local.close();
    }
    // Their finish times are in the past of the server's clock by 3 days: backdate them.
    await db.connection
      .db!.collection('pts_containers')
      .updateMany(
        { name: { $in: ['other-x', 'team-a/x'] } },
        { $set: { endedAt: new Date(Date.now() - 3 * DAY) } },
      );
    const r = await fx.call('POST', '/api/v1/retention/apply', { token: team, body: { dryRun: false } });
    expect(r.status).to.equal(200);
    expect(r.body.containers.map((c: { container: string }) => c.container)).to.deep.equal(['team-a/x']);
    expect(await fx.client.getTaskContainer('other-x')).to.not.equal(null);
    expect(await fx.client.getTaskContainer('team-a/x')).to.equal(null);
  });
});

describe('retention in the CLI (pts retention, pts prune --policy; in process)', function () {
  const db = useTestDatabase();
  let client: Client;

  /** Runs `pts <args>` in this process (runCli), capturing stdout and stderr. */
  async function pts(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    const { runCli } = await import('../lib/cli/program');
    let stdout = '';
    let stderr = '';
    const w = { out: process.stdout.write, err: process.stderr.write };
    process.stdout.write = ((s: string) => ((stdout += s), true)) as typeof process.stdout.write;
    process.stderr.write = ((s: string) => ((stderr += s), true)) as typeof process.stderr.write;
    try {
      const code = await runCli(['--mongodb-uri', db.uri, ...args]);
      return { code, stdout, stderr };
    } finally {
      process.stdout.write = w.out;
      process.stderr.write = w.err;
    }
  }

  before(async function () {
    client = createClient({ connection: db.connection, sweepIntervalMs: 0 });
    await client.ensureIndexes();
  });
  after(async function () {
    await client.close();
  });

  it('retention set/list/delete; bad numbers exit 2 and change nothing', async function () {
    const set = await pts([
      'retention',
      'set',
      'cli-',
      '--succeeded-days',
      '1',
      '--failed-days',
      '3',
      '--json',
    ]);
    expect(set.code, set.stderr).to.equal(0);
    expect(JSON.parse(set.stdout)).to.include({
      prefix: 'cli-',
      succeededDays: 1,
      failedDays: 3,
      keepLastRuns: null,
    });
    for (const bad of [
      ['--succeeded-days', '-1'],
      ['--failed-days', 'soon'],
      ['--keep-last-runs', '0'],
    ]) {
      const r = await pts(['retention', 'set', 'cli-', ...bad]);
      expect(r.code, bad.join(' ')).to.equal(2);
      expect(r.stderr).to.match(/^pts: /);
    }
    const list = await pts(['retention', 'list', '--json']);
    expect(
      JSON.parse(list.stdout).map((p: { prefix: string; succeededDays: number }) => [
        p.prefix,
        p.succeededDays,
      ]),
    ).to.deep.equal([['cli-', 1]]);
    const text = await pts(['retention', 'list']);
    expect(text.stdout)
      .to.match(/PREFIX\s+SUCCEEDED/)
      .and.match(/cli-\s+1d\s+3d\s+\(3d\)\s+-/);
    expect((await pts(['retention', 'delete', 'cli-'])).code).to.equal(0);
    expect((await pts(['retention', 'delete', 'cli-'])).code).to.equal(1);
  });

  it('prune --policy --dry-run lists what prune --policy --yes then deletes, and changes nothing', async function () {
    await client.setRetentionPolicy('clip-', { succeededDays: 2 });
    for (const n of ['clip-old', 'clip-new']) {
      const c = await client.getOrCreateTaskContainer(n);
      await c.addTasks([{ name: 't' }]);
      await c.run(() => undefined);
    }
    await db.connection
      .collection('pts_containers')
      .updateOne({ name: 'clip-old' }, { $set: { endedAt: new Date(Date.now() - 3 * DAY) } });
    const dry = await pts(['prune', '--policy', '--dry-run', '--json']);
    expect(dry.code, dry.stderr).to.equal(0);
    const listed = JSON.parse(dry.stdout);
    expect(listed).to.include({ dryRun: true, tasks: 0 });
    expect(listed.containers.map((c: { container: string }) => c.container)).to.deep.equal(['clip-old']);
    expect(await client.getTaskContainer('clip-old')).to.not.equal(null);
    const plain = await pts(['prune', '--policy']);
    expect(plain.stdout)
      .to.match(/clip-old\s+succeeded/)
      .and.match(/dry run: would delete 1 container/);
    expect((await pts(['prune', '--policy', '--dry-run', '--yes'])).code).to.equal(2);
    expect((await pts(['prune'])).code).to.equal(2);
    const real = await pts(['prune', '--policy', '--yes', '--json']);
    expect(real.code, real.stderr).to.equal(0);
    expect(JSON.parse(real.stdout).containers.map((c: { container: string }) => c.container)).to.deep.equal([
      'clip-old',
    ]);
    expect(await client.getTaskContainer('clip-old')).to.equal(null);
    expect(await client.getTaskContainer('clip-new')).to.not.equal(null);
  });
});
