import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createClient, ManualClock, type Client } from '../lib';
import { useTestDatabase } from './helpers/db';
import { expectConsistent } from './helpers/consistency';
import { trackResource, untrack } from './helpers/leaks';
import { handlers, setUp, type LogLine } from './fixtures/pipeline';

function readLog(file: string): LogLine[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as LogLine);
}

describe('recovery', function () {
  const db = useTestDatabase();
  let dir: string;
  before(function () {
    dir = mkdtempSync(path.join(tmpdir(), 'pts-recovery-'));
  });
  after(function () {
    rmSync(dir, { recursive: true, force: true });
  });

  it('deterministic: a backdated lease is recovered by recoverStale and the old owner is fenced off', async function () {
    const clock = new ManualClock();
    const client: Client = createClient({ connection: db.connection, clock, leaseMs: 30_000 });
    const c = await client.getOrCreateTaskContainer('deterministic crash');
    await c.addTasks([{ name: 'a' }, { name: 'b', dependsOn: ['a'] }]);
    const events: string[] = [];
    client.on('lease:expired', (e) => events.push(`expired ${e.task.name} ${e.owner}`));
    const dead = (await client.claimNext({ container: 'deterministic crash' }, { owner: 'dead-worker' }))!;
    await dead.heartbeat({ percentageComplete: 40, processingData: { offset: 400 } });
    // Nothing to recover while the lease is live.
    expect((await client.recoverStale()).recovered).to.have.length(0);
    clock.advance(30_001);
    const report = await client.recoverStale();
    expect(report.recovered).to.deep.equal([{ container: 'deterministic crash', task: 'a', owner: 'dead-worker', state: 'pending' }]);
    expect(events).to.deep.equal(['expired a dead-worker']);
    const next = (await client.claimNext({ container: 'deterministic crash' }, { owner: 'new-worker' }))!;
    expect(next.task.name).to.equal('a');
    expect(next.task.processingData).to.deep.equal({ offset: 400 });
    try {
      await dead.succeed('late');
      expect.fail('late succeed accepted');
    } catch (err) {
      expect((err as Error).name).to.equal('LeaseLostError');
    }
    await next.succeed('ok');
    expect((await c.getTask('a'))!.result()).to.equal('ok');
    await expectConsistent(c);
  });

  it('deterministic: counters left behind by a crash between the task write and the counter write are reconciled', async function () {
    const client = createClient({ connection: db.connection });
    const c = await client.getOrCreateTaskContainer('torn write');
    await c.addTasks([{ name: 'x' }, { name: 'y' }]);
    // Simulate the crash: the task moved, the counter $inc never happened.
    await db.connection.collection('pts_tasks').updateOne({ container: 'torn write', name: 'x' }, { $set: { state: 'succeeded', percentageComplete: 100 } });
    const drifted = await c.summary();
    expect(drifted.counts.succeeded).to.equal(0);
    const report = await client.recoverStale({ container: 'torn write' });
    expect(report.reconciled).to.deep.equal(['torn write']);
    const fixed = await c.summary();
    expect(fixed.counts).to.include({ succeeded: 1, pending: 1 });
    expect(fixed.percentageComplete).to.equal(50);
    await expectConsistent(c);
  });

  it('real: a child killed with SIGKILL mid-step is resumed by a second run(); finished steps never re-run', async function () {
    this.timeout(120_000);
    const logFile = path.join(dir, 'crash.log');
    const name = 'real crash';
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, 'fixtures', 'crash-worker.ts'), db.uri, name, logFile, '1500'], {
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    trackResource('crash child', () => child.kill('SIGKILL'));
    // Kill it once the import step has checkpointed at 40%.
    const deadline = Date.now() + 60_000;
    while (!readLog(logFile).some((l) => l.task === 'import' && l.event === 'checkpoint' && (l.checkpoint as { offset: number }).offset >= 40)) {
      if (Date.now() > deadline) throw new Error('child never reached the import step');
      if (child.exitCode !== null) throw new Error(`child exited early with ${child.exitCode}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    untrack('crash child');
    const killedPid = child.pid;

    const client = createClient({ connection: db.connection, leaseMs: 1500 });
    const c = (await client.getTaskContainer(name))!;
    const before = (await c.getTask('import'))!;
    expect(before.state()).to.equal('running');
    await setUp(c); // the cron job adds its steps again: idempotent
    const res = await c.run(handlers(logFile, 100), { concurrency: 2, progressIntervalMs: 0, pollIntervalMs: 200 });
    expect(res.status).to.equal('succeeded');

    const log = readLog(logFile);
    const starts = (task: string) => log.filter((l) => l.task === task && l.event === 'start');
    for (const step of ['download', 'unpack', 'validate']) {
      expect(starts(step), `${step} ran once`).to.have.length(1);
      expect(starts(step)[0].pid).to.equal(killedPid);
    }
    expect(starts('import')).to.have.length(2);
    expect(starts('import')[0].pid).to.equal(killedPid);
    expect(starts('import')[1].pid).to.equal(process.pid);
    const resumedFrom = (starts('import')[1].checkpoint as { offset: number }).offset;
    expect(resumedFrom).to.be.at.least(40);
    expect(starts('report')).to.have.length(1);
    const imp = (await c.getTask('import'))!;
    expect(imp.result()).to.deep.equal({ imported: 100, resumedFrom });
    expect(imp.invokeCount()).to.equal(2);
    expect(imp.failures()).to.have.length(1);
    expect(imp.failures()[0]).to.include({ code: 'LEASE_EXPIRED', kind: 'interrupted', attempt: 1 });
    expect(imp.failures()[0].workerId).to.equal(`crash-worker:${killedPid}`);
    for (const step of ['download', 'unpack', 'validate', 'report']) expect((await c.getTask(step))!.invokeCount()).to.equal(1);
    await expectConsistent(c);
    expect((await c.summary()).percentageComplete).to.equal(100);
  });
});
