import { expect } from 'chai';
import { createClient, NotFoundError, TaskContainer, ValidationError, type Client } from '../lib';
import { useTestDatabase } from './helpers/db';
import { expectConsistent } from './helpers/consistency';

describe('client', function () {
  const db = useTestDatabase();
  let client: Client;
  before(function () {
    client = createClient({ connection: db.connection });
  });

  describe('original API with callbacks', function () {
    it('getOrCreateTaskContainer calls back (err, container, isNew)', function (done) {
      client.getOrCreateTaskContainer('cb container', (err, container, isNew) => {
        try {
          expect(err).to.equal(null);
          expect(container).to.be.instanceOf(TaskContainer);
          expect(isNew).to.equal(true);
        } catch (e) {
          return done(e);
        }
        client.getOrCreateTaskContainer('cb container', (err2, again, isNew2) => {
          try {
            expect(err2).to.equal(null);
            expect(again!.id).to.equal(container!.id);
            expect(isNew2).to.equal(false);
            done();
          } catch (e) {
            done(e);
          }
        });
      });
    });

    it('addTask, getTask, getTasks, updateTask and deleteTask call back', function (done) {
      client.getOrCreateTaskContainer('cb tasks', (err, container) => {
        if (err) return done(err);
        container!.addTask('my unique name within container', null, (e, task) => {
          if (e) return done(e);
          try {
            expect(task!.name()).to.equal('my unique name within container');
            expect(task!.percentageComplete()).to.equal(0);
            expect(task!.maxRetries()).to.equal(3);
            expect(task!.delayBetweenRetriesInSeconds()).to.equal(30);
            expect(task!.isComplete()).to.equal(false);
            expect(task!.hasFailed()).to.equal(false);
            expect(task!.invokeCount()).to.equal(0);
          } catch (x) {
            return done(x);
          }
          container!.updateTask('my unique name within container', { percentageComplete: 40, statusText: 'copying' }, (e2, updated) => {
            if (e2) return done(e2);
            container!.getTasks((e3, tasks) => {
              if (e3) return done(e3);
              try {
                expect(updated!.percentageComplete()).to.equal(40);
                expect(tasks!.map((t) => t.statusText())).to.deep.equal(['copying']);
              } catch (x) {
                return done(x);
              }
              container!.deleteTask('my unique name within container', (e4, ok) => {
                if (e4) return done(e4);
                container!.getTask('my unique name within container', (e5, gone) => {
                  try {
                    expect(e5).to.equal(null);
                    expect(ok).to.equal(true);
                    expect(gone).to.equal(null);
                    done();
                  } catch (x) {
                    done(x);
                  }
                });
              });
            });
          });
        });
      });
    });

    it('passes errors to the callback instead of throwing', function (done) {
      client.getOrCreateTaskContainer('', (err) => {
        try {
          expect(err).to.be.instanceOf(ValidationError);
          expect((err as ValidationError).code).to.equal('PTS_VALIDATION');
          done();
        } catch (e) {
          done(e);
        }
      });
    });

    it('getTaskContainer gives null for an unknown name and deleteTaskContainer removes tasks too', function (done) {
      client.getTaskContainer('nope', (err, c) => {
        if (err) return done(err);
        try {
          expect(c).to.equal(null);
        } catch (e) {
          return done(e);
        }
        (async () => {
          const c2 = await client.getOrCreateTaskContainer('to delete');
          await c2.addTasks([{ name: 'a' }, { name: 'b', dependsOn: ['a'] }]);
          client.deleteTaskContainer('to delete', async (e, deleted) => {
            try {
              expect(e).to.equal(null);
              expect(deleted).to.equal(true);
              expect(await client.getTaskContainer('to delete')).to.equal(null);
              expect(await db.connection.collection('pts_tasks').countDocuments({ container: 'to delete' })).to.equal(0);
              done();
            } catch (x) {
              done(x);
            }
          });
        })().catch(done);
      });
    });
  });

  describe('callback calls return nothing (typed void)', function () {
    it('returns undefined for every callback-capable method, and the types say so', async function () {
      const c = await client.getOrCreateTaskContainer('void returns');
      await c.addTasks([{ name: 't' }, { name: 'w' }]);
      const results = await Promise.all(
        [
          (cb: (e: Error | null) => void): void => client.getTaskContainer('void returns', cb),
          (cb: (e: Error | null) => void): void => client.getOrCreateTaskContainer('void returns', cb),
          (cb: (e: Error | null) => void): void => client.getOrCreateTaskContainer('void returns', {}, cb),
          (cb: (e: Error | null) => void): void => c.addTask('u', null, cb),
          (cb: (e: Error | null) => void): void => c.addTask('v', null, { maxRetries: 1 }, cb),
          (cb: (e: Error | null) => void): void => c.getTask('t', cb),
          (cb: (e: Error | null) => void): void => c.getTasks(cb),
          (cb: (e: Error | null) => void): void => c.updateTask('t', { statusText: 'x' }, cb),
          (cb: (e: Error | null) => void): void => c.isComplete(cb),
          (cb: (e: Error | null) => void): void => c.checkComplete(cb),
          (cb: (e: Error | null) => void): void => c.deleteTask('w', cb),
          (cb: (e: Error | null) => void): void => client.deleteTaskContainer('no such container', cb),
        ].map(
          (call) =>
            new Promise<unknown>((resolve, reject) => {
              const returned: unknown = call((e) => (e ? reject(e) : resolve(returned)));
            }),
        ),
      );
      expect(results).to.have.length(12);
      for (const r of results) expect(r).to.equal(undefined);
      // Compile-time half: awaiting or chaining a callback call is a type error.
      const misuse = (): unknown =>
        // @ts-expect-error a callback call returns void, not a promise
        client.getTaskContainer('x', () => undefined).then;
      expect(misuse).to.be.a('function');
    });
  });

  describe('original API with promises', function () {
    it('returns promises when no callback is given', async function () {
      const c = await client.getOrCreateTaskContainer('promise container');
      expect(c.isNew).to.equal(true);
      const t = await c.addTask('step', { file: 'a.csv' });
      expect(t.taskData()).to.deep.equal({ file: 'a.csv' });
      expect((await c.getTask('step'))!.taskData()).to.deep.equal({ file: 'a.csv' });
      expect(await c.isComplete()).to.equal(false);
      await c.updateTask('step', { isComplete: true });
      expect(await c.isComplete()).to.equal(true);
      const done = (await c.getTask('step'))!;
      expect(done.isComplete()).to.equal(true);
      expect(done.percentageComplete()).to.equal(100);
      expect(done.taskEndedAt()).to.be.instanceOf(Date);
      await expectConsistent(c);
    });

    it('an empty container is not complete', async function () {
      const c = await client.getOrCreateTaskContainer('empty');
      expect(await c.isComplete()).to.equal(false);
      expect((await c.summary()).status).to.equal('pending');
    });

    it('reads go to the database; only the synchronous isComplete() answers from what the handle last saw', async function () {
      const a = await client.getOrCreateTaskContainer('fresh reads');
      const other = createClient({ connection: db.connection });
      const b = await other.getOrCreateTaskContainer('fresh reads');
      await a.addTask('x', null);
      await b.updateTask('x', { percentageComplete: 70 });
      expect((await a.getTask('x'))!.percentageComplete()).to.equal(70);
      expect((await a.summary()).percentageComplete).to.equal(70);
      await b.updateTask('x', { isComplete: true });
      // The documented rule: isComplete() is what handle `a` last read or wrote (its summary above).
      expect(a.isComplete()).to.equal(false);
      expect(b.isComplete()).to.equal(true); // b's own write returned the container
      // The awaitable database read, and the callback form (which also reads), see the change...
      expect(await a.checkComplete()).to.equal(true);
      // ...and from then on isComplete() answers from it.
      expect(a.isComplete()).to.equal(true);
      const fresh = await client.getTaskContainer('fresh reads');
      expect(fresh!.isComplete()).to.equal(true);
    });
  });

  describe('races', function () {
    it('20 concurrent get-or-create of one name give one container and exactly one isNew', async function () {
      const clients = Array.from({ length: 4 }, () => createClient({ connection: db.connection }));
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => clients[i % 4].getOrCreateTaskContainer('raced container')));
      expect(results.filter((c) => c.isNew)).to.have.length(1);
      expect(new Set(results.map((c) => c.id)).size).to.equal(1);
      expect(await db.connection.collection('pts_containers').countDocuments({ name: 'raced container' })).to.equal(1);
    });

    it('20 concurrent addTask of one name give one task document', async function () {
      const c = await client.getOrCreateTaskContainer('raced tasks');
      const tasks = await Promise.all(Array.from({ length: 20 }, () => c.addTask('same step', { n: 1 })));
      expect(new Set(tasks.map((t) => t.id)).size).to.equal(1);
      expect(await db.connection.collection('pts_tasks').countDocuments({ container: 'raced tasks', name: 'same step' })).to.equal(1);
      expect((await c.summary()).counts.pending).to.equal(1);
      await expectConsistent(c);
    });
  });

  describe('listing', function () {
    it('lists containers by status and name prefix with cursor pagination', async function () {
      for (let i = 0; i < 7; i++) await client.getOrCreateTaskContainer(`nightly/${i}`);
      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const page = await client.listContainers({ namePrefix: 'nightly/', limit: 3, cursor });
        expect(page.items.length).to.be.at.most(3);
        seen.push(...page.items.map((c) => c.name));
        cursor = page.nextCursor;
      } while (cursor);
      expect(seen).to.deep.equal(['nightly/6', 'nightly/5', 'nightly/4', 'nightly/3', 'nightly/2', 'nightly/1', 'nightly/0']);
      const pending = await client.listContainers({ namePrefix: 'nightly/', status: 'succeeded' });
      expect(pending.items).to.have.length(0);
      // prefix is literal, not a regex
      expect((await client.listContainers({ namePrefix: 'nightly.' })).items).to.have.length(0);
      try {
        await client.listContainers({ cursor: 'not-a-cursor!' });
        expect.fail('accepted a malformed cursor');
      } catch (err) {
        expect(err).to.be.instanceOf(ValidationError);
      }
    });

    it('summary of an unknown container is null; operations on a deleted one are NotFound', async function () {
      expect(await client.summary('missing')).to.equal(null);
      const c = await client.getOrCreateTaskContainer('short lived');
      await client.deleteTaskContainer('short lived');
      try {
        await c.summary();
        expect.fail('no error');
      } catch (err) {
        expect(err).to.be.instanceOf(NotFoundError);
      }
    });
  });
});
