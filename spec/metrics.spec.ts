import { expect } from 'chai';
import { createClient } from '../lib/client';
import { createMetrics } from '../lib/metrics';
import { useTestDatabase } from './helpers/db';

describe('metrics', function () {
  const db = useTestDatabase();

  it('counts tasks by state at scrape time and transitions/failures from events', async function () {
    const client = createClient({ connection: db.connection });
    const m = createMetrics(client);
    try {
      const c = await client.getOrCreateTaskContainer('m1');
      await c.addTasks([{ name: 'a' }, { name: 'b', maxRetries: 0 }, { name: 'c' }]);
      const l1 = await client.claimNext({ container: 'm1' }, { owner: 'w' });
      await l1!.succeed(null);
      const l2 = await client.claimNext({ container: 'm1' }, { owner: 'w' });
      await l2!.fail(new Error('no'), { retryable: false });
      m.httpDuration.observe({ method: 'GET', route: '/x', status: '200' }, 0.01);
      const text = await m.text();
      expect(text).to.match(/pts_tasks\{state="succeeded"\} 1\b/);
      expect(text).to.match(/pts_tasks\{state="failed"\} 1\b/);
      expect(text).to.match(/pts_tasks\{state="pending"\} 1\b/);
      expect(text).to.match(/pts_task_transitions_total\{transition="added"\} 3\b/);
      expect(text).to.match(/pts_task_transitions_total\{transition="started"\} 2\b/);
      expect(text).to.match(/pts_task_failures_total\{final="true"\} 1\b/);
      expect(text).to.match(/pts_containers 1\b/);
      expect(text).to.match(
        /pts_http_request_duration_seconds_count\{method="GET",route="\/x",status="200"\} 1\b/,
      );
    } finally {
      m.close();
    }
    // after close(), events are no longer counted
    const c = await client.getTaskContainer('m1');
    await c!.addTask('d', null);
    expect(await m.text()).to.match(/pts_task_transitions_total\{transition="added"\} 3\b/);
  });

  it('counts lease expiries found by the sweep', async function () {
    const { ManualClock } = await import('../lib/clock');
    const clock = new ManualClock();
    const client = createClient({ connection: db.connection, clock, leaseMs: 1_000 });
    const m = createMetrics(client);
    try {
      const c = await client.getOrCreateTaskContainer('m2');
      await c.addTask('x', null);
      await client.claimNext({ container: 'm2' }, { owner: 'dead' });
      clock.advance(5_000);
      const r = await client.recoverStale({ container: 'm2' });
      expect(r.recovered).to.have.length(1);
      expect(await m.text()).to.match(/pts_lease_expiries_total 1\b/);
    } finally {
      m.close();
    }
  });
});
