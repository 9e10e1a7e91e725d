import { expect } from 'chai';
import { changes, decodeChangeCursor, type Change } from '../lib/changes';
import { createClient } from '../lib/client';
import { ValidationError } from '../lib/errors';
import { useTestDatabase } from './helpers/db';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('changes feed', function () {
  const db = useTestDatabase();

  it('rejects malformed cursors and limits', async function () {
    const client = createClient({ connection: db.connection });
    for (const bad of [
      'x',
      '1.2',
      '1.2.zz',
      'a'.repeat(100),
      '1.2.0123456789abcdef0123456',
      'zzzzzzz.0.0123456789abcdef01234567',
    ]) {
      expect(() => decodeChangeCursor(bad), bad).to.throw(ValidationError);
    }
    let err: unknown;
    await changes(client, { limit: 0 }).catch((e) => (err = e));
    expect(err).to.be.instanceOf(ValidationError);
  });

  it('under 8 concurrent workers, a reader following from the start folds to the final state, revs increasing', async function () {
    this.timeout(120_000);
    const client = createClient({ connection: db.connection, leaseMs: 60_000 });
    const c = await client.getOrCreateTaskContainer('feed-load');
    await c.addTasks(Array.from({ length: 100 }, (_, i) => ({ name: `t${String(i).padStart(3, '0')}` })));

    const feed: Change[] = [];
    let since = '';
    let writersDone = false;
    const reader = (async () => {
      for (;;) {
        const page = await changes(client, { container: 'feed-load', since, limit: 37, horizonMs: 250 });
        feed.push(...page.changes);
        since = page.next;
        if (page.changes.length === 0) {
          if (writersDone) return;
          await sleep(50);
        }
      }
    })();

    const worker = async (w: number) => {
      for (;;) {
        const lease = await client.claimNext({ container: 'feed-load' }, { owner: `w${w}`, leaseMs: 60_000 });
        if (!lease) return;
        await lease.heartbeat({ percentageComplete: 50, statusText: 'half' });
        await lease.succeed({ w });
      }
    };
    await Promise.all(Array.from({ length: 8 }, (_, w) => worker(w)));
    // Entries become visible once they are older than the safety horizon (Timestamp seconds + 250 ms).
    await sleep(1_500);
    writersDone = true;
    await reader;

    const tasks = await c.getTasks();
    expect(tasks.every((t) => t.state() === 'succeeded')).to.equal(true);
    const folded = new Map<string, Change>();
    const lastRev = new Map<string, number>();
    for (const ch of feed) {
      const key = ch.kind === 'task' ? `task:${ch.task}` : `container:${ch.container}`;
      const prev = lastRev.get(key);
      if (prev !== undefined) expect(ch.rev, `${key} rev after ${prev}`).to.be.greaterThan(prev);
      lastRev.set(key, ch.rev);
      folded.set(key, ch);
    }
    for (const t of tasks) {
      const ch = folded.get(`task:${t.name()}`);
      expect(ch, t.name()).to.not.equal(undefined);
      expect(ch!.rev, t.name()).to.equal(t.toJSON().rev);
      expect(ch!.state).to.equal('succeeded');
      expect(ch!.percentageComplete).to.equal(100);
    }
    const summary = await c.summary();
    expect(folded.get('container:feed-load')?.rev).to.equal(summary.rev);
    expect(folded.get('container:feed-load')?.status).to.equal('succeeded');
    // cursors strictly increase along the feed
    for (let i = 1; i < feed.length; i++) {
      const a = decodeChangeCursor(feed[i - 1].cursor);
      const b = decodeChangeCursor(feed[i].cursor);
      expect(
        a.ts.compare(b.ts) < 0 || (a.ts.equals(b.ts) && a.id.toHexString() < b.id.toHexString()),
        `cursor ${i}`,
      ).to.equal(true);
    }
  });

  it('global feed filters by prefixes and resumes from `next`', async function () {
    const client = createClient({ connection: db.connection });
    const a = await client.getOrCreateTaskContainer('pa/one');
    await client.getOrCreateTaskContainer('pb/one');
    await a.addTask('x', null);
    await sleep(1_300);
    const all = await changes(client, { prefixes: ['pa/'] });
    expect(all.changes.map((ch) => ch.container)).to.satisfy(
      (names: string[]) => names.length >= 2 && names.every((n) => n === 'pa/one'),
    );
    const again = await changes(client, { prefixes: ['pa/'], since: all.next });
    expect(again.changes).to.deep.equal([]);
    expect(again.next).to.equal(all.next);
    await a.updateTask('x', { percentageComplete: 50 });
    await sleep(1_300);
    const more = await changes(client, { prefixes: ['pa/'], since: all.next });
    expect(more.changes.map((ch) => [ch.kind, ch.task, ch.percentageComplete])).to.deep.include([
      'task',
      'x',
      50,
    ]);
    expect((await changes(client, { prefixes: [] })).changes).to.deep.equal([]);
  });
});
