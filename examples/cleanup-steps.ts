/**
 * Cleanup steps (`TaskSpec.runWhen`): a lock is taken, the work fails, and still the lock is
 * released (`runWhen: 'always'`) and the failure report sent (`runWhen: 'failed'`), even under
 * `failurePolicy: 'fail-fast'`. The container ends `failed`: the cleanup does not hide the failure.
 *
 *   npx tsx examples/cleanup-steps.ts           # the work fails: unlock and report run
 *   npx tsx examples/cleanup-steps.ts --ok      # the work succeeds: unlock runs, report is skipped
 *
 * Pipeline:  lock ── work ── publish
 *                      ├──── unlock  (always)
 *                      └──── report  (failed)
 *
 * The database is MONGODB_URI if set; otherwise `startEmbeddedServer()` starts one. (Outside this
 * repository, import from 'persistent-task-status' and 'persistent-task-status/testing'.)
 */
import mongoose from 'mongoose';
import { createClient } from '../lib';
import { startEmbeddedServer } from '../lib/testing';

const ok = process.argv.includes('--ok');

async function main(): Promise<void> {
  const server = await startEmbeddedServer({ log: (line) => console.error(`[cleanup-steps] ${line}`) });
  const connection = await mongoose.createConnection(server.uri, { dbName: 'pts_cleanup_steps' }).asPromise();
  const client = createClient({ connection });
  try {
    const name = `cleanup-steps-${Date.now()}`;
    const c = await client.getOrCreateTaskContainer(name, { failurePolicy: 'fail-fast' });
    await c.addTasks([
      { name: 'lock' },
      { name: 'work', dependsOn: ['lock'], maxRetries: 0 },
      { name: 'publish', dependsOn: ['work'] },
      { name: 'unlock', dependsOn: ['work', 'publish'], runWhen: 'always' },
      { name: 'report', dependsOn: ['work', 'publish'], runWhen: 'failed' },
    ]);
    client.on('task:skipped', ({ task }) => console.log(`  ${task.name}: skipped (nothing failed)`));
    const res = await c.run({
      lock: () => console.log('  lock: taken'),
      work: () => {
        if (!ok) throw new Error('the warehouse refused the batch');
        console.log('  work: done');
      },
      publish: () => console.log('  publish: published'),
      unlock: () => console.log('  unlock: released (runs however the steps before it ended)'),
      report: () => console.log('  report: failure report sent'),
    });
    console.log(`container ${name}: ${res.status}`);
    for (const t of (await c.getTasks()).map((x) => x.toJSON())) console.log(`  ${t.name.padEnd(8)} ${t.runWhen.padEnd(10)} ${t.state}`);
  } finally {
    await client.close();
    await connection.close();
    await server.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
