/**
 * What the connected MongoDB-compatible server can do. Used to pick code paths (and by the test
 * suite to skip tests) instead of assuming a full MongoDB replica set.
 */
import { randomBytes } from 'node:crypto';
import type { Db, Document } from 'mongodb';

export interface ServerCapabilities {
  /** The server is FerretDB (buildInfo reports `ferretdbVersion`). */
  ferretdb: boolean;
  /** Multi-document transactions work (probed on replica sets / mongos). */
  transactions: boolean;
  /** `$changeStream` aggregations are accepted (probed). */
  changeStreams: boolean;
  /** `expireAfterSeconds` indexes can be created (probed). */
  ttlIndexes: boolean;
  /** `partialFilterExpression` indexes can be created (probed). */
  partialIndexes: boolean;
  /** Updates with an aggregation pipeline (`[{ $set: ... }]`) are accepted (probed). */
  updatePipelines: boolean;
  /** Replica set member (hello.setName) or mongos (hello.msg === 'isdbgrid'). */
  replicaSet: boolean;
  /** MongoDB-compatible version from buildInfo.version (FerretDB reports the MongoDB version it emulates). */
  version: string;
}

async function succeeds(probe: () => Promise<unknown>): Promise<boolean> {
  try {
    await probe();
    return true;
  } catch {
    return false;
  }
}

/**
 * Detects capabilities from `buildInfo` and `hello` plus cheap real probes on a scratch collection
 * (`__pts_probe_<random>`, dropped afterwards) in `db`. A probe that fails for any reason, including
 * missing privileges, reports the capability as absent.
 */
export async function detectCapabilities(db: Db): Promise<ServerCapabilities> {
  const buildInfo: Document = await db.command({ buildInfo: 1 });
  let hello: Document;
  try {
    hello = await db.command({ hello: 1 });
  } catch {
    hello = await db.command({ isMaster: 1 }); // servers older than 4.4.2 / 5.0
  }

  const ferretdb = buildInfo.ferretdbVersion !== undefined;
  const replicaSet = typeof hello.setName === 'string' || hello.msg === 'isdbgrid';
  const version = typeof buildInfo.version === 'string' ? buildInfo.version : 'unknown';

  const scratchName = `__pts_probe_${randomBytes(6).toString('hex')}`;
  const scratch = db.collection<{ _id: string; n: number }>(scratchName);
  try {
    // Without write access every probe below fails, i.e. reports the capability as absent.
    await scratch.insertOne({ _id: 'probe', n: 1 }).catch(() => undefined);

    const updatePipelines = await succeeds(async () => {
      const res = await scratch.updateOne({ _id: 'probe' }, [{ $set: { n: { $add: ['$n', 1] } } }]);
      if (res.matchedCount !== 1) throw new Error('pipeline update did not match');
      const doc = await scratch.findOne({ _id: 'probe' });
      if (doc?.n !== 2) throw new Error('pipeline update was not applied');
    });

    const ttlIndexes = await succeeds(() =>
      scratch.createIndex({ expiresAt: 1 }, { name: 'ttl_probe', expireAfterSeconds: 3600 }),
    );

    const partialIndexes = await succeeds(() =>
      scratch.createIndex(
        { partialKey: 1 },
        {
          name: 'partial_probe',
          partialFilterExpression: { partialKey: { $exists: true } },
        },
      ),
    );

    const changeStreams = await succeeds(async () => {
      const res = await db.command({
        aggregate: scratchName,
        pipeline: [{ $changeStream: {} }],
        cursor: {},
      });
      if (res.cursor?.id !== undefined && String(res.cursor.id) !== '0') {
        await db.command({ killCursors: scratchName, cursors: [res.cursor.id] }).catch(() => undefined);
      }
    });

    // Only replica sets / mongos can run transactions; confirm with a real one.
    const transactions =
      replicaSet &&
      !ferretdb &&
      (await succeeds(async () => {
        const session = db.client.startSession();
        try {
          await session.withTransaction(async () => {
            await scratch.updateOne({ _id: 'probe' }, { $inc: { n: 1 } }, { session });
          });
        } finally {
          await session.endSession();
        }
      }));

    return {
      ferretdb,
      transactions,
      changeStreams,
      ttlIndexes,
      partialIndexes,
      updatePipelines,
      replicaSet,
      version,
    };
  } finally {
    await scratch.drop().catch(() => undefined);
  }
}
