import { spawn } from 'node:child_process';
import path from 'node:path';
import { expect } from 'chai';
import mongoose from 'mongoose';
import { createClient, ManualClock, ValidationError, type Client, type LogLine } from '../lib';
import { useTestDatabase } from './helpers/db';
import { trackResource } from './helpers/leaks';
import { parseSse, startFixture } from './http/support';

const MAIN = path.join(__dirname, '..', 'lib', 'cli', 'main.ts');

/** Runs `pts` as a real process; `onOut` sees stdout as it arrives. */
function pts(uri: string, args: string[], onOut: (text: string) => void = () => undefined): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
      env: { ...process.env, NO_COLOR: '1', MONGODB_URI: uri },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const untrack = trackResource(`pts ${args.join(' ')}`, () => child.kill('SIGKILL'));
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => {
      stdout += b.toString();
      onOut(stdout);
    });
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      untrack();
      resolve({ code, stdout, stderr });
    });
  });
}

describe('step logs', function () {
  const db = useTestDatabase();
  let conn: mongoose.Connection;
  let client: Client;
  let clock: ManualClock;
  /** Commands sent to the two log collections. */
  let logCommands: string[] = [];
  let n = 0;

  before(async function () {
    conn = await mongoose.createConnection(db.uri, { monitorCommands: true }).asPromise();
    conn.getClient().on('commandStarted', (e) => {
      const coll = e.command[e.commandName];
      if (coll === 'pts_logs' || coll === 'pts_log_counters') logCommands.push(`${e.commandName} ${coll}`);
    });
    clock = new ManualClock(Date.parse('2026-01-01T00:00:00Z'));
    client = createClient({ connection: conn, clock, leaseMs: 10_000, workerId: 'w1' });
    await client.ensureIndexes();
  });
  after(async function () {
    await client.close();
    await conn.close();
  });

  async function oneTask(maxRetries = 0) {
    const c = await client.getOrCreateTaskContainer(`logs ${++n}`);
    await c.addTasks([{ name: 'step', maxRetries, retryDelayMs: 0 }]);
    return c;
  }
  async function allLines(task: { logs: (q?: { attempt?: number; cursor?: string; limit?: number }) => Promise<{ lines: LogLine[]; nextCursor: string; hasMore: boolean }> }, attempt?: number): Promise<LogLine[]> {
    const out: LogLine[] = [];
    let cursor: string | undefined;
    for (;;) {
      const p = await task.logs({ attempt, cursor, limit: 1000 });
      out.push(...p.lines);
      cursor = p.nextCursor;
      if (!p.hasMore) return out;
    }
  }

  it('ctx.log() lines are stored per attempt (the invokeCount), with level, fields and the clock’s time; all written before the outcome', async function () {
    const c = await oneTask(1);
    const res = await c.run(async (ctx) => {
      ctx.log('info', `starting attempt ${ctx.task.invokeCount}`, { rows: 3 });
      ctx.log('debug', 'detail');
      if (ctx.task.invokeCount === 1) {
        ctx.log('error', 'giving up');
        throw new Error('first attempt fails');
      }
      ctx.log('warn', 'done', { nested: { ok: true } });
    });
    expect(res.status).to.equal('succeeded');
    const t = (await c.getTask('step'))!;
    const all = await t.logs();
    expect(all.attempts).to.deep.equal([1, 2]);
    expect(all.total).to.equal(6);
    expect(all.dropped).to.equal(0);
    expect(all.hasMore).to.equal(false);
    expect(all.lines.map((l) => [l.seq, l.attempt, l.level, l.message, l.fields])).to.deep.equal([
      [0, 1, 'info', 'starting attempt 1', { rows: 3 }],
      [1, 1, 'debug', 'detail', null],
      [2, 1, 'error', 'giving up', null],
      [3, 2, 'info', 'starting attempt 2', { rows: 3 }],
      [4, 2, 'debug', 'detail', null],
      [5, 2, 'warn', 'done', { nested: { ok: true } }],
    ]);
    expect(all.lines[0].time.toISOString()).to.equal('2026-01-01T00:00:00.000Z');
    const second = await t.logs({ attempt: 2 });
    expect(second.lines.map((l) => l.message)).to.deep.equal(['starting attempt 2', 'detail', 'done']);
    expect(second.total).to.equal(3);
  });

  it('a flood of 100,000 ctx.log() calls: a handful of writes, the last 1,000 lines kept, the last line kept, the rest counted', async function () {
    const c = await oneTask();
    logCommands = [];
    await c.run((ctx) => {
      for (let i = 0; i < 100_000; i++) ctx.log('info', `line ${i}`);
    });
    const writes = logCommands.filter((x) => !x.startsWith('find '));
    // Measured: 2 flushes (one when the buffer first held 1,000 lines, one before the outcome):
    // 2 counter updates, 2 chunk inserts and 1 trim.
    expect(logCommands).to.deep.equal([
      'findAndModify pts_log_counters',
      'insert pts_logs',
      'findAndModify pts_log_counters',
      'insert pts_logs',
      'delete pts_logs',
    ]);
    expect(writes).to.have.length(5);
    const t = (await c.getTask('step'))!;
    const lines = await allLines(t);
    expect(lines).to.have.length(1000);
    expect(lines[lines.length - 1].message).to.equal('line 99999');
    expect(lines[0].message).to.equal('line 99000');
    expect(lines[0].seq).to.equal(99_000);
    const p = await t.logs({ limit: 1 });
    expect(p.total).to.equal(100_000);
    expect(p.dropped).to.equal(99_000);
  });

  it('the bound is per task: older lines are trimmed across attempts and counted as dropped', async function () {
    const small = createClient({ connection: conn, clock, leaseMs: 10_000, workerId: 'w2', logMaxLines: 10 });
    try {
      const c = await small.getOrCreateTaskContainer(`logs ${++n}`);
      await c.addTasks([{ name: 'step', maxRetries: 2, retryDelayMs: 0 }]);
      await c.run((ctx) => {
        for (let i = 0; i < 7; i++) ctx.log('info', `a${ctx.task.invokeCount} ${i}`);
        if (ctx.task.invokeCount < 3) throw new Error('again');
      });
      const t = (await c.getTask('step'))!;
      const all = await t.logs();
      expect(all.total).to.equal(21);
      expect(all.lines.map((l) => l.message)).to.deep.equal(['a2 4', 'a2 5', 'a2 6', 'a3 0', 'a3 1', 'a3 2', 'a3 3', 'a3 4', 'a3 5', 'a3 6']);
      expect(all.dropped).to.equal(11);
      const first = await t.logs({ attempt: 1 });
      expect([first.lines.length, first.total, first.dropped]).to.deep.equal([0, 7, 7]);
      // Stored: at most the bound plus one chunk (whole chunks are trimmed).
      const stored = await conn.collection('pts_logs').aggregate([{ $match: { taskId: new mongoose.Types.ObjectId(t.id) } }]).toArray();
      expect(stored.reduce((s, d) => s + (d.lines as unknown[]).length, 0)).to.be.at.most(10 + 7);
    } finally {
      await small.close();
    }
  });

  it('the cursor pages through the log and then follows it: only lines logged since', async function () {
    const c = await oneTask();
    const lease = (await client.claimNext({ container: c.name() }))!;
    for (let i = 0; i < 25; i++) lease.log('info', `m${i}`);
    await lease.flushLogs();
    const t = (await c.getTask('step'))!;
    const a = await t.logs({ limit: 10 });
    expect(a.lines.map((l) => l.seq)).to.deep.equal([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(a.hasMore).to.equal(true);
    const b = await t.logs({ cursor: a.nextCursor, limit: 10 });
    expect(b.lines[0].message).to.equal('m10');
    const rest = await t.logs({ cursor: b.nextCursor, limit: 10 });
    expect(rest.lines.map((l) => l.message)).to.deep.equal(['m20', 'm21', 'm22', 'm23', 'm24']);
    expect(rest.hasMore).to.equal(false);
    const none = await t.logs({ cursor: rest.nextCursor });
    expect(none.lines).to.deep.equal([]);
    lease.log('warn', 'later');
    await lease.succeed();
    const later = await t.logs({ cursor: none.nextCursor });
    expect(later.lines.map((l) => l.message)).to.deep.equal(['later']);
  });

  it('bad input is a ValidationError with nothing kept; long messages are cut and cleaned', async function () {
    const c = await oneTask();
    const lease = (await client.claimNext({ container: c.name() }))!;
    const bad: Array<() => void> = [
      () => lease.log('fatal' as never, 'x'),
      () => lease.log('info', undefined as never),
      () => lease.log('info', 'x', [] as never),
      () => lease.log('info', 'x', { $where: 1 }),
      () => lease.log('info', 'x', { big: 'y'.repeat(5000) }),
    ];
    for (const f of bad) {
      expect(f).to.throw(ValidationError);
      try {
        f();
      } catch (err) {
        expect((err as ValidationError).code).to.equal('PTS_VALIDATION');
      }
    }
    lease.log('info', `a\u0000b${'z'.repeat(3000)}`);
    await lease.succeed();
    const t = (await c.getTask('step'))!;
    const p = await t.logs();
    expect(p.lines).to.have.length(1);
    expect(p.lines[0].message.startsWith('a\ufffdb')).to.equal(true);
    expect(p.lines[0].message).to.match(/… \(1003 more characters\)$/);
    let err: unknown;
    await t.logs({ cursor: 'not-a-cursor!' }).catch((e: unknown) => (err = e));
    expect(err).to.be.instanceOf(ValidationError);
  });

  it('deleting a task or a container deletes its logs', async function () {
    const c = await client.getOrCreateTaskContainer(`logs ${++n}`);
    await c.addTasks([{ name: 'a' }, { name: 'b' }]);
    await c.run((ctx) => ctx.log('info', ctx.name));
    const a = (await c.getTask('a'))!;
    const b = (await c.getTask('b'))!;
    const count = (id: string) => conn.collection('pts_logs').countDocuments({ taskId: new mongoose.Types.ObjectId(id) });
    const counters = (id: string) => conn.collection('pts_log_counters').countDocuments({ _id: new mongoose.Types.ObjectId(id) });
    expect([await count(a.id), await count(b.id)]).to.deep.equal([1, 1]);
    await c.deleteTask('a');
    expect([await count(a.id), await counters(a.id), await count(b.id)]).to.deep.equal([0, 0, 1]);
    await client.deleteTaskContainer(c.name());
    expect([await count(b.id), await counters(b.id)]).to.deep.equal([0, 0]);
  });

  it('a real crash (SIGKILL): the lines flushed before it are kept, the ones still in memory are lost', async function () {
    this.timeout(120_000);
    const c = await oneTask();
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, 'fixtures', 'log-crash-worker.ts'), db.uri, 'pts_', c.name()], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const untrack = trackResource('log-crash-worker', () => child.kill('SIGKILL'));
    let out = '';
    const done = new Promise<NodeJS.Signals | null>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (_code, signal) => {
        untrack();
        resolve(signal);
      });
    });
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
      if (out.includes('ready')) child.kill('SIGKILL');
    });
    expect(await done, out).to.equal('SIGKILL');
    const t = (await c.getTask('step'))!;
    const p = await t.logs();
    expect(p.lines.map((l) => l.message)).to.deep.equal(['kept 0', 'kept 1', 'kept 2', 'kept 3', 'kept 4']);
    expect(p.attempts).to.deep.equal([1]);
  });

  it('HTTP: a worker appends lines under its lease token (409 once lost, 400 and nothing kept for a bad line); readers page and follow them (SSE)', async function () {
    const f = await startFixture(db);
    try {
      const C = `http-logs-${++n}`;
      await f.call('PUT', `/api/v1/containers/${C}`, { body: {} });
      await f.call('POST', `/api/v1/containers/${C}/tasks`, { body: { tasks: [{ name: 'step' }] } });
      const claimed = await f.call('POST', '/api/v1/claim', { token: f.token.worker, body: { container: C, owner: 'h1' } });
      const token = claimed.body.token as number;
      const url = `/api/v1/containers/${C}/tasks/step/log`;
      const ok = await f.call('POST', url, { token: f.token.worker, body: { token, lines: [{ level: 'info', message: 'one', fields: { n: 1 } }, { level: 'warn', message: 'two' }] } });
      expect(ok.status, JSON.stringify(ok.body)).to.equal(200);
      expect(ok.body).to.deep.equal({ accepted: 2 });
      const bad = await f.call('POST', url, { token: f.token.worker, body: { token, lines: [{ level: 'info', message: 'three' }, { level: 'info', message: 'x', fields: { $x: 1 } }] } });
      expect(bad.status).to.equal(400);
      expect(bad.body.error.code).to.equal('PTS_VALIDATION');
      expect((await f.call('POST', url, { token: f.token.read, body: { token, lines: [{ level: 'info', message: 'r' }] } })).status).to.equal(403);
      const stale = await f.call('POST', url, { token: f.token.worker, body: { token: token + 1, lines: [{ level: 'info', message: 'stale' }] } });
      expect(stale.status).to.equal(409);
      const read = await f.call('GET', `/api/v1/containers/${C}/tasks/step/logs?limit=1`, { token: f.token.read });
      expect(read.status).to.equal(200);
      expect(read.body.lines.map((l: LogLine) => [l.level, l.message, l.fields, l.attempt])).to.deep.equal([['info', 'one', { n: 1 }, 1]]);
      expect(read.body).to.include({ hasMore: true, total: 2, dropped: 0 });
      expect(read.body.attempts).to.deep.equal([1]);
      expect((await f.call('GET', `/api/v1/containers/${C}/tasks/step/logs?cursor=!!`, { token: f.token.read })).status).to.equal(400);
      expect((await f.call('GET', `/api/v1/containers/${C}/tasks/nope/logs`, { token: f.token.read })).status).to.equal(404);
      // SSE: from the first page's cursor, the second line, then a line appended later.
      const ac = new AbortController();
      const res = await fetch(`${f.url}/api/v1/containers/${C}/tasks/step/logs/stream?cursor=${read.body.nextCursor}`, {
        headers: { authorization: `Bearer ${f.token.read}` },
        signal: ac.signal,
      });
      expect(res.headers.get('content-type')).to.match(/text\/event-stream/);
      const reader = res.body!.getReader();
      let buf = '';
      const messages: string[] = [];
      const next = async (count: number): Promise<void> => {
        while (messages.length < count) {
          const { value, done } = await reader.read();
          if (done) throw new Error('stream ended');
          const parsed = parseSse(buf + new TextDecoder().decode(value));
          buf = parsed.rest;
          for (const b of parsed.blocks) if (b.event.event === 'logs') messages.push(...(JSON.parse(b.event.data!) as { lines: LogLine[] }).lines.map((l) => l.message));
        }
      };
      await next(1);
      expect(messages).to.deep.equal(['two']);
      await f.call('POST', url, { token: f.token.worker, body: { token, lines: [{ level: 'error', message: 'later' }] } });
      await next(2);
      expect(messages).to.deep.equal(['two', 'later']);
      ac.abort();
      await reader.cancel().catch(() => undefined);
    } finally {
      await f.close();
    }
  });

  it('pts logs CONTAINER [STEP] [--attempt] [--json] [-f]', async function () {
    this.timeout(120_000);
    const c = await client.getOrCreateTaskContainer(`cli logs ${++n}`);
    await c.addTasks([{ name: 'a', maxRetries: 1, retryDelayMs: 0 }, { name: 'b', dependsOn: ['a'] }]);
    await c.run({
      a: (ctx) => {
        ctx.log('info', `a try ${ctx.task.invokeCount}`, { k: 1 });
        if (ctx.task.invokeCount === 1) throw new Error('x');
      },
      b: (ctx) => ctx.log('error', 'b says'),
    });
    const one = await pts(db.uri, ['logs', c.name(), 'a']);
    expect(one.code, one.stderr).to.equal(0);
    const rows = one.stdout.trim().split('\n');
    expect(rows).to.have.length(2);
    expect(rows[0]).to.match(/^2026-01-01T00:00:00.000Z INFO {2}#1 a try 1 \{"k":1\}$/);
    expect(rows[1]).to.match(/INFO {2}#2 a try 2/);
    const every = await pts(db.uri, ['logs', c.name(), '--attempt', '2', '--json']);
    expect(every.code, every.stderr).to.equal(0);
    const json = every.stdout.trim().split('\n').map((l) => JSON.parse(l) as { task: string; message: string; attempt: number });
    expect(json.map((j) => [j.task, j.message, j.attempt])).to.deep.equal([['a', 'a try 2', 2]]);
    const all = await pts(db.uri, ['logs', c.name()]);
    expect(all.stdout).to.match(/ERROR b#1 b says/);
    const missing = await pts(db.uri, ['logs', c.name(), 'nope']);
    expect(missing.code).to.equal(1);
    expect(missing.stderr).to.match(/no task named "nope"/);
    // -f: follows a running step and exits once the container is finished.
    const f = await client.getOrCreateTaskContainer(`cli follow ${++n}`);
    await f.addTasks([{ name: 's' }]);
    const lease = (await client.claimNext({ container: f.name() }))!;
    lease.log('info', 'first');
    await lease.flushLogs();
    let finish: Promise<unknown> | null = null;
    const followed = await pts(db.uri, ['logs', f.name(), 's', '-f', '--interval', '100ms'], (out) => {
      if (!finish && out.includes('first')) {
        lease.log('warn', 'second');
        finish = lease.succeed();
      }
    });
    await finish;
    expect(followed.code, followed.stderr).to.equal(0);
    expect(followed.stdout).to.match(/INFO {2}#1 first\n.*WARN {2}#1 second\n$/);
  });
});
