/**
 * Durability settings: the write concern the driver actually sends (command monitoring), by default
 * and when configured.
 */
import { expect } from 'chai';
import mongoose from 'mongoose';
import { createClient, type WriteConcernOptions } from '../../lib';
import { useTestDatabase } from '../helpers/db';
import { trackResource } from '../helpers/leaks';

const WRITES = new Set(['insert', 'update', 'delete', 'findAndModify']);

async function writeConcernsSent(
  uri: string,
  writeConcern: WriteConcernOptions | undefined,
): Promise<Array<{ cmd: string; wc: unknown }>> {
  const conn = mongoose.createConnection(uri, { monitorCommands: true });
  const untrack = trackResource('monitored connection', () => conn.close(true));
  try {
    await conn.asPromise();
    const seen: Array<{ cmd: string; wc: unknown }> = [];
    conn.getClient().on('commandStarted', (e) => {
      if (WRITES.has(e.commandName) && String(e.command[e.commandName]).startsWith('pts_'))
        seen.push({ cmd: `${e.commandName} ${e.command[e.commandName]}`, wc: e.command.writeConcern });
    });
    const client = createClient({ connection: conn, writeConcern, leaseMs: 60_000 });
    // One of every kind of write: create, add (single and batch), claim, heartbeat, fail, succeed, admin transitions, key limit, delete.
    const c = await client.getOrCreateTaskContainer(`wc-${Math.random().toString(36).slice(2)}`);
    await c.addTask('a', {});
    await c.addTasks([{ name: 'b', dependsOn: ['a'] }, { name: 'k', key: 'wk' }, { name: 'x' }]);
    await client.setKeyLimit('wk', 2);
    const l = (await client.claimNext({ container: c.name(), names: ['a'] }, { owner: 'w' }))!;
    await l.heartbeat({ percentageComplete: 50 });
    await l.fail(new Error('once'));
    await c.retry('a').catch(() => undefined);
    await c.updateTask('a', { isComplete: true });
    const k = (await client.claimNext({ container: c.name(), key: 'wk' }, { owner: 'w' }))!;
    await k.heartbeat({ statusText: 'keyed' });
    await k.succeed({ ok: true });
    await c.cancel('x');
    await c.skip('x');
    await c.reset('x');
    await client.recoverStale({ container: c.name() });
    await client.deleteTaskContainer(c.name());
    await client.close();
    return seen;
  } finally {
    await conn.close(true);
    untrack();
  }
}

describe('reliability: durability settings', function () {
  this.timeout(60_000);
  const db = useTestDatabase();

  it('sends { w: 1, j: true } with every write by default', async function () {
    const seen = await writeConcernsSent(db.uri, undefined);
    const kinds = new Set(seen.map((s) => s.cmd.split(' ')[0]));
    expect([...kinds]).to.include.members(['findAndModify', 'update', 'delete']);
    expect(seen.length).to.be.greaterThan(15);
    const wrong = seen.filter((s) => JSON.stringify(s.wc) !== JSON.stringify({ w: 1, j: true }));
    expect(wrong, `writes without { w: 1, j: true }: ${JSON.stringify(wrong)}`).to.deep.equal([]);
    console.log(
      `[reliability] durability: ${seen.length} write commands (${[...kinds].join(', ')}) all carried writeConcern { w: 1, j: true }`,
    );
  });

  it("sends w: 'majority' when the client is configured with it", async function () {
    const seen = await writeConcernsSent(db.uri, { w: 'majority' });
    expect(seen.length).to.be.greaterThan(15);
    const wrong = seen.filter((s) => (s.wc as { w?: unknown } | undefined)?.w !== 'majority');
    expect(wrong, `writes without w: 'majority': ${JSON.stringify(wrong)}`).to.deep.equal([]);
    console.log(
      `[reliability] durability: ${seen.length} write commands all carried w: 'majority' when configured`,
    );
  });
});
