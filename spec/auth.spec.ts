import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { createClient } from '../lib/client';
import { TokenStore, scopeAllows } from '../lib/auth';
import { ValidationError, NotFoundError } from '../lib/errors';
import { useTestDatabase } from './helpers/db';

describe('auth TokenStore', function () {
  const db = useTestDatabase();

  it('creates tokens shown once and stores only their SHA-256 hash', async function () {
    const store = new TokenStore(createClient({ connection: db.connection }));
    const { token, record } = await store.create({ scope: 'worker', prefix: 'etl/', name: 'etl workers' });
    expect(token).to.match(/^pts_[A-Za-z0-9_-]{43}$/);
    expect(record).to.include({ scope: 'worker', prefix: 'etl/', name: 'etl workers', revokedAt: null });
    const raw = await db.connection.collection('pts_tokens').findOne({ _id: record.id as never });
    expect(raw!.hash).to.equal(createHash('sha256').update(token).digest('hex'));
    expect(JSON.stringify(raw)).not.to.include(token);
    expect(await store.verify(token)).to.deep.include({ id: record.id, scope: 'worker', prefix: 'etl/' });
    expect(await store.verify(token + 'x')).to.equal(null);
    const listed = await store.list();
    expect(listed.map((r) => r.id)).to.include(record.id);
    expect(JSON.stringify(listed)).not.to.include('hash');
  });

  it('revocation is immediate in-process and visible to another store within the cache TTL', async function () {
    const client = createClient({ connection: db.connection });
    const a = new TokenStore(client);
    const b = new TokenStore(client);
    const { token, record } = await a.create({ scope: 'admin' });
    expect(await a.verify(token)).to.not.equal(null);
    expect(await b.verify(token)).to.not.equal(null);
    const revoked = await a.revoke(record.id);
    expect(revoked.revokedAt).to.be.instanceOf(Date);
    expect(await a.verify(token)).to.equal(null);
    // b's cached lookup lasts at most 1 s
    await new Promise((r) => setTimeout(r, 1_050));
    expect(await b.verify(token)).to.equal(null);
    let err: unknown;
    await a.revoke('0123456789abcdef').catch((e) => (err = e));
    expect(err).to.be.instanceOf(NotFoundError);
  });

  it('validates scopes and orders them read < worker < admin', async function () {
    const store = new TokenStore(createClient({ connection: db.connection }));
    let err: unknown;
    await store.create({ scope: 'root' as never }).catch((e) => (err = e));
    expect(err).to.be.instanceOf(ValidationError);
    expect(scopeAllows('admin', 'worker')).to.equal(true);
    expect(scopeAllows('worker', 'read')).to.equal(true);
    expect(scopeAllows('read', 'worker')).to.equal(false);
    expect(scopeAllows('worker', 'admin')).to.equal(false);
  });
});
