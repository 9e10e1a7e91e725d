/**
 * The `pts` CLI as a real process against the test database: output formats, effects in the
 * database, exit codes, prune, tokens and the demo end to end.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { expect } from 'chai';
import { createClient, type Client } from '../lib';
import { Out, displayName } from '../lib/cli/output';
import { taskLines } from '../lib/cli/render';
import { useTestDatabase } from './helpers/db';
import { trackResource } from './helpers/leaks';

const ROOT = path.join(__dirname, '..');
const MAIN = path.join(ROOT, 'lib', 'cli', 'main.ts');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

function pts(args: string[], env: Record<string, string | undefined> = {}, timeoutMs = 45_000): Promise<Run> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
      cwd: ROOT,
      env: { ...process.env, NO_COLOR: '1', PTS_CONNECT_TIMEOUT_MS: '1500', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const untrack = trackResource(`pts ${args.join(' ')}`, () => child.kill('SIGKILL'));
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      untrack();
      resolve({ code, stdout, stderr, ms: Date.now() - started });
    });
  });
}

describe('pts CLI', function () {
  this.timeout(60_000);
  const db = useTestDatabase();
  let client: Client;
  const cli = (args: string[], env: Record<string, string | undefined> = {}) =>
    pts(args, { MONGODB_URI: db.uri, ...env });

  before(async function () {
    client = createClient({ connection: db.connection });
    const ok = await client.getOrCreateTaskContainer('cli-ok');
    await ok.addTasks([{ name: 'fetch' }, { name: 'load', dependsOn: ['fetch'] }]);
    await ok.run({ fetch: () => 1, load: () => 2 });
    const bad = await client.getOrCreateTaskContainer('cli-bad');
    await bad.addTasks([
      { name: 'boom', maxRetries: 0 },
      { name: 'after', dependsOn: ['boom'] },
    ]);
    await bad.run({
      boom: () => {
        throw new Error('disk full');
      },
      after: () => 1,
    });
  });

  after(async function () {
    await client?.close();
  });

  it('lists containers as text and as JSON', async function () {
    const [text, json] = await Promise.all([
      cli(['status']),
      cli(['status', '--json', '--status', 'failed']),
    ]);
    expect(text.code, text.stderr).to.equal(0);
    const lines = text.stdout.trim().split('\n');
    expect(lines[0].split('\t').slice(0, 3)).to.deep.equal(['CONTAINER', 'STATUS', 'PROGRESS']);
    expect(lines.find((l) => l.startsWith('cli-ok\t'))).to.match(/^cli-ok\tsucceeded\t100\.0%\t2\t/);
    expect(text.stdout).to.not.include('\u001b['); // no colours on a pipe

    expect(json.code, json.stderr).to.equal(0);
    const page = JSON.parse(json.stdout) as { items: Array<{ name: string; status: string }> };
    expect(page.items.map((c) => c.name)).to.deep.equal(['cli-bad']);
  });

  it('shows one container with its tasks and the last failure', async function () {
    const [text, json] = await Promise.all([
      cli(['status', 'cli-bad']),
      cli(['status', 'cli-bad', '--json']),
    ]);
    expect(text.code, text.stderr).to.equal(0);
    expect(text.stdout).to.match(/boom\tfailed\t0%\t1\t/);
    expect(text.stdout).to.include('boom failed after 1 attempt(s): disk full');
    const body = JSON.parse(json.stdout) as {
      container: { status: string };
      tasks: Array<{ name: string; failures: Array<{ message: string }> }>;
    };
    expect(body.container.status).to.equal('failed');
    expect(body.tasks.find((t) => t.name === 'boom')!.failures[0].message).to.equal('disk full');
  });

  it('shows names with invisible characters escaped; cut only on a terminal', async function () {
    const rtl = 'cli-rtl-\u202Egnp.exe';
    const long = `cli-long-${'n'.repeat(503)}`;
    const c = await client.getOrCreateTaskContainer(rtl);
    await c.addTasks([{ name: 'zw\u200Bspace' }, { name: long }]);
    await client.getOrCreateTaskContainer(long);
    const list = await cli(['status', '--prefix', 'cli-']);
    expect(list.code, list.stderr).to.equal(0);
    expect(list.stdout).to.include('cli-rtl-\\u202Egnp.exe\t');
    expect(list.stdout).not.to.include('\u202E');
    expect(list.stdout).to.include(`${long}\t`); // a pipe gets the whole name
    const one = await cli(['status', rtl]);
    expect(one.code, one.stderr).to.equal(0);
    expect(one.stdout).to.include('zw\\u200Bspace\t');
    expect(one.stdout).not.to.include('\u202E');
    // JSON keeps names exactly as stored.
    const json = JSON.parse((await cli(['status', rtl, '--json'])).stdout);
    expect(json.container?.name ?? json.name ?? JSON.stringify(json)).to.include('\u202E');

    // On a terminal: escaped in reverse video, cut with an ellipsis.
    const tty = new Out({ isTTY: true, columns: 120, write: () => true } as unknown as NodeJS.WriteStream);
    expect(displayName(tty, 'a\u202Eb')).to.match(/^a.*\\u202E.*b$/);
    expect(displayName(tty, long, 48)).to.have.length(48);
    expect(displayName(tty, long, 48).endsWith('…')).to.equal(true);
    expect(displayName(tty, 'short', 48)).to.equal('short');
    const pipe = new Out({ isTTY: false, write: () => true } as unknown as NodeJS.WriteStream);
    expect(displayName(pipe, long, 48)).to.equal(long);
    expect(displayName(pipe, 'x\u2066y\u00a0z\u{E0041}')).to.equal('x\\u2066y\\u00A0z\\u{E0041}');
    const lines = taskLines(tty, [
      (await c.getTask(long))!.toJSON(),
      (await c.getTask('zw\u200Bspace'))!.toJSON(),
    ]);
    for (const l of lines) expect(l).not.to.match(/[\t\n\u202E]/);
    expect(lines[0]).to.include('…');
  });

  it('retry, cancel and reset change the task in the database', async function () {
    const c = (await client.getTaskContainer('cli-bad'))!;
    const state = async (t: string) => (await c.getTask(t))!.toJSON().state;
    let r = await cli(['retry', 'cli-bad', 'boom']);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.include('retried 1 task in cli-bad (boom)');
    expect(await state('boom')).to.equal('pending');
    r = await cli(['cancel', 'cli-bad', '--json']);
    expect(r.code, r.stderr).to.equal(0);
    expect(JSON.parse(r.stdout).affected).to.equal(2);
    expect(await state('boom')).to.equal('cancelled');
    expect(await state('after')).to.equal('cancelled');
    r = await cli(['reset', 'cli-bad', 'boom']);
    expect(r.code, r.stderr).to.equal(0);
    expect(await state('boom')).to.equal('pending');
    r = await cli(['reset', 'cli-bad', 'no-such-task']);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.match(/no-such-task/);
  });

  it('skip and delete act on one task, and refuse what the transition table refuses', async function () {
    const c = await client.getOrCreateTaskContainer('cli-skip');
    await c.addTasks([{ name: 'a' }, { name: 'b', dependsOn: ['a'] }, { name: 'c' }]);
    const state = async (t: string) => (await c.getTask(t))?.toJSON().state ?? null;
    const [skipped, noTask] = await Promise.all([cli(['skip', 'cli-skip', 'a']), cli(['skip', 'cli-skip'])]);
    expect(skipped.code, skipped.stderr).to.equal(0);
    expect(skipped.stdout).to.include('skipped 1 task in cli-skip (a)');
    expect(await state('a')).to.equal('skipped');
    expect(noTask.code).to.equal(2); // skip needs a task name
    const [again, dependedOn] = await Promise.all([
      cli(['skip', 'cli-skip', 'a']),
      cli(['delete', 'cli-skip', 'a', '--json']),
    ]);
    expect(again.code).to.equal(1);
    expect(again.stderr).to.match(/skipped/); // InvalidTransitionError: it is skipped already
    expect(dependedOn.code).to.equal(1);
    expect(dependedOn.stderr).to.match(/depends on/);
    const deleted = await cli(['delete', 'cli-skip', 'c', '--json']);
    expect(deleted.code, deleted.stderr).to.equal(0);
    expect(JSON.parse(deleted.stdout)).to.deep.equal({
      container: 'cli-skip',
      task: 'c',
      action: 'delete',
      affected: 1,
    });
    expect(await state('c')).to.equal(null);
    expect(await state('a')).to.equal('skipped');
  });

  it('resume recovers a task whose worker died', async function () {
    const c = await client.getOrCreateTaskContainer('cli-resume');
    await c.addTasks([{ name: 'long' }]);
    const lease = await client.claimNext(
      { container: 'cli-resume' },
      { owner: 'dead-worker', leaseMs: 60_000 },
    );
    expect(lease).to.not.equal(null);
    // The worker "died": backdate its lease instead of waiting for it.
    await db.connection
      .collection('pts_tasks')
      .updateOne(
        { container: 'cli-resume', name: 'long' },
        { $set: { 'lease.expiresAt': new Date(Date.now() - 60_000) } },
      );
    const r = await cli(['resume', 'cli-resume', '--json']);
    expect(r.code, r.stderr).to.equal(0);
    const report = JSON.parse(r.stdout) as {
      recovered: Array<{ task: string; owner: string; state: string }>;
    };
    expect(report.recovered).to.deep.equal([
      { container: 'cli-resume', task: 'long', owner: 'dead-worker', state: 'pending' },
    ]);
    expect((await c.getTask('long'))!.toJSON().state).to.equal('pending');
  });

  it('watch exits 0 for a finished container and 1 for a failed one', async function () {
    const ok = await cli(['watch', 'cli-ok']);
    expect(ok.code, ok.stderr).to.equal(0);
    expect(ok.stdout).to.match(/cli-ok\s+succeeded/);
    const fresh = await client.getOrCreateTaskContainer('cli-watch-failed');
    await fresh.addTasks([{ name: 'x', maxRetries: 0 }]);
    await fresh.run({
      x: () => {
        throw new Error('bad');
      },
    });
    const failed = await cli(['watch', 'cli-watch-failed']);
    expect(failed.code).to.equal(1);
  });

  it('prune lists in dry-run mode and deletes only with --yes', async function () {
    for (const n of ['cli-old', 'cli-recent']) {
      const c = await client.getOrCreateTaskContainer(n);
      await c.addTasks([{ name: 't' }]);
      await c.run({ t: () => 1 });
    }
    const old = new Date(Date.now() - 10 * 86_400_000);
    await db.connection
      .collection('pts_containers')
      .updateOne({ name: 'cli-old' }, { $set: { endedAt: old, updatedAt: old } });

    const dry = await cli(['prune', '--older-than', '7d', '--prefix', 'cli-', '--json']);
    expect(dry.code, dry.stderr).to.equal(0);
    expect(JSON.parse(dry.stdout))
      .to.include({ dryRun: true })
      .and.to.have.deep.property('wouldDelete', ['cli-old']);
    expect(await client.getTaskContainer('cli-old')).to.not.equal(null);

    // Deletion records: an old one under the prefix (removed), an old one outside it and a
    // recent one (kept).
    const tomb = db.connection.collection('pts_tombstones');
    const { ObjectId, Timestamp } = await import('mongodb');
    const ts = new Timestamp({ t: 1, i: 1 });
    await tomb.insertMany([
      {
        _id: new ObjectId(),
        kind: 'container',
        container: 'cli-gone',
        containerId: new ObjectId(),
        task: null,
        deletedAt: old,
        changedAt: ts,
      },
      {
        _id: new ObjectId(),
        kind: 'container',
        container: 'other-gone',
        containerId: new ObjectId(),
        task: null,
        deletedAt: old,
        changedAt: ts,
      },
      {
        _id: new ObjectId(),
        kind: 'container',
        container: 'cli-fresh',
        containerId: new ObjectId(),
        task: null,
        deletedAt: new Date(),
        changedAt: ts,
      },
    ]);

    const real = await cli(['prune', '--older-than', '7d', '--prefix', 'cli-', '--yes']);
    expect(real.code, real.stderr).to.equal(0);
    expect(real.stdout).to.include('deleted cli-old');
    expect(real.stdout).to.include('removed 1 deletion record(s)');
    expect(await client.getTaskContainer('cli-old')).to.equal(null);
    expect(await client.getTaskContainer('cli-recent')).to.not.equal(null);
    // (Only this test's records: other tests delete tasks, which leaves deletion records too.)
    const mine = { container: { $in: ['cli-gone', 'other-gone', 'cli-fresh', 'cli-old'] } };
    const left = (await tomb.find(mine, { projection: { container: 1 } }).toArray())
      .map((t) => t.container)
      .sort();
    expect(left).to.deep.equal(['cli-fresh', 'cli-old', 'other-gone']); // cli-old: its own, just written

    const usage = await Promise.all([
      cli(['prune', '--older-than', 'soon']),
      cli(['prune', '--older-than', '1d', '--status', 'running']),
      cli(['prune']),
    ]);
    expect(usage.map((u) => u.code)).to.deep.equal([2, 2, 2]);
  });

  it('creates, lists and revokes API tokens', async function () {
    const created = await cli([
      'token',
      'create',
      '--scope',
      'read',
      '--name',
      'ci-reader',
      '--prefix',
      'cli-',
      '--json',
    ]);
    expect(created.code, created.stderr).to.equal(0);
    const tok = JSON.parse(created.stdout) as { token: string; id: string; scope: string; prefix: string };
    expect(tok).to.include({ scope: 'read', prefix: 'cli-', name: 'ci-reader' });
    expect(tok.token).to.match(/^pts_/);
    const { TokenStore } = await import('../lib/auth');
    expect((await new TokenStore(client).verify(tok.token))?.id).to.equal(tok.id);

    const listed = await cli(['token', 'list']);
    expect(listed.stdout).to.include(tok.id).and.to.include('ci-reader');
    expect(listed.stdout).to.not.include(tok.token);

    const [revoked, unknown, badScope] = await Promise.all([
      cli(['token', 'revoke', tok.id]),
      cli(['token', 'revoke', 'ffffffffffffffff']),
      cli(['token', 'create', '--scope', 'root']),
    ]);
    expect(revoked.code, revoked.stderr).to.equal(0);
    expect(await new TokenStore(client).verify(tok.token)).to.equal(null);
    expect((await cli(['token', 'list'])).stdout).to.not.include(tok.id);
    expect(unknown.code).to.equal(1);
    expect(badScope.code).to.equal(2);
  });

  it('uses exit codes 1 (not found), 2 (usage) and 3 (database unreachable)', async function () {
    const [missing, unknownCommand, missingArg, badLimit, noUri, help] = await Promise.all([
      cli(['status', 'no-such-container']),
      cli(['frobnicate']),
      cli(['retry']),
      cli(['status', '--limit', 'lots']),
      pts(['status'], { MONGODB_URI: '' }),
      cli(['retry', '--help']),
    ]);
    expect(missing.code).to.equal(1);
    expect(missing.stderr).to.include('no container named "no-such-container"');
    expect([unknownCommand.code, missingArg.code, badLimit.code, noUri.code]).to.deep.equal([2, 2, 2, 2]);
    expect(help.code).to.equal(0);
    expect(help.stdout).to.include('Usage: pts retry');

    // Unreachable: exit 3 after the short server-selection timeout (1.5 s here), not the driver's 30 s.
    // Measured against a baseline run of the same process so a loaded machine does not matter.
    const baseline = await pts(['retry', '--help']);
    const down = await pts(['status'], { MONGODB_URI: 'mongodb://127.0.0.1:1/nothing' });
    expect(down.code).to.equal(3);
    expect(down.stderr.trim().split('\n')).to.have.length(1);
    expect(down.stderr).to.match(/cannot reach the database/);
    expect(down.ms - baseline.ms).to.be.below(12_000);
  });

  it('runs the demo end to end: a retried failure and a real crash-resume', async function () {
    const r = await cli(['demo', '--fast', '--exit-when-done', '--no-open', '--port', '0']);
    expect(r.code, `${r.stdout}\n${r.stderr}`).to.equal(0);
    expect(r.stdout).to.match(/dashboard: http:\/\/127\.0\.0\.1:\d+\//);
    expect(r.stdout).to.include('killed worker');
    expect(r.stdout).to.match(/pipeline succeeded in/);
    const page = await client.listContainers({ namePrefix: 'demo-' });
    expect(page.items).to.have.length(1);
    const demo = (await client.getTaskContainer(page.items[0].name))!;
    expect((await demo.summary()).status).to.equal('succeeded');
    const unpack = (await demo.getTask('unpack'))!.toJSON();
    expect(unpack.failures.map((f) => f.kind)).to.deep.equal(['interrupted']);
    expect((unpack.result as { resumedFrom: number }).resumedFrom).to.be.at.least(4);
    const imp = (await demo.getTask('import'))!.toJSON();
    expect(imp.failures.map((f) => f.code)).to.deep.equal(['ECONNRESET']);
    expect(imp.state).to.equal('succeeded');
    // validate fanned out (ctx.spawn): import started only after every shard ended
    const shards = (await demo.listTasks({ parent: 'validate' })).items;
    expect(shards.map((t) => t.name)).to.deep.equal(Array.from({ length: 6 }, (_, i) => `validate/shard-${i + 1}`));
    expect(shards.every((t) => t.state === 'succeeded')).to.equal(true);
    expect(imp.startedAt!.getTime()).to.be.at.least(Math.max(...shards.map((t) => t.endedAt!.getTime())));
    // the schedule part: three backfilled slots and the live ones, run to the end, then the history
    expect(r.stdout).to.include('schedule tick-demo (*/2 * * * * *): backfilled 3 past slots');
    expect(r.stdout).to.match(/run history \(pts runs tick-demo\)/);
    const runs = (await client.listRuns('tick-demo')).items;
    expect(runs.filter((x) => x.status === 'finished' && x.outcome === 'succeeded').length).to.be.at.least(5);
    expect(runs.filter((x) => x.kind === 'backfill')).to.have.length(3);
    expect((await client.getSchedule('tick-demo'))).to.include({ paused: true, note: 'demo over' });
  });
});
