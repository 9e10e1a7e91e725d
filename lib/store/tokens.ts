/**
 * The API tokens collection (`<prefix>tokens`) of the HTTP service: its queries, one function
 * each, with driver errors classified like every other store operation. Hashing, validation and
 * the lookup cache are in auth.ts.
 * @internal
 */
import type { Collection } from 'mongodb';
import type { Connection } from 'mongoose';
import { toDatabaseError } from './db-errors';

/** A stored token: only the SHA-256 of its secret. */
export interface TokenDoc {
  _id: string;
  hash: string;
  name: string;
  scope: 'read' | 'worker' | 'admin';
  prefix: string;
  createdAt: Date;
  revokedAt: Date | null;
}

export interface TokenQueries {
  ensureIndexes(): Promise<void>;
  insert(doc: TokenDoc): Promise<void>;
  /** Every token without its hash, oldest first. */
  list(): Promise<Array<Omit<TokenDoc, 'hash'>>>;
  /** Sets `revokedAt`; null if there is no such token. */
  revoke(id: string, at: Date): Promise<TokenDoc | null>;
  /** The token with that hash, unless revoked. */
  findLive(hash: string): Promise<TokenDoc | null>;
}

async function guard<T>(op: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw toDatabaseError(err, op);
  }
}

export function tokenQueries(connection: Connection, collectionPrefix: string): TokenQueries {
  const col = connection.collection<TokenDoc>(`${collectionPrefix}tokens`) as unknown as Collection<TokenDoc>;
  return {
    ensureIndexes: () =>
      guard(
        'tokens.ensureIndexes',
        async () => void (await col.createIndex({ hash: 1 }, { unique: true, name: 'hash_unique' })),
      ),
    insert: (doc) => guard('tokens.insert', async () => void (await col.insertOne(doc))),
    list: () =>
      guard('tokens.list', () =>
        col
          .find({}, { projection: { hash: 0 } })
          .sort({ createdAt: 1, _id: 1 })
          .toArray(),
      ),
    revoke: (id, at) =>
      guard('tokens.revoke', () =>
        col.findOneAndUpdate({ _id: id }, { $set: { revokedAt: at } }, { returnDocument: 'after' }),
      ),
    findLive: (hash) => guard('tokens.findLive', () => col.findOne({ hash, revokedAt: null })),
  };
}
