/**
 * Schedulers in real processes: three scheduler processes on one every-second schedule; the one
 * that fired last is SIGKILLed (and replaced) again and again over at least 20 slots. In the end
 * every slot from the first to the last decided one is covered by exactly one run record —
 * started (its container exists, with its tasks) or skipped with a reason — and no slot was
 * fired twice (the `schedule:fired` lines of every process, the containers).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { expect } from 'chai';
import { createClient, type RunRecord } from '../../lib';
import { useTestDatabase } from '../helpers/db';
import { trackResource } from '../helpers/leaks';
import { readLogs, sleep, tempDir } from './helpers';

const FIXTURE = path.join(__dirname, '..', 'fixtures', 'scheduler-process.ts');
const PIPELINE = 'every-second';
const MIN_KILLS = 5;
const MIN_SLOTS = 20;

interface Proc {
  id: string;
  child: ChildProcess;
  exited: Promise<void>;
  alive: () => boolean;
  stderr: () => string;
}

function startScheduler(id: string, uri: string, logFile: string): Proc {
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, uri, PIPELINE, logFile, '4000'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  let err = '';
  child.stderr?.on('data', (b: Buffer) => (err = (err + b.toString()).slice(-4000)));
  let done = false;
  const untrack = trackResource(`scheduler process ${id}`, () => {
    if (!done) child.kill('SIGKILL');
  });
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      done = true;
      untrack();
      resolve();
    }),
  );
  return { id, child, exited, alive: () => !done, stderr: () => err };
}

interface Line {
  ev: string;
  pid: number;
  slot?: string;
  container?: string;
}

describe('reliability: scheduler processes killed while firing', function () {
  this.timeout(180_000);
  const db = useTestDatabase();

  it('three schedulers, the firing one SIGKILLed ≥5 times over ≥20 slots: every slot fired exactly once or recorded as skipped', async function () {
    const tmp = tempDir('scheduler');
    const procs = new Set<Proc>();
    let spawned = 0;
    let kills = 0;
    const spawnOne = (): void => {
      const p = startScheduler(`s${++spawned}`, db.uri, path.join(tmp.dir, `s${spawned}.jsonl`));
      procs.add(p);
      void p.exited.then(() => procs.delete(p));
    };
    const started = Date.now();
    try {
      for (let i = 0; i < 3; i++) spawnOne();
      let lastKilledLine = 0;
      for (;;) {
        if (Date.now() - started > 150_000)
          throw new Error(
            `did not reach ${MIN_KILLS} kills in 150 s (kills ${kills}): ${[...procs].map((p) => p.stderr()).join('\n')}`,
          );
        await sleep(50);
        const lines = readLogs<Line>(tmp.dir).filter((l) => l.ev === 'fired');
        const fired = new Set(lines.map((l) => l.slot)).size;
        if (kills >= MIN_KILLS && fired >= MIN_SLOTS) break;
        // Kill the process that fired last, once it fired something since the previous kill.
        if (lines.length > lastKilledLine) {
          const firer = lines[lines.length - 1].pid;
          const victim = [...procs].find((p) => p.child.pid === firer && p.alive());
          if (victim && Date.now() - started > 2000) {
            // Aim at its next firing pass: just after the next second (a slot), within 150 ms.
            await sleep(1000 - (Date.now() % 1000) + Math.floor(Math.random() * 150));
            victim.child.kill('SIGKILL');
            await victim.exited;
            kills++;
            lastKilledLine = readLogs<Line>(tmp.dir).filter((l) => l.ev === 'fired').length;
            spawnOne();
          }
        }
      }
    } finally {
      for (const p of procs) p.child.kill('SIGKILL');
      await Promise.all([...procs].map((p) => p.exited));
    }

    // A final pass completes what a killed firer may have left `starting` (it decides nothing
    // new: the clock of this pass is past the last slot, but the processes are gone, so the
    // pass may decide slots too; they are checked like the others).
    const client = createClient({ connection: db.connection, workerId: 'checker' });
    client.definePipeline(PIPELINE, { tasks: [{ name: 'check' }, { name: 'report', dependsOn: ['check'] }] });
    const leftStarting = (await client.listRuns(PIPELINE, { limit: 1000 })).items.filter(
      (r) => r.status === 'starting',
    ).length;
    const repairedByOthers = readLogs<Line>(tmp.dir).filter((l) => l.ev === 'repaired').length;
    const final = await client.runSchedulerPass();
    const runs: RunRecord[] = [];
    for (let cursor: string | null = null; ;) {
      const page: { items: RunRecord[]; nextCursor: string | null } = await client.listRuns(PIPELINE, {
        limit: 1000,
        cursor,
      });
      runs.push(...page.items);
      if (!(cursor = page.nextCursor)) break;
    }
    runs.reverse();
    // Coverage: consecutive seconds from the first record's slot to the last record's lastSlot, each covered once.
    const covered: number[] = [];
    for (const r of runs)
      for (let t = r.slot.getTime(); t <= r.lastSlot.getTime(); t += 1000) covered.push(t);
    const first = runs[0].slot.getTime();
    const last = runs[runs.length - 1].lastSlot.getTime();
    expect(covered).to.deep.equal(
      Array.from({ length: (last - first) / 1000 + 1 }, (_, i) => first + i * 1000),
    );
    expect(covered.length).to.be.at.least(MIN_SLOTS);
    for (const r of runs) {
      expect(['started', 'skipped'], `${r.slot.toISOString()}: ${r.status} ${r.reason}`).to.include(r.status);
      if (r.status === 'skipped') expect(r.reason).to.equal('missed');
    }
    // Started runs have their container, with both tasks; there is no other container.
    const startedRuns = runs.filter((r) => r.status === 'started');
    const containers = (await client.listContainers({ namePrefix: `${PIPELINE}@`, limit: 1000 })).items;
    expect(containers.map((c) => c.name).sort()).to.deep.equal(startedRuns.map((r) => r.container).sort());
    for (const c of containers) expect(c.total, c.name).to.equal(2);
    // No slot fired twice by the processes' own account.
    const fired = readLogs<Line>(tmp.dir)
      .filter((l) => l.ev === 'fired')
      .map((l) => l.slot);
    expect(fired.length).to.equal(new Set(fired).size);
    console.log(
      `[reliability] scheduler: ${kills} SIGKILLs of the firing process, ${spawned} processes, ${covered.length} slots: ` +
        `${startedRuns.length} fired, ${covered.length - startedRuns.length} recorded as missed; ${repairedByOthers} runs a killed firer left \`starting\` ` +
        `completed by another process, ${leftStarting} left at the end (${final.repaired.length} completed by the final pass)`,
    );
    await client.close();
    tmp.remove();
  });
});
