/**
 * Schedules: a pipeline fired every 2 seconds by a scheduler, worked on by a worker, for ~9 s;
 * then the run history (what each slot became, step durations).
 *
 *   npx tsx examples/schedules.ts
 *
 * The database is MONGODB_URI if set; otherwise `startEmbeddedServer()` starts one. The
 * scheduler and the worker share only the database: run them in different processes (or
 * machines) by calling `startScheduler()` in one and `work()` in the other, each after
 * `definePipeline()`. See docs/schedules.md.
 *
 * (Outside this repository, import from 'persistent-task-status' instead of '../lib', and from
 * 'persistent-task-status/testing' instead of '../lib/testing'.)
 */
import mongoose from 'mongoose';
import { createClient } from '../lib';
import { startEmbeddedServer } from '../lib/testing';

async function main(): Promise<void> {
  const server = await startEmbeddedServer({ log: (line) => console.error(`[schedules] ${line}`) });
  const connection = await mongoose
    .createConnection(server.uri, { dbName: 'pts_schedules_example' })
    .asPromise();
  const client = createClient({ connection });
  try {
    const pipeline = client.definePipeline('health-check', {
      tasks: (slot) => [
        { name: 'probe', data: { at: slot.toISOString() } },
        { name: 'report', dependsOn: ['probe'] },
      ],
    });
    // 6 fields: seconds first. 'skip': a slot while the previous run is unfinished is recorded as skipped.
    await client.schedule(pipeline, { cron: '*/2 * * * * *', overlap: 'skip' });
    client.on('schedule:fired', (e) => console.log(`fired   ${e.container}`));
    client.on('schedule:skipped', (e) => console.log(`skipped ${e.slot.toISOString()} (${e.reason})`));
    const scheduler = client.startScheduler({ intervalMs: 250 });
    const worker = client.work(pipeline, {
      probe: async (ctx) => {
        await new Promise((r) => setTimeout(r, 2500)); // slower than the schedule: some slots overlap
        return { ok: true, at: (ctx.data as { at: string }).at };
      },
      report: async () => 'sent',
    });
    await new Promise((r) => setTimeout(r, 9_000));
    await scheduler.stop();
    await worker.stop();
    console.log('\nhistory (newest first):');
    for (const run of (await client.listRuns(pipeline)).items) {
      const steps = run.steps
        .map((s) => `${s.name}=${s.state ?? '-'}${s.durationMs === null ? '' : ` ${s.durationMs}ms`}`)
        .join(', ');
      console.log(`  ${run.slot.toISOString()}  ${run.status.padEnd(8)} ${run.reason ?? ''} ${steps}`);
    }
    await client.deleteSchedule('health-check');
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
