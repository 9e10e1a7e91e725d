/**
 * `pts schedule …`, `pts runs` and `pts scheduler`, spawned for real against the spec's database:
 * add stores a schedule of a pipeline the CLI does not define; list, pause/unpause, trigger,
 * backfill and delete go through the client; bad flags exit 2 and write nothing; `pts scheduler
 * --module` defines the pipelines from a module and fires them until SIGINT; the ETA is shown by
 * the status line renderer.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { createClient, type Client, type ContainerSummary } from '../lib';
import { Out } from '../lib/cli/output';
import { containerLine } from '../lib/cli/render';
import { useTestDatabase } from './helpers/db';
import { trackResource } from './helpers/leaks';

const ROOT = path.join(__dirname, '..');
const MAIN = path.join(ROOT, 'lib', 'cli', 'main.ts');

function start(args: string[], env: Record<string, string>) {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: '1', PTS_CONNECT_TIMEOUT_MS: '1500', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const untrack = trackResource(`pts ${args.join(' ')}`, () => child.kill('SIGKILL'));
  const out = { stdout: '', stderr: '' };
  child.stdout.on('data', (b: Buffer) => (out.stdout += b.toString()));
  child.stderr.on('data', (b: Buffer) => (out.stderr += b.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 45_000);
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      untrack();
      resolve({ code, ...out });
    });
  });
  return { child, out, done };
}

describe('pts schedule / runs / scheduler', function () {
  this.timeout(60_000);
  const db = useTestDatabase();
  let client: Client;
  const pts = (...args: string[]) => start(args, { MONGODB_URI: db.uri }).done;

  before(async function () {
    client = createClient({ connection: db.connection });
    await client.ensureIndexes();
  });
  after(async function () {
    await client.close();
  });

  it('add / list / pause / unpause / trigger / delete, with the library as the source of truth', async function () {
    const add = await pts('schedule', 'add', 'cli-etl', '--cron', '0 3 * * *', '--timezone', 'Europe/Berlin', '--overlap', 'bufferOne', '--catchup-window', '2h', '--pause-on-failure');
    expect(add.code, add.stderr).to.equal(0);
    expect(add.stdout).to.match(/^added schedule cli-etl \(0 3 \* \* \* Europe\/Berlin, bufferOne\); next: /);
    expect(await client.getSchedule('cli-etl')).to.include({ pipeline: 'cli-etl', cron: '0 3 * * *', timezone: 'Europe/Berlin', overlap: 'bufferOne', catchupWindowMs: 7_200_000, pauseOnFailure: true, paused: false });

    const bad = await pts('schedule', 'add', 'cli-bad', '--cron', '61 * * * *');
    expect(bad.code).to.equal(2);
    expect(bad.stderr).to.include('cron');
    const badOverlap = await pts('schedule', 'add', 'cli-bad', '--cron', '0 * * * *', '--overlap', 'never');
    expect(badOverlap.code).to.equal(2);
    expect(await client.getSchedule('cli-bad')).to.equal(null);

    const pause = await pts('schedule', 'pause', 'cli-etl', '--note', 'maintenance');
    expect(pause.code, pause.stderr).to.equal(0);
    expect(await client.getSchedule('cli-etl')).to.include({ paused: true, note: 'maintenance' });
    const list = await pts('schedule', 'list', '--json');
    expect(list.code, list.stderr).to.equal(0);
    expect(JSON.parse(list.stdout)).to.deep.equal(JSON.parse(JSON.stringify(await client.describeSchedules())));
    const table = await pts('schedule', 'list');
    expect(table.stdout).to.match(/cli-etl\s+cli-etl\s+0 3 \* \* \*\s+Europe\/Berlin\s+bufferOne\s+paused \(maintenance\)/);
    expect((await pts('schedule', 'unpause', 'cli-etl')).code).to.equal(0);
    expect((await client.getSchedule('cli-etl'))!.paused).to.equal(false);

    // The CLI defines no pipeline: the triggered slot is recorded `starting` for a scheduler to create.
    const trig = await pts('schedule', 'trigger', 'cli-etl', '--json');
    expect(trig.code, trig.stderr).to.equal(0);
    const run = JSON.parse(trig.stdout);
    expect(run).to.include({ kind: 'trigger', status: 'starting', pipeline: 'cli-etl' });
    expect((await client.listRuns('cli-etl')).items.map((r) => r.container)).to.deep.equal([run.container]);

    const missing = await pts('schedule', 'trigger', 'nope');
    expect(missing.code).to.equal(1);
    expect(missing.stderr).to.include('no schedule named "nope"');
    expect((await pts('schedule', 'delete', 'cli-etl')).code).to.equal(0);
    expect(await client.getSchedule('cli-etl')).to.equal(null);
  });

  it('pts scheduler --module fires the slots of the pipelines the module defines; backfill and pts runs show the history', async function () {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pts-sched-'));
    const mod = path.join(dir, 'pipelines.mjs');
    writeFileSync(
      mod,
      `export default function (client) {
  const p = client.definePipeline('cli-tick', { tasks: [{ name: 'a' }, { name: 'b', dependsOn: ['a'] }] });
  client.work(p, { a: () => 1, b: () => 2 }, { pollIntervalMs: 100 });
}
`,
    );
    await client.schedule('cli-tick', { cron: '0 0 1 1 *' });
    const back = await pts('schedule', 'backfill', 'cli-tick', '--from', '2026-01-01T00:00:00Z', '--to', '2026-01-01T00:00:00Z');
    expect(back.code, back.stderr).to.equal(0);
    expect(back.stdout).to.include('backfilled 1 slot(s) of cli-tick');
    const s = start(['scheduler', '--module', mod, '--interval', '200ms'], { MONGODB_URI: db.uri });
    try {
      // The backfilled slot was left `starting` (the CLI defines nothing): the scheduler repairs it; its worker runs it.
      for (let i = 0; i < 200; i++) {
        const r = (await client.listRuns('cli-tick')).items[0];
        if (r?.status === 'finished') break;
        await new Promise((res) => setTimeout(res, 100));
      }
    } finally {
      s.child.kill('SIGINT');
    }
    const ended = await s.done;
    expect(ended.code, ended.stderr).to.equal(0);
    expect(ended.stdout).to.include('pts scheduler running');
    expect(ended.stdout).to.include('repaired cli-tick@2026-01-01T00:00:00.000Z');
    expect(ended.stdout).to.include('finished cli-tick@2026-01-01T00:00:00.000Z succeeded');
    const runs = await pts('runs', 'cli-tick');
    expect(runs.code, runs.stderr).to.equal(0);
    expect(runs.stdout).to.match(/2026-01-01T00:00:00Z\s+backfill\s+finished\s+succeeded\s+a \d+ms, b \d+ms/);
    const noModule = await pts('scheduler');
    expect(noModule.code).to.equal(2);
    expect(noModule.stderr).to.include('--module');
  });

  it('pts serve --scheduler --module also runs the scheduler; --scheduler without --module is a usage error', async function () {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pts-serve-'));
    const mod = path.join(dir, 'pipelines.mjs');
    writeFileSync(mod, `export function register(client) { client.definePipeline('cli-serve', { tasks: [{ name: 'only' }] }); }\n`);
    await client.schedule('cli-serve', { cron: '0 0 1 1 *' });
    const trig = await client.triggerSchedule('cli-serve'); // this process defines nothing: left starting
    expect(trig.status).to.equal('starting');
    const s = start(['serve', '--no-auth', '--port', '0', '--no-alerts', '--scheduler', '--module', mod], { MONGODB_URI: db.uri });
    try {
      for (let i = 0; i < 200 && !s.out.stdout.includes('repaired'); i++) await new Promise((res) => setTimeout(res, 100));
    } finally {
      s.child.kill('SIGINT');
    }
    const ended = await s.done;
    expect(ended.code, ended.stderr).to.equal(0);
    expect(ended.stdout).to.include('pts serving on http://127.0.0.1:');
    expect(ended.stdout).to.include(`repaired ${trig.container}`);
    expect((await client.listRuns('cli-serve')).items[0].status).to.equal('started');
    const bad = await pts('serve', '--no-auth', '--port', '0', '--scheduler');
    expect(bad.code).to.equal(2);
    expect(bad.stderr).to.include('--module');
  });

  it('status and watch lines show a running pipeline run’s ETA', function () {
    const out = new Out();
    const c = { name: 'p@x', status: 'running', paused: false, percentageComplete: 40, counts: { pending: 1, running: 1, succeeded: 1, failed: 0, skipped: 0, cancelled: 0 }, total: 3, eta: { at: new Date('2026-05-01T10:00:05Z'), remainingMs: 125_000, basis: { runs: 7 } } } as unknown as ContainerSummary;
    expect(containerLine(out, c)).to.match(/eta 10:00:05Z \(in 2m 05s, from 7 runs\)$/);
    expect(containerLine(out, { ...c, eta: null })).not.to.include('eta');
  });
});
