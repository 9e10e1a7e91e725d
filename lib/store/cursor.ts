/**
 * Opaque pagination cursors: base64url of a small JSON object. A malformed cursor is a
 * {@link ValidationError}, never a query.
 * @internal
 */
import { ObjectId } from './bson';
import { ValidationError } from '../errors';

export function encodeCursor(id: ObjectId): string {
  return Buffer.from(JSON.stringify({ v: 1, id: id.toHexString() })).toString('base64url');
}

export function decodeCursor(cursor: unknown): ObjectId | null {
  if (cursor === undefined || cursor === null || cursor === '') return null;
  if (typeof cursor !== 'string' || cursor.length > 200 || !/^[A-Za-z0-9_-]+$/.test(cursor)) {
    throw new ValidationError('malformed cursor', { path: 'cursor' });
  }
  try {
    const o = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { v?: unknown; id?: unknown };
    if (o.v === 1 && typeof o.id === 'string' && /^[0-9a-f]{24}$/.test(o.id)) return new ObjectId(o.id);
  } catch {
    // fall through
  }
  throw new ValidationError('malformed cursor', { path: 'cursor' });
}
