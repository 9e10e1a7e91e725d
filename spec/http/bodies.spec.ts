/**
 * Request bodies and timeouts on a real server over real sockets: values the database server
 * cannot store (nested arrays on FerretDB: a 400 naming the path, nothing written; stored where
 * the server can), prototype-poisoning keys, invalid UTF-8, payload sizes measured as BSON, and
 * the request timeout (a trickling body is cut; long-polls and SSE streams are not).
 */
import { connect, type Socket } from 'node:net';
import { expect } from 'chai';
import mongoose from 'mongoose';
import { DatabaseError } from '../../lib/errors';
import { toHttpError } from '../../lib/http/errors';
import { resolveTimeouts } from '../../lib/http/timeouts';
import { CliError } from '../../lib/cli/connect';
import { parseMs } from '../../lib/cli/serve';
import { MAX_DATA_BYTES } from '../../lib/validation';
import { useTestDatabase } from '../helpers/db';
import { startFixture, type HttpFixture } from './support';

const BSON = mongoose.mongo.BSON;

/** Sends a raw request over a fresh socket; resolves with what came back and when the socket closed. */
function rawRequest(url: string, head: string, body: Buffer): Promise<{ status: number; text: string }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const sock = connect(Number(u.port), u.hostname);
    let data = '';
    sock.on('data', (d) => (data += d.toString('latin1')));
    sock.on('error', reject);
    sock.on('close', () => {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0);
      resolve({ status, text: data.slice(data.indexOf('\r\n\r\n') + 4) });
    });
    sock.write(`${head}Content-Length: ${body.length}\r\nConnection: close\r\n\r\n`);
    sock.end(body);
  });
}

describe('http: request bodies', function () {
  const db = useTestDatabase();
  let f: HttpFixture;
  const C = 'bodies';
  const base = `/api/v1/containers/${C}`;

  before(async function () {
    f = await startFixture(db);
    expect((await f.call('PUT', base, { body: {} })).status).to.equal(201);
  });
  after(async function () {
    await f?.close();
  });

  async function task(name: string): Promise<unknown> {
    return (await db.connection.collection('pts_tasks').findOne({ name }))?.taskData ?? null;
  }

  describe('nested arrays', function () {
    it('are refused with a 400 naming the path where the server cannot store them, and stored where it can', async function () {
      const rules = await f.client.core.dataRules();
      const branch = rules.nestedArrays
        ? 'stored (server stores nested arrays)'
        : 'refused (server cannot store nested arrays)';
      console.log(`      [bodies] nested arrays: ${branch}; server kind ${process.env.PTS_TEST_SERVER_KIND}`);
      expect(rules.nestedArrays, 'FerretDB is detected').to.equal(!db.capabilities.ferretdb);
      const matrix = { deep: { matrix: [[1, 2], [3]] } };
      const cases: Array<{
        label: string;
        send: () => ReturnType<HttpFixture['call']>;
        path: string;
        written: () => Promise<boolean>;
      }> = [
        {
          label: 'taskData',
          send: () =>
            f.call('POST', `${base}/tasks`, {
              body: { tasks: [{ name: 'ok' }, { name: 'nested', data: matrix }] },
            }),
          path: 'tasks[1].data.deep.matrix[0]',
          written: async () => (await task('nested')) !== null || (await task('ok')) !== null,
        },
        {
          label: 'metadata',
          send: () => f.call('PUT', '/api/v1/containers/nested-meta', { body: { metadata: matrix } }),
          path: 'metadata.deep.matrix[0]',
          written: async () =>
            (await db.connection.collection('pts_containers').countDocuments({ name: 'nested-meta' })) > 0,
        },
        {
          label: 'worker-config custom',
          send: () => f.call('PUT', `${base}/worker-config`, { body: { custom: matrix } }),
          path: 'custom.deep.matrix[0]',
          written: async () => {
            const doc = await db.connection.collection('pts_containers').findOne({ name: C });
            return doc?.metadata?.workerConfig !== undefined;
          },
        },
      ];
      for (const c of cases) {
        const r = await c.send();
        if (rules.nestedArrays) {
          expect(r.status, `${c.label}: ${JSON.stringify(r.body)}`).to.be.within(200, 201);
          expect(await c.written(), c.label).to.equal(true);
        } else {
          expect(r.status, `${c.label}: ${JSON.stringify(r.body)}`).to.equal(400);
          expect(r.body.error.code, c.label).to.equal('PTS_VALIDATION');
          expect(r.body.error.message, c.label).to.include(c.path);
          expect(await c.written(), `${c.label}: nothing written`).to.equal(false);
        }
      }
    });

    it('in a checkpoint or a result are refused (or stored) the same way', async function () {
      const rules = await f.client.core.dataRules();
      await f.call('POST', `${base}/tasks`, { body: { tasks: [{ name: 'w1' }] } });
      const lease = await f.client.claimNext(
        { container: C, names: ['w1'] },
        { owner: 'w', leaseMs: 60_000 },
      );
      const hb = await f.call('POST', `${base}/tasks/w1/heartbeat`, {
        body: { token: lease!.token, processingData: { m: [[1]] } },
      });
      const done = await f.call('POST', `${base}/tasks/w1/succeed`, {
        body: { token: lease!.token, result: [[], [1]] },
      });
      const doc = await db.connection.collection('pts_tasks').findOne({ name: 'w1' });
      if (rules.nestedArrays) {
        expect([hb.status, done.status]).to.deep.equal([200, 200]);
        expect(doc?.processingData).to.deep.equal({ m: [[1]] });
        expect(doc?.result).to.deep.equal([[], [1]]);
      } else {
        expect(hb.status).to.equal(400);
        expect(hb.body.error.message).to.include('processingData.m[0]');
        expect(done.status).to.equal(400);
        expect(done.body.error.message).to.include('result[0]');
        expect(doc?.state).to.equal('running');
        expect(doc?.processingData ?? null).to.equal(null);
      }
    });

    it('the library API refuses them the same way, with nothing written', async function () {
      const rules = await f.client.core.dataRules();
      const c = await f.client.getOrCreateTaskContainer('nested-lib');
      const err = await c.addTask('n', { a: [[1]] }).then(
        () => null,
        (e: unknown) => e,
      );
      if (rules.nestedArrays) {
        expect(err).to.equal(null);
        expect((await c.getTask('n'))?.taskData()).to.deep.equal({ a: [[1]] });
      } else {
        expect(err).to.have.property('code', 'PTS_VALIDATION');
        expect((err as Error).message).to.include('tasks[0].data.a[0]');
        expect(await c.getTask('n')).to.equal(null);
      }
    });
  });

  describe('refusals by the server', function () {
    it('a refusal caused by the request maps to 413 or 400, not 500', function () {
      const tooLarge = new DatabaseError(
        'database error (x): too large',
        { op: 'x', driverCode: 10334 },
        Object.assign(new Error('BSONObjectTooLarge'), { code: 10334 }),
      );
      expect(toHttpError(tooLarge)).to.deep.include({ status: 413, code: 'PTS_PAYLOAD_TOO_LARGE' });
      const encoder = new DatabaseError(
        'database error (x)',
        { op: 'x' },
        Object.assign(new RangeError('The value of "offset" is out of range.'), { code: 'ERR_OUT_OF_RANGE' }),
      );
      expect(toHttpError(encoder).status).to.equal(413);
      const nested = new DatabaseError(
        'database error (x)',
        { op: 'x', driverCode: 2 },
        Object.assign(new Error('invalid value: { "a": [ [ 1 ] ] } (nested arrays are not supported)'), {
          code: 2,
        }),
      );
      expect(toHttpError(nested)).to.deep.include({ status: 400, code: 'PTS_VALIDATION' });
      const other = new DatabaseError(
        'database error (x)',
        { op: 'x', driverCode: 8000 },
        Object.assign(new Error('something else'), { code: 8000 }),
      );
      expect(toHttpError(other).status).to.equal(500);
    });

    it('the real refusal of a nested array by a store write (past validation) is a 400', async function () {
      if (!db.capabilities.ferretdb) this.skip();
      const c = await f.client.getOrCreateTaskContainer('raw-store');
      const err = await f.client.core.store.setContainerMetadata('raw-store', { m: [[1]] }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).to.be.instanceOf(DatabaseError);
      expect(toHttpError(err)).to.deep.include({ status: 400, code: 'PTS_VALIDATION' });
      expect((await c.summary()).name).to.equal('raw-store');
    });
  });

  describe('JSON that is refused, and why', function () {
    for (const [label, json, key, at] of [
      [
        '__proto__ in task data',
        '{"tasks":[{"name":"p1","data":{"__proto__":{"polluted":true}}}]}',
        '__proto__',
        'body.tasks[0].data',
      ],
      ['__proto__ at the top', '{"__proto__":{"x":1},"tasks":[]}', '__proto__', 'body'],
      [
        'constructor.prototype',
        '{"tasks":[{"name":"p2","data":{"constructor":{"prototype":{"x":1}}}}]}',
        'constructor.prototype',
        'body.tasks[0].data',
      ],
    ] as const) {
      it(`${label}: 400 naming the key and where`, async function () {
        const r = await f.call('POST', `${base}/tasks`, { raw: json });
        expect(r.status, JSON.stringify(r.body)).to.equal(400);
        expect(r.body.error.code).to.equal('PTS_VALIDATION');
        expect(r.body.error.message).to.equal(`key ${key} is not allowed at ${at}`);
        expect(({} as Record<string, unknown>).polluted).to.equal(undefined);
      });
    }

    it('a constructor key without prototype is ordinary data', async function () {
      const r = await f.call('POST', `${base}/tasks`, {
        raw: '{"tasks":[{"name":"ctor","data":{"constructor":"fine"}}]}',
      });
      expect(r.status, JSON.stringify(r.body)).to.equal(200);
      expect(await task('ctor')).to.deep.equal({ constructor: 'fine' });
    });

    it('invalid UTF-8 is a 400 and nothing is stored', async function () {
      const body = Buffer.concat([
        Buffer.from('{"tasks":[{"name":"utf","data":{"s":"a'),
        Buffer.from([0xff, 0xfe]),
        Buffer.from('b"}}]}'),
      ]);
      const r = await rawRequest(
        f.url,
        `POST ${base}/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${f.token.admin}\r\nContent-Type: application/json\r\n`,
        body,
      );
      expect(r.status, r.text).to.equal(400);
      expect(JSON.parse(r.text).error.message).to.match(/not valid UTF-8/);
      expect(await task('utf')).to.equal(null);
      expect(await db.connection.collection('pts_tasks').countDocuments({ name: 'utf' })).to.equal(0);
    });

    it('valid multi-byte UTF-8 is stored as sent', async function () {
      const r = await f.call('POST', `${base}/tasks`, {
        body: { tasks: [{ name: 'mb', data: { s: 'é ✓ 𝄞' } }] },
      });
      expect(r.status).to.equal(200);
      expect(await task('mb')).to.deep.equal({ s: 'é ✓ 𝄞' });
    });

    it('text that is not JSON is still a 400 that says so', async function () {
      const r = await f.call('POST', `${base}/tasks`, { raw: '{"tasks":[' });
      expect(r.status).to.equal(400);
      expect(r.body.error.message).to.match(/not valid JSON/);
    });
  });

  describe('sizes', function () {
    it('a 7.5 MB body of mostly ASCII (under 8 MiB) is stored: its BSON size is what counts', async function () {
      this.timeout(120_000);
      const data = { text: 'x'.repeat(7_500_000), note: 'é' };
      expect(BSON.calculateObjectSize({ v: data })).to.be.below(MAX_DATA_BYTES);
      const r = await f.call('POST', `${base}/tasks`, { body: { tasks: [{ name: 'big-ascii', data }] } });
      expect(r.status, JSON.stringify(r.body).slice(0, 300)).to.equal(200);
      const doc = await db.connection.collection('pts_tasks').findOne({ name: 'big-ascii' });
      expect(doc?.taskData?.text).to.have.length(7_500_000);
      expect(doc?.taskData?.note).to.equal('é');
    });

    it('a body whose BSON would be over 15 MiB is refused with the measured size', async function () {
      this.timeout(120_000);
      // Small numbers: 2 bytes each in JSON, ~13 in BSON (type, index key, int32).
      const data = new Array(3_500_000).fill(0);
      const bytes = BSON.calculateObjectSize({ v: data }) - 8;
      expect(bytes).to.be.above(MAX_DATA_BYTES);
      const r = await f.call('POST', `${base}/tasks`, { body: { tasks: [{ name: 'big-bson', data }] } });
      expect(r.status).to.equal(400);
      expect(r.body.error.code).to.equal('PTS_VALIDATION');
      expect(r.body.error.message).to.include(`${bytes} bytes`);
      expect(r.body.error.message).to.include('tasks[0].data');
      expect(await db.connection.collection('pts_tasks').countDocuments({ name: 'big-bson' })).to.equal(0);
    });
  });
});

describe('http: timeouts', function () {
  const db = useTestDatabase();
  let f: HttpFixture;
  const C = 'timeouts';

  before(async function () {
    f = await startFixture(db, { requestTimeout: 1000, sseHeartbeatMs: 300 });
    await (await f.client.getOrCreateTaskContainer(C)).addTasks([{ name: 'later', dependsOn: [] }]);
    await f.client.claimNext({ container: C }, { owner: 'x', leaseMs: 600_000 });
  });
  after(async function () {
    await f?.close();
  });

  it('cuts a client that trickles its body after the request timeout', async function () {
    this.timeout(20_000);
    const u = new URL(f.url);
    const started = Date.now();
    const result = await new Promise<{ closedAfter: number; data: string; sent: number }>((resolve) => {
      const sock: Socket = connect(Number(u.port), u.hostname);
      let data = '';
      let sent = 0;
      sock.on('data', (d) => (data += d.toString()));
      sock.on('error', () => undefined);
      sock.write(
        `POST /api/v1/containers/${C}/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${f.token.admin}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n`,
      );
      const timer = setInterval(() => {
        if (sock.writable) {
          sock.write(' ');
          sent++;
        }
        if (Date.now() - started > 10_000) sock.destroy();
      }, 100);
      sock.on('close', () => {
        clearInterval(timer);
        resolve({ closedAfter: Date.now() - started, data, sent });
      });
    });
    expect(result.closedAfter, 'cut after about the configured second').to.be.within(900, 3000);
    expect(result.data).to.match(/^HTTP\/1\.1 408/);
  });

  it('does not cut an SSE stream that runs past the request timeout', async function () {
    this.timeout(20_000);
    const ac = new AbortController();
    const res = await fetch(`${f.url}/api/v1/events`, {
      headers: { authorization: `Bearer ${f.token.read}` },
      signal: ac.signal,
    });
    expect(res.status).to.equal(200);
    const reader = res.body!.getReader();
    const started = Date.now();
    let text = '';
    try {
      while (Date.now() - started < 2500) {
        const { value, done } = await reader.read();
        if (done) break;
        text += Buffer.from(value).toString();
      }
      expect(Date.now() - started, `stream ended early: ${text.slice(-200)}`).to.be.at.least(2500);
    } finally {
      ac.abort();
      await reader.cancel().catch(() => undefined);
    }
  });

  it('does not cut a long-poll claim that answers after the request timeout', async function () {
    this.timeout(20_000);
    const started = Date.now();
    const r = await f.call('POST', '/api/v1/claim', {
      token: f.token.worker,
      body: { container: C, owner: 'w', waitMs: 2500 },
    });
    expect(r.status).to.equal(204);
    expect(Date.now() - started).to.be.at.least(2400);
  });

  it('refuses settings that would cut quiet answers, and bad values', function () {
    expect(() => resolveTimeouts({ connectionTimeout: 10_000 }, 15_000)).to.throw(
      TypeError,
      /connectionTimeout/,
    );
    expect(() => resolveTimeouts({ requestTimeout: -1 }, 15_000)).to.throw(TypeError, /requestTimeout/);
    expect(() => resolveTimeouts({ keepAliveTimeout: 0 }, 15_000)).to.throw(TypeError, /keepAliveTimeout/);
    expect(resolveTimeouts({ requestTimeout: 5000 }, 15_000)).to.include({
      requestTimeout: 5000,
      headersTimeout: 5000,
      connectionTimeout: 120_000,
    });
    expect(resolveTimeouts({ connectionTimeout: 0 }, 15_000).connectionTimeout).to.equal(0);
  });

  it('pts serve reads the timeouts as whole milliseconds and refuses others as usage errors', function () {
    expect(parseMs(undefined, '--request-timeout')).to.equal(undefined);
    expect(parseMs('1500', '--request-timeout')).to.equal(1500);
    for (const bad of ['', 'abc', '-1', '1.5', '1e400'])
      expect(() => parseMs(bad, '--request-timeout'), bad).to.throw(CliError, /--request-timeout/);
  });
});
