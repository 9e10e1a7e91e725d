/**
 * What every store function needs: the collections, the write concern and the clock.
 * @internal
 */
import type { Db, WriteConcern } from 'mongodb';
import type { Clock } from '../clock';
import type { Collections } from './models';

export interface StoreContext {
  cols: Collections;
  writeConcern: WriteConcern;
  clock: Clock;
  failureHistoryLimit: number;
  /** The database handle, once connected (for server commands such as `hello`). */
  db: () => Db | undefined;
}

/** The fields every write sets: the write time, the revision and the server-assigned change stamp. */
export function stamp(now: Date): {
  $set: { updatedAt: Date };
  $inc: { rev: number };
  $currentDate: { changedAt: { $type: 'timestamp' } };
} {
  return { $set: { updatedAt: now }, $inc: { rev: 1 }, $currentDate: { changedAt: { $type: 'timestamp' } } };
}
