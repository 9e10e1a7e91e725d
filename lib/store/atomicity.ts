/**
 * Whether a server applies a conditional single-document write atomically when several
 * connections race. MongoDB does; FerretDB 1.24 on SQLite without tools/ferretdb's serializing
 * proxy does not (findAndModify runs as a query and a separate update, so two racers can both
 * match, and concurrent `$inc`s lose updates). Every cross-process guarantee of the library
 * rests on it: the race specs and `npm run bench:concurrent` check a server with this first.
 * @internal exported through `persistent-task-status/testing` (a scratch collection: behind the store like every query)
 */
import mongoose from 'mongoose';

/** Result of {@link probeAtomicity}. */
export interface AtomicityProbe {
  rounds: number;
  /** Rounds in which more than one connection's conditional `findOneAndUpdate` matched the same document. */
  doubleWinners: number;
  /** Rounds in which concurrent `$inc`s on one document lost an increment. */
  lostIncrements: number;
  atomic: boolean;
}

/**
 * Races `connections` connections, `rounds` times, on one document of the scratch collection
 * `__pts_atomicity_probe` (dropped afterwards): a conditional `findOneAndUpdate` that only one may
 * win, then one `$inc` each that must all count.
 */
export async function probeAtomicity(
  uri: string,
  { rounds = 20, connections = 6 } = {},
): Promise<AtomicityProbe> {
  const conns = await Promise.all(
    Array.from({ length: connections }, () => mongoose.createConnection(uri, { maxPoolSize: 2 }).asPromise()),
  );
  try {
    const col = (i: number) =>
      conns[i].db!.collection<{ _id: number; state: string; n: number }>('__pts_atomicity_probe');
    let doubleWinners = 0;
    let lostIncrements = 0;
    for (let r = 0; r < rounds; r++) {
      await col(0).deleteMany({});
      await col(0).insertOne({ _id: r, state: 'pending', n: 0 });
      const won = await Promise.all(
        conns.map((_, i) =>
          col(i).findOneAndUpdate({ _id: r, state: 'pending' }, { $set: { state: 'running' } }),
        ),
      );
      if (won.filter(Boolean).length > 1) doubleWinners++;
      await Promise.all(conns.map((_, i) => col(i).updateOne({ _id: r }, { $inc: { n: 1 } })));
      if ((await col(0).findOne({ _id: r }))?.n !== conns.length) lostIncrements++;
    }
    await col(0)
      .drop()
      .catch(() => undefined);
    return { rounds, doubleWinners, lostIncrements, atomic: doubleWinners === 0 && lostIncrements === 0 };
  } finally {
    await Promise.all(conns.map((c) => c.close()));
  }
}
