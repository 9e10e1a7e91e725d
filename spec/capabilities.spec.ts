import { expect } from 'chai';
import type { Context } from 'mocha';
import type { Document } from 'mongodb';
import { detectCapabilities, type ServerCapabilities } from './helpers/capabilities';
import { requireCapability, useTestDatabase } from './helpers/db';

/** Resolves to true if `fn` succeeds, false if it throws. */
async function works(fn: () => Promise<unknown>): Promise<boolean> {
  try {
    await fn();
    return true;
  } catch {
    return false;
  }
}

describe('detectCapabilities', function () {
  const db = useTestDatabase();
  let buildInfo: Document;
  let hello: Document;

  before(async function () {
    buildInfo = await db.connection.db!.command({ buildInfo: 1 });
    hello = await db.connection.db!.command({ hello: 1 });
  });

  it('reports server identity from buildInfo and hello', function () {
    const caps = db.capabilities;
    expect(caps.ferretdb).to.equal(buildInfo.ferretdbVersion !== undefined);
    expect(caps.version).to.equal(buildInfo.version);
    expect(caps.replicaSet).to.equal(typeof hello.setName === 'string' || hello.msg === 'isdbgrid');
    const kind = process.env.PTS_TEST_SERVER_KIND;
    if (kind === 'ferretdb') expect(caps.ferretdb).to.equal(true);
    if (kind === 'mongodb-memory-server') expect(caps.ferretdb).to.equal(false);
  });

  it('matches the known profile of the server kind in use', function () {
    const caps = db.capabilities;
    const kind = process.env.PTS_TEST_SERVER_KIND;
    const base = { version: caps.version };
    if (kind === 'ferretdb') {
      // FerretDB 1.24 on SQLite: see docs/testing.md
      expect(caps).to.deep.equal({
        ...base,
        ferretdb: true,
        transactions: false,
        changeStreams: false,
        ttlIndexes: false,
        partialIndexes: false,
        updatePipelines: false,
        replicaSet: false,
      } satisfies ServerCapabilities);
    } else if (kind === 'mongodb-memory-server') {
      // MongoMemoryServer.create() is a standalone mongod
      expect(caps).to.deep.equal({
        ...base,
        ferretdb: false,
        transactions: false,
        changeStreams: false,
        ttlIndexes: true,
        partialIndexes: true,
        updatePipelines: true,
        replicaSet: false,
      } satisfies ServerCapabilities);
    } else {
      console.log(`[pts-test] external server capabilities: ${JSON.stringify(caps)}`);
      if (!caps.ferretdb) {
        expect(caps.ttlIndexes, 'MongoDB supports TTL indexes').to.equal(true);
        expect(caps.partialIndexes, 'MongoDB >= 3.2 supports partial indexes').to.equal(true);
      }
      if (caps.transactions) expect(caps.replicaSet).to.equal(true);
    }
  });

  it('is consistent with what the server actually does', async function () {
    const caps = db.capabilities;
    const conn = db.connection;
    const coll = conn.collection<{ _id: string; n: number }>('caps_behaviour');
    await coll.insertOne({ _id: 'x', n: 1 });

    // update pipelines: accepted and applied iff reported
    const pipelineApplied = await works(async () => {
      await coll.updateOne({ _id: 'x' }, [{ $set: { n: { $multiply: ['$n', 10] } } }]);
      if ((await coll.findOne({ _id: 'x' }))?.n !== 10) throw new Error('not applied');
    });
    expect(pipelineApplied, 'updatePipelines').to.equal(caps.updatePipelines);

    // TTL and partial indexes: created (and visible in listIndexes) iff reported
    const ttlCreated = await works(() =>
      coll.createIndex({ at: 1 }, { name: 'at_ttl', expireAfterSeconds: 60 }),
    );
    const partialCreated = await works(() =>
      coll.createIndex(
        { p: 1 },
        {
          name: 'p_partial',
          partialFilterExpression: { p: { $exists: true } },
        },
      ),
    );
    const indexes = await coll.listIndexes().toArray();
    const ttl = indexes.find((i) => i.name === 'at_ttl');
    const partial = indexes.find((i) => i.name === 'p_partial');
    expect(ttlCreated && ttl?.expireAfterSeconds === 60, 'ttlIndexes').to.equal(caps.ttlIndexes);
    expect(partialCreated && partial?.partialFilterExpression !== undefined, 'partialIndexes').to.equal(
      caps.partialIndexes,
    );

    // change streams: a watch() either delivers the next insert or errors
    const changeSeen = await works(async () => {
      const stream = coll.watch([], { maxAwaitTimeMS: 200 });
      try {
        await stream.tryNext(); // opens the cursor
        await coll.insertOne({ _id: 'y', n: 2 });
        const deadline = Date.now() + 5000;
        while (Date.now() < deadline) {
          const change = await stream.tryNext();
          if (change?.operationType === 'insert') return;
        }
        throw new Error('no change event');
      } finally {
        await stream.close();
      }
    });
    expect(changeSeen, 'changeStreams').to.equal(caps.changeStreams);

    // transactions: an aborted transaction rolls back its insert iff reported
    const session = conn.getClient().startSession();
    let rolledBack = false;
    try {
      session.startTransaction();
      await coll.insertOne({ _id: 'tx', n: 3 }, { session });
      await session.abortTransaction();
      rolledBack = (await coll.countDocuments({ _id: 'tx' })) === 0;
    } catch {
      rolledBack = false;
    } finally {
      await session.endSession();
    }
    expect(rolledBack, 'transactions').to.equal(caps.transactions);
  });

  it('leaves no probe collection behind', async function () {
    await detectCapabilities(db.connection.db!);
    const names = (await db.connection.db!.listCollections({}, { nameOnly: true }).toArray()).map(
      (c) => c.name,
    );
    expect(names.filter((n) => n.startsWith('__pts_probe_'))).to.deep.equal([]);
  });

  it('gives each spec file its own database', function () {
    expect(db.dbName).to.match(/^pts_capabilities_[0-9a-f]{8}$/);
    expect(db.connection.name).to.equal(db.dbName);
    expect(db.uri).to.match(new RegExp(`/${db.dbName}(\\?|$)`));
  });

  describe('requireCapability', function () {
    it('runs the test when the capability is present', function () {
      // every server reports a version string
      requireCapability(this, db.capabilities, 'version', 'servers always report a version');
      expect(db.capabilities.version).to.be.a('string').and.not.equal('');
    });

    it('prints the reason and calls skip() when the capability is missing', function () {
      const caps: ServerCapabilities = {
        ...db.capabilities,
        transactions: false,
      };
      const skipped = new Error('skip() called');
      // A stand-in context: skipping the real one would turn this test into a pending one.
      const ctx = {
        test: this.test,
        currentTest: this.test,
        skip: () => {
          throw skipped;
        },
      } as unknown as Context;
      const lines: string[] = [];
      const original = console.log;
      console.log = (...args: unknown[]) => {
        lines.push(args.map(String).join(' '));
      };
      let thrown: unknown;
      try {
        requireCapability(ctx, caps, 'transactions', 'demo: no transactions');
      } catch (err) {
        thrown = err;
      } finally {
        console.log = original;
      }
      expect(thrown).to.equal(skipped);
      expect(lines).to.deep.equal([`[pts-test] skipped: ${this.test!.fullTitle()}: demo: no transactions`]);
    });
  });
});
