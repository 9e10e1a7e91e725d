/**
 * API tokens of the HTTP service. A token is a random 32-byte secret (base64url) shown once at
 * creation; only its SHA-256 hash is stored, in the `<prefix>tokens` collection of the client's
 * connection. Each token has a scope (`read` < `worker` < `admin`) and an optional container-name
 * prefix that restricts which containers it may see or touch.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Client } from './client';
import { NotFoundError, ValidationError } from './errors';
import { tokenQueries, type TokenDoc, type TokenQueries } from './store/tokens';

/** What a token may do. `read` ⊂ `worker` ⊂ `admin`. */
export const TOKEN_SCOPES = Object.freeze(['read', 'worker', 'admin'] as const);
export type TokenScope = (typeof TOKEN_SCOPES)[number];

/** A stored token, without its secret. */
export interface TokenRecord {
  id: string;
  name: string;
  scope: TokenScope;
  /** Container names this token may access must start with this ('' = all). */
  prefix: string;
  createdAt: Date;
  revokedAt: Date | null;
}

/** Options of {@link TokenStore.create}. */
export interface CreateTokenOptions {
  /** Human-readable label. @defaultValue the scope */
  name?: string;
  scope: TokenScope;
  /** @defaultValue '' (every container) */
  prefix?: string;
}

/** How long a successful lookup is cached in-process (revocations through this store bypass it). */
const CACHE_MS = 1_000;

function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

function toRecord(d: TokenDoc): TokenRecord {
  return {
    id: d._id,
    name: d.name,
    scope: d.scope,
    prefix: d.prefix ?? '',
    createdAt: d.createdAt,
    revokedAt: d.revokedAt ?? null,
  };
}

/** True if `scope` grants at least `required`. */
export function scopeAllows(scope: TokenScope, required: TokenScope): boolean {
  return TOKEN_SCOPES.indexOf(scope) >= TOKEN_SCOPES.indexOf(required);
}

export class TokenStore {
  private readonly q: TokenQueries;
  private readonly cache = new Map<string, { record: TokenRecord; at: number }>();
  private indexes: Promise<unknown> | null = null;

  constructor(client: Client) {
    this.q = tokenQueries(client.connection, client.collectionPrefix);
  }

  private ready(): Promise<unknown> {
    if (!this.indexes) {
      this.indexes = this.q.ensureIndexes().catch((e) => {
        this.indexes = null;
        throw e;
      });
    }
    return this.indexes;
  }

  /** Creates a token. The secret (`token`) is returned only here; store it safely. */
  async create(opts: CreateTokenOptions): Promise<{ token: string; record: TokenRecord }> {
    if (!opts || !TOKEN_SCOPES.includes(opts.scope))
      throw new ValidationError(`scope must be one of ${TOKEN_SCOPES.join(', ')}`, { path: 'scope' });
    const prefix = opts.prefix ?? '';
    if (typeof prefix !== 'string' || prefix.length > 512)
      throw new ValidationError('prefix must be a string', { path: 'prefix' });
    const name = opts.name ?? opts.scope;
    if (typeof name !== 'string' || name.length === 0 || name.length > 200)
      throw new ValidationError('name must be a non-empty string', { path: 'name' });
    await this.ready();
    const token = `pts_${randomBytes(32).toString('base64url')}`;
    const doc: TokenDoc = {
      _id: randomBytes(8).toString('hex'),
      hash: hashToken(token),
      name,
      scope: opts.scope,
      prefix,
      createdAt: new Date(),
      revokedAt: null,
    };
    await this.q.insert(doc);
    return { token, record: toRecord(doc) };
  }

  /** Every token (revoked ones included), oldest first. Secrets are never returned. */
  async list(): Promise<TokenRecord[]> {
    const docs = await this.q.list();
    return docs.map((d) => toRecord({ ...d, hash: '' }));
  }

  /** Revokes a token by id; effective immediately in this process, within 1 s elsewhere. */
  async revoke(id: string): Promise<TokenRecord> {
    if (typeof id !== 'string' || !/^[0-9a-f]{16}$/.test(id))
      throw new ValidationError('malformed token id', { path: 'id' });
    this.cache.clear();
    const d = await this.q.revoke(id, new Date());
    this.cache.clear();
    if (!d) throw new NotFoundError(`no token with id ${id}`, { id });
    return toRecord(d);
  }

  /** The live (not revoked) token with that secret, or null. */
  async verify(token: string): Promise<TokenRecord | null> {
    if (typeof token !== 'string' || token.length < 10 || token.length > 200) return null;
    const hash = hashToken(token);
    const now = Date.now();
    const hit = this.cache.get(hash);
    if (hit && now - hit.at < CACHE_MS) return hit.record;
    const d = await this.q.findLive(hash);
    if (!d) {
      this.cache.delete(hash);
      return null;
    }
    const record = toRecord(d);
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(hash, { record, at: now });
    return record;
  }
}
