/**
 * Races between processes: 6 worker processes claim ~300 tasks from one container (some keyed,
 * limit 2) while the parent samples the running count per key; and the same 20 containers and
 * 20 tasks are get-or-created / added by every process at the same instant.
 */
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { createClient } from '../../lib';
import { skipWithReason, useTestDatabase } from '../helpers/db';
import {
  killAll,
  probeAtomicity,
  readLogs,
  sleep,
  startWorker,
  tempDir,
  testSeed,
  Rng,
  type Worker,
} from './helpers';

interface Line {
  ev: string;
  owner: string;
  t: number;
  task?: string;
  token?: number;
  key?: string | null;
  created?: Array<{ i: number; isNew: boolean; id: string | null; error: string | null }>;
  added?: Array<{ i: number; id: string | null; error: string | null }>;
  late?: number;
}

const PROCS = 6;
const LIMIT = 2;

describe('reliability: races between processes', function () {
  this.timeout(180_000);
  const db = useTestDatabase();

  /** Starts PROCS claim-mode workers that race at the same instant; resolves with their logs. */
  async function raceProcesses(
    tmpDir: string,
    container: string,
    onTick?: () => Promise<void>,
  ): Promise<Line[]> {
    const workers: Worker[] = [];
    try {
      for (let i = 0; i < PROCS; i++) {
        workers.push(
          startWorker(`p${i}`, {
            mode: 'claim',
            uri: db.uri,
            container,
            logDir: tmpDir,
            leaseMs: 60_000,
            raceNames: 20,
          }),
        );
      }
      // Release all processes at once, when every one of them is connected and ready.
      while (readLogs<Line>(tmpDir).filter((l) => l.ev === 'ready').length < PROCS) {
        if (workers.some((w) => !w.alive()))
          throw new Error(`a worker died before the race: ${workers.map((w) => w.stderr()).join('\n')}`);
        await sleep(50);
      }
      fs.writeFileSync(path.join(tmpDir, 'go'), String(Date.now() + 300));
      while (workers.some((w) => w.alive())) {
        if (onTick) await onTick();
        await sleep(20);
      }
      for (const w of workers) expect((await w.exited).code, w.stderr()).to.equal(0);
      return readLogs<Line>(tmpDir);
    } finally {
      await killAll(workers);
    }
  }

  it('creates each container and task name once when 6 processes get-or-create / add the same 20 names at once', async function () {
    const tmp = tempDir('names');
    const client = createClient({ connection: db.connection });
    try {
      const logs = await raceProcesses(tmp.dir, '');
      const races = logs.filter((l) => l.ev === 'race');
      expect(races).to.have.length(PROCS);
      const late = Math.max(...races.map((r) => r.late!));
      expect(late, 'a process reached the barrier late, so the calls did not race').to.be.below(150);
      const errors = races.flatMap((r) =>
        [...r.created!, ...r.added!].filter((x) => x.error).map((x) => `${r.owner}: ${x.error}`),
      );
      expect(errors, errors.join('\n')).to.deep.equal([]);
      for (let i = 0; i < 20; i++) {
        expect(races.filter((r) => r.created![i].isNew).length, `race-${i} creators`).to.equal(1);
        expect(new Set(races.map((r) => r.created![i].id)).size, `race-${i} ids`).to.equal(1);
        expect(new Set(races.map((r) => r.added![i].id)).size, `t-${i} ids`).to.equal(1);
      }
      expect(
        await db.connection.collection('pts_containers').countDocuments({ name: /^race-\d+$/ }),
      ).to.equal(20);
      const rt = (await client.getTaskContainer('race-tasks'))!;
      expect((await rt.getTasks()).length).to.equal(20);
      console.log(
        `[reliability] races: ${PROCS} processes × 20 concurrent getOrCreateTaskContainer + 20 addTask of the same names -> 20 containers (one isNew each) and 20 tasks (all fired within ${late} ms of the barrier)`,
      );
      tmp.remove();
    } finally {
      await client.close();
    }
  });

  it('hands every task to exactly one process and honours key limits with 6 processes claiming 300 tasks', async function () {
    const probe = await probeAtomicity(db.uri);
    if (!probe.atomic) {
      skipWithReason(
        this,
        `needs a server that applies conditional single-document updates atomically across connections; unserialized FerretDB 1.24 runs findAndModify as a query plus a separate update (this run's probe: ${probe.doubleWinners}/${probe.rounds} double winners, ${probe.lostIncrements}/${probe.rounds} lost $inc). Run with MONGODB_URI pointing at a real MongoDB`,
      );
    }
    const rng = new Rng(testSeed('races'));
    const tmp = tempDir('races');
    const client = createClient({ connection: db.connection });
    try {
      await client.setKeyLimit('ka', LIMIT);
      await client.setKeyLimit('kb', LIMIT);
      const c = await client.getOrCreateTaskContainer('races');
      await c.addTasks(
        Array.from({ length: 300 }, (_, i) => ({
          name: `r${i}`,
          key: i % 3 === 0 ? rng.pick(['ka', 'kb']) : null,
        })),
      );
      const tasks = db.connection.collection('pts_tasks');
      let maxSeen = 0;
      let samples = 0;
      const logs = await raceProcesses(tmp.dir, 'races', async () => {
        for (const key of ['ka', 'kb']) {
          const n = await tasks.countDocuments({ containerId: c._id, key, state: 'running' });
          maxSeen = Math.max(maxSeen, n);
          expect(n, `running tasks with key ${key}`).to.be.at.most(LIMIT);
        }
        samples++;
      });
      // Each task started and succeeded by exactly one process.
      for (let i = 0; i < 300; i++) {
        expect(logs.filter((l) => l.ev === 'start' && l.task === `r${i}`).length, `r${i} started`).to.equal(
          1,
        );
        expect(
          logs.filter((l) => l.ev === 'succeeded' && l.task === `r${i}`).length,
          `r${i} succeeded`,
        ).to.equal(1);
      }
      // Key limit from the handlers' own intervals.
      for (const key of ['ka', 'kb']) {
        const ev = logs
          .filter((l) => (l.ev === 'start' || l.ev === 'end') && l.key === key)
          .sort((a, b) => a.t - b.t || (a.ev === 'end' ? -1 : 1));
        let running = 0;
        for (const e of ev) {
          running += e.ev === 'start' ? 1 : -1;
          expect(running, `handlers of key ${key} running at once`).to.be.at.most(LIMIT);
        }
      }
      const s = await c.summary();
      expect(s.counts.succeeded).to.equal(300);
      expect(await c.reconcile()).to.equal(false);
      console.log(
        `[reliability] races: ${PROCS} processes claimed 300 tasks, each exactly once; max ${maxSeen} running per key (limit ${LIMIT}) over ${samples} samples`,
      );
      tmp.remove();
    } finally {
      await client.close();
    }
  });
});
