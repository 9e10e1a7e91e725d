/**
 * The schedule part of `pts demo`: a pipeline on an every-2-seconds schedule, three past slots
 * backfilled, the scheduler and a worker in this process until three runs finished, then the
 * schedule is paused and its run history printed (`pts runs`' table). Short by design (a few
 * seconds); the dashboard shows the same schedule and history.
 */
import type { Client } from '../client';
import type { Out } from './output';
import { printRuns } from './schedules';

export const DEMO_SCHEDULE = 'tick-demo';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function scheduleDemo(client: Client, out: Out, signal: AbortSignal): Promise<void> {
  const p = client.definePipeline(DEMO_SCHEDULE, {
    tasks: (slot) => [
      { name: 'fetch', data: { slot: slot.toISOString() } },
      { name: 'report', dependsOn: ['fetch'] },
    ],
  });
  await client.schedule(p, { cron: '*/2 * * * * *', overlap: 'skip' });
  await client.unpauseSchedule(DEMO_SCHEDULE);
  const t0 = Math.floor(Date.now() / 2000) * 2000;
  const backfilled = await client.backfillSchedule(DEMO_SCHEDULE, {
    from: new Date(t0 - 6000),
    to: new Date(t0 - 2000),
    overlap: 'allowAll',
  });
  out.line(`schedule ${DEMO_SCHEDULE} (*/2 * * * * *): backfilled ${backfilled.length} past slots; the scheduler fires the next ones`);
  const worker = client.work(p, { fetch: () => sleep(150).then(() => 'fetched'), report: () => sleep(100) }, { pollIntervalMs: 100 });
  const scheduler = client.startScheduler({ intervalMs: 250 });
  try {
    const deadline = Date.now() + 20_000;
    while (!signal.aborted && Date.now() < deadline) {
      const runs = (await client.listRuns(p, { limit: 20 })).items;
      if (runs.filter((r) => r.status === 'finished').length >= 5) break;
      await sleep(250);
    }
  } finally {
    await scheduler.stop();
    await worker.stop();
  }
  await client.pauseSchedule(DEMO_SCHEDULE, 'demo over');
  out.line(`run history (pts runs ${DEMO_SCHEDULE}); the schedule is paused now:`);
  printRuns(out, (await client.listRuns(p, { limit: 10 })).items);
}
