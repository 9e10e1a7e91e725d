/**
 * The 2011 module's API, exactly: `taskContainer.isComplete()` returns a boolean synchronously
 * (from what the handle last read or wrote), and `deleteTask` of a missing name calls back
 * `(null, null)` — next to the promise forms, which keep working.
 */
import { expect } from 'chai';
import { createClient, InvalidTransitionError, type Client, type TaskContainer } from '../lib';
import { useTestDatabase } from './helpers/db';

describe('seed API, exactly', function () {
  const db = useTestDatabase();
  let client: Client;
  before(function () {
    client = createClient({ connection: db.connection, leaseMs: 60_000 });
  });

  describe('isComplete()', function () {
    it('returns a boolean synchronously, from what this handle last read or wrote', async function () {
      const c = await client.getOrCreateTaskContainer('sync complete');
      const v = c.isComplete();
      expect(v).to.be.a('boolean').and.equal(false); // not a Promise
      await c.addTask('only', null);
      expect(c.isComplete()).to.equal(false);
      await c.updateTask('only', { isComplete: true }); // this handle's write returned the container
      expect(c.isComplete()).to.equal(true);
      // The promise form still works: awaiting a boolean yields it.
      expect(await c.isComplete()).to.equal(true);
      // A new task makes it incomplete again, as the add's counter write shows.
      await c.addTask('more', null);
      expect(c.isComplete()).to.equal(false);
      await c.run(() => undefined);
      expect(c.isComplete(), 'the end of run()').to.equal(true);
      // A handle created from a finished container's document knows at once.
      expect((await client.getTaskContainer('sync complete'))!.isComplete()).to.equal(true);
      expect((await client.getOrCreateTaskContainer('sync complete')).isComplete()).to.equal(true);
      // Compile-time half: the no-argument form is typed boolean, not a promise.
      const typed: boolean = c.isComplete();
      // @ts-expect-error isComplete() is a boolean, not a promise
      const misuse = (): unknown => c.isComplete().then;
      expect(typed).to.equal(true);
      expect(misuse).to.be.a('function');
    });

    it('a change made elsewhere shows after this handle reads: checkComplete(), summary(), or the callback form', async function () {
      const mine = await client.getOrCreateTaskContainer('elsewhere');
      await mine.addTask('t', null);
      const theirs = (await createClient({ connection: db.connection }).getTaskContainer('elsewhere'))!;
      await theirs.updateTask('t', { isComplete: true });
      expect(mine.isComplete(), 'what this handle last saw').to.equal(false);
      // The callback form reads the database (as the 2011 module did).
      const viaCb = await new Promise<unknown[]>((resolve) => {
        const r: unknown = mine.isComplete((...args: unknown[]) => resolve([...args, r]));
      });
      expect(viaCb).to.deep.equal([null, true, undefined]);
      expect(mine.isComplete()).to.equal(true);

      const again = await client.getOrCreateTaskContainer('elsewhere 2');
      await again.addTask('t', null);
      const other = (await createClient({ connection: db.connection }).getTaskContainer('elsewhere 2'))!;
      await other.updateTask('t', { isComplete: true });
      expect(again.isComplete()).to.equal(false);
      expect(await again.checkComplete()).to.equal(true);
      expect(again.isComplete()).to.equal(true);
      await other.addTask('u', null);
      expect(again.isComplete()).to.equal(true);
      expect((await again.summary()).isComplete).to.equal(false);
      expect(again.isComplete(), 'summary() refreshed it').to.equal(false);
      const cb = await new Promise<unknown[]>((resolve) =>
        again.checkComplete((...args: unknown[]) => resolve(args)),
      );
      expect(cb).to.deep.equal([null, false]);
    });
  });

  describe('deleteTask', function () {
    async function container(name: string): Promise<TaskContainer> {
      const c = await client.getOrCreateTaskContainer(name);
      await c.addTasks([{ name: 'a' }, { name: 'b', dependsOn: ['a'] }, { name: 'free' }]);
      return c;
    }

    it('of a missing name calls back (null, null) and resolves null, writing nothing', async function () {
      const c = await container('delete missing');
      const tombstones = db.connection.collection('pts_tombstones');
      const before = await db.connection.collection('pts_containers').findOne({ name: 'delete missing' });
      const args = await new Promise<unknown[]>((resolve) => {
        const r: unknown = c.deleteTask('no such task', (...a: unknown[]) => resolve([...a, r]));
      });
      expect(args).to.deep.equal([null, null, undefined]);
      expect(await c.deleteTask('no such task')).to.equal(null);
      expect(await tombstones.countDocuments({ container: 'delete missing' })).to.equal(0);
      expect(
        await db.connection.collection('pts_containers').findOne({ name: 'delete missing' }),
      ).to.deep.equal(before);
      // An existing one: true, both forms.
      expect(await c.deleteTask('free')).to.equal(true);
      expect(await c.deleteTask('free'), 'already deleted').to.equal(null);
      expect(
        await new Promise((resolve, reject) => c.deleteTask('b', (e, v) => (e ? reject(e) : resolve(v)))),
      ).to.equal(true);
      // A deleted container has no tasks: null as well.
      await client.deleteTaskContainer('delete missing');
      expect(await c.deleteTask('a')).to.equal(null);
    });

    it('other refusals stay errors: a running task, a task others depend on, a bad name', async function () {
      const c = await container('delete refused');
      const lease = (await client.claimNext({ container: 'delete refused', names: ['a'] }))!;
      for (const attempt of [
        () => c.deleteTask('a'),
        () => new Promise((resolve, reject) => c.deleteTask('a', (e, v) => (e ? reject(e) : resolve(v)))),
      ]) {
        try {
          await attempt();
          expect.fail('deleted a running task');
        } catch (err) {
          expect(err).to.be.instanceOf(InvalidTransitionError);
        }
      }
      await lease.succeed();
      try {
        await c.deleteTask('a');
        expect.fail('deleted a task another depends on');
      } catch (err) {
        expect((err as { code?: string }).code).to.equal('PTS_INVALID_TRANSITION');
      }
      try {
        await c.deleteTask('');
        expect.fail('accepted an empty name');
      } catch (err) {
        expect((err as { code?: string }).code).to.equal('PTS_VALIDATION');
      }
    });
  });
});
