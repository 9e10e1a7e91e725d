/**
 * lib/store/db-errors.ts: "is the database down?" answered once. Driver errors are classified
 * (transient or not) and wrapped into DatabaseError at the store boundary; the HTTP layer
 * (toHttpError), the CLI (toExit) and the runner (isTransient) must then give the same answer.
 * Ends with two checks against real servers: a refused port, and a refusal by the test server.
 */
import { expect } from 'chai';
import {
  MongoNetworkError,
  MongoNetworkTimeoutError,
  MongoNotConnectedError,
  MongoServerError,
  MongoServerSelectionError,
  MongoTopologyClosedError,
} from 'mongodb';
import mongoose from 'mongoose';
import { createClient } from '../lib/client';
import { EXIT, toExit } from '../lib/cli/exit';
import {
  DatabaseError,
  DuplicateError,
  InvalidTransitionError,
  isTransient,
  LeaseLostError,
  NotFoundError,
  PtsError,
  ValidationError,
} from '../lib/errors';
import { toHttpError } from '../lib/http/errors';
import { driverCode, isTransientDriverError, toDatabaseError } from '../lib/store/db-errors';
import { useTestDatabase } from './helpers/db';
import { trackResource } from './helpers/leaks';

/** An object shaped like a driver error of class `name` (for classes the driver does not export). */
function named(name: string, extra: Record<string, unknown> = {}): Error {
  const e = new Error(`a ${name}`);
  Object.defineProperty(e, 'name', { value: name });
  return Object.assign(e, extra);
}

/** Everything the classification must call transient, by label for failure messages. */
function transientCases(): [string, unknown][] {
  return [
    // driver error classes, as the driver builds them
    ['MongoNetworkError', new MongoNetworkError('connection reset')],
    ['MongoNetworkTimeoutError', new MongoNetworkTimeoutError('timed out')],
    ['MongoServerSelectionError', new MongoServerSelectionError('no server', {} as never)],
    ['MongoNotConnectedError', new MongoNotConnectedError('not connected')],
    ['MongoTopologyClosedError', new MongoTopologyClosedError()],
    ['MongooseServerSelectionError', new mongoose.Error.MongooseServerSelectionError('no server')],
    // by name only (the driver does not export these classes)
    ['MongoPoolClearedError (name)', named('MongoPoolClearedError')],
    ['MongoPoolClosedError (name)', named('MongoPoolClosedError')],
    ['MongoNetworkError (name)', named('MongoNetworkError')],
    ['MongoServerSelectionError (name)', named('MongoServerSelectionError')],
    ['MongooseServerSelectionError (name)', named('MongooseServerSelectionError')],
    // mongoose gave up waiting for a connection
    [
      'buffering timed out',
      new mongoose.Error('Operation `pts_tasks.findOne()` buffering timed out after 10000ms'),
    ],
    // error labels
    [
      'label RetryableWriteError',
      new MongoServerError({ message: 'x', code: 1, errorLabels: ['RetryableWriteError'] }),
    ],
    ['label ResetPool', new MongoServerError({ message: 'x', code: 1, errorLabels: ['ResetPool'] })],
    [
      'label TransientTransactionError',
      new MongoServerError({ message: 'x', errorLabels: ['TransientTransactionError'] }),
    ],
    ['errorLabelSet (plain)', named('MongoServerError', { errorLabelSet: new Set(['ResetPool']) })],
    [
      'hasErrorLabel (function)',
      named('MongoWriteConcernError', { hasErrorLabel: (l: string) => l === 'RetryableWriteError' }),
    ],
    // step-downs and shutdowns
    ['code 10107 NotWritablePrimary', new MongoServerError({ message: 'not primary', code: 10107 })],
    ['code 91 ShutdownInProgress', new MongoServerError({ message: 'shutdown', code: 91 })],
    ['code 189 PrimarySteppedDown', new MongoServerError({ message: 'stepped down', code: 189 })],
    [
      'code 11602 InterruptedDueToReplStateChange',
      new MongoServerError({ message: 'repl state', code: 11602 }),
    ],
    ['code 10107 (plain object)', { name: 'MongoServerError', code: 10107, message: 'not primary' }],
    // nested
    ['cause: MongoNetworkError', new Error('wrapped', { cause: new MongoNetworkError('reset') })],
    [
      'cause of cause: step-down',
      new Error('a', { cause: new Error('b', { cause: new MongoServerError({ message: 'x', code: 189 }) }) }),
    ],
    ['a transient DatabaseError', new DatabaseError('down', { op: 'x' }, undefined, true)],
  ];
}

/** Everything it must call not transient. */
function permanentCases(): [string, unknown][] {
  const dup = new MongoServerError({ message: 'E11000 duplicate key error', code: 11000 });
  return [
    ['duplicate key 11000', dup],
    ['mongoose ValidationError', new mongoose.Error.ValidationError()],
    ['mongoose CastError', new mongoose.Error.CastError('ObjectId', 'nope', '_id')],
    ['a plain Error', new Error('boom')],
    ['our ValidationError', new ValidationError('bad', { path: 'x' })],
    ['our NotFoundError', new NotFoundError('none')],
    ['our LeaseLostError', new LeaseLostError('lost')],
    ['a non-transient DatabaseError', new DatabaseError('refused', { op: 'x' }, dup, false)],
    // a step-down code on something that is not a driver error
    ['code 91 on a plain Error', Object.assign(new Error('x'), { code: 91 })],
    ['a MongooseError without buffering', new mongoose.Error('something else')],
    ['an unknown label', new MongoServerError({ message: 'x', code: 2, errorLabels: ['NoWritesPerformed'] })],
    ['cause: duplicate key', new Error('wrapped', { cause: dup })],
    // a PtsError is never re-classified through its cause
    [
      'PtsError with a transient cause',
      new PtsError('PTS_DATABASE', 'x', {}, { cause: new MongoNetworkError('reset') }),
    ],
    ['null', null],
    ['undefined', undefined],
    ['a string', 'MongoNetworkError'],
    ['a number', 10107],
  ];
}

describe('db-errors', function () {
  describe('isTransientDriverError', function () {
    it('calls network, selection, pool, step-down, buffering and labelled errors transient', function () {
      const wrong = transientCases().filter(([, e]) => !isTransientDriverError(e));
      expect(wrong.map(([label]) => label)).to.deep.equal([]);
    });

    it('calls duplicate keys, validation, plain and library errors not transient', function () {
      const wrong = permanentCases().filter(([, e]) => isTransientDriverError(e));
      expect(wrong.map(([label]) => label)).to.deep.equal([]);
    });

    it('stops on a cyclic or very deep cause chain', function () {
      const cyclic = new Error('a') as Error & { cause?: unknown };
      cyclic.cause = cyclic;
      expect(isTransientDriverError(cyclic)).to.equal(false);
      let deep: unknown = new MongoNetworkError('reset');
      for (let i = 0; i < 10; i++) deep = new Error(`level ${i}`, { cause: deep });
      expect(isTransientDriverError(deep)).to.equal(false);
    });

    it('driverCode reads numeric codes only', function () {
      expect(driverCode(new MongoServerError({ message: 'x', code: 11000 }))).to.equal(11000);
      expect(driverCode({ code: 'ECONNREFUSED' })).to.equal(undefined);
      expect(driverCode(null)).to.equal(undefined);
    });
  });

  describe('toDatabaseError', function () {
    it('passes library errors through unchanged (the same instance)', function () {
      const own = [
        new ValidationError('bad'),
        new NotFoundError('none'),
        new DuplicateError('dup'),
        new InvalidTransitionError('no'),
        new LeaseLostError('lost'),
        new DatabaseError('down', { op: 'x' }, undefined, true),
      ];
      for (const e of own) expect(toDatabaseError(e, 'op')).to.equal(e);
    });

    it('wraps a transient driver error: op, driverCode, transient, cause', function () {
      const cause = new MongoServerError({ message: 'not primary', code: 10107 });
      const e = toDatabaseError(cause, 'claimNext');
      expect(e).to.be.instanceOf(DatabaseError);
      const de = e as DatabaseError;
      expect(de.code).to.equal('PTS_DATABASE');
      expect(de.transient).to.equal(true);
      expect(de.cause).to.equal(cause);
      expect(de.details).to.include({
        op: 'claimNext',
        driverCode: 10107,
        driverError: 'MongoServerError',
        transient: true,
      });
      expect(de.message).to.equal('database unavailable (claimNext): not primary');
    });

    it('wraps a permanent driver error: not transient, its code kept', function () {
      const cause = new MongoServerError({ message: 'E11000 duplicate key error', code: 11000 });
      const de = toDatabaseError(cause, 'addTasks') as DatabaseError;
      expect(de).to.be.instanceOf(DatabaseError);
      expect(de.transient).to.equal(false);
      expect(de.cause).to.equal(cause);
      expect(de.details).to.include({ op: 'addTasks', driverCode: 11000, transient: false });
      expect(de.message).to.equal('database error (addTasks): E11000 duplicate key error');
    });

    it('leaves driverCode out when there is none, and copes with non-errors', function () {
      const net = toDatabaseError(new MongoNetworkError('reset'), 'sweep') as DatabaseError;
      expect(net.transient).to.equal(true);
      expect(net.details).to.not.have.property('driverCode');
      expect(net.details).to.include({ op: 'sweep', driverError: 'MongoNetworkError' });
      const str = toDatabaseError('weird', 'ping') as DatabaseError;
      expect(str).to.be.instanceOf(DatabaseError);
      expect(str.transient).to.equal(false);
      expect(str.message).to.equal('database error (ping): weird');
      expect(str.details).to.include({ op: 'ping', driverError: null });
      expect((toDatabaseError(null, 'ping') as DatabaseError).transient).to.equal(false);
    });

    it('classifies every case the same way wrapped as unwrapped', function () {
      for (const [label, e] of [...transientCases(), ...permanentCases()]) {
        const wrapped = toDatabaseError(e, 'op');
        if (e instanceof PtsError) expect(wrapped, label).to.equal(e);
        else expect((wrapped as DatabaseError).transient, label).to.equal(isTransientDriverError(e));
      }
    });
  });

  describe('the three readers agree', function () {
    /** What the HTTP layer, the CLI and the runner say about one error. */
    function readers(err: unknown): { http: number; httpCode: string; exit: number; runnerRetries: boolean } {
      const h = toHttpError(err);
      return { http: h.status, httpCode: h.code, exit: toExit(err).code, runnerRetries: isTransient(err) };
    }

    it('transient (as the store hands it out): 503 PTS_UNAVAILABLE, exit 3, the runner retries', function () {
      for (const [label, e] of transientCases()) {
        expect(readers(toDatabaseError(e, 'op')), label).to.deep.equal({
          http: 503,
          httpCode: 'PTS_UNAVAILABLE',
          exit: EXIT.UNREACHABLE,
          runnerRetries: true,
        });
      }
      expect(EXIT.UNREACHABLE).to.equal(3);
    });

    it('transient driver errors from outside the store: HTTP and CLI still say unreachable', function () {
      for (const [label, e] of transientCases()) {
        const r = readers(e);
        expect([r.http, r.exit], label).to.deep.equal([503, EXIT.UNREACHABLE]);
      }
    });

    it('a non-transient DatabaseError: 500, exit 1, no retry', function () {
      for (const [label, e] of permanentCases()) {
        if (e instanceof PtsError) continue;
        expect(readers(toDatabaseError(e, 'op')), label).to.deep.equal({
          http: 500,
          httpCode: 'PTS_DATABASE',
          exit: EXIT.FAILURE,
          runnerRetries: false,
        });
      }
    });

    it('library errors keep their own mapping and are never retried', function () {
      expect(readers(new NotFoundError('none'))).to.deep.equal({
        http: 404,
        httpCode: 'PTS_NOT_FOUND',
        exit: EXIT.FAILURE,
        runnerRetries: false,
      });
      expect(readers(new ValidationError('bad'))).to.deep.equal({
        http: 400,
        httpCode: 'PTS_VALIDATION',
        exit: EXIT.USAGE,
        runnerRetries: false,
      });
      expect(readers(new DuplicateError('dup'))).to.deep.equal({
        http: 409,
        httpCode: 'PTS_DUPLICATE',
        exit: EXIT.FAILURE,
        runnerRetries: false,
      });
      expect(readers(new LeaseLostError('lost'))).to.deep.equal({
        http: 409,
        httpCode: 'PTS_LEASE_LOST',
        exit: EXIT.FAILURE,
        runnerRetries: false,
      });
      // a PtsError with a transient cause is not re-read as "database down" by anyone
      const own = new PtsError('PTS_DATABASE', 'x', {}, { cause: new MongoNetworkError('reset') });
      expect(readers(own)).to.deep.equal({
        http: 500,
        httpCode: 'PTS_DATABASE',
        exit: EXIT.FAILURE,
        runnerRetries: false,
      });
    });
  });

  describe('against real servers', function () {
    const db = useTestDatabase();

    it('a refused port: the library rejects with a transient DatabaseError', async function () {
      const client = createClient({
        uri: 'mongodb://127.0.0.1:9/x?serverSelectionTimeoutMS=300&connectTimeoutMS=300',
      });
      client.connection.on('error', () => {});
      const untrack = trackResource('db-errors refused client', () => client.close());
      try {
        const err = await client.getOrCreateTaskContainer('x').then(
          () => null,
          (e: unknown) => e,
        );
        expect(err).to.be.instanceOf(DatabaseError);
        const de = err as DatabaseError;
        expect(de.transient, de.message).to.equal(true);
        expect(de.details.op).to.be.a('string');
        expect(de.cause).to.be.instanceOf(Error);
        expect(toHttpError(de).status).to.equal(503);
        expect(toExit(de).code).to.equal(EXIT.UNREACHABLE);
      } finally {
        await client.close();
        untrack();
      }
    });

    it('a refusal by the server (past a limit validation does not check): a non-transient DatabaseError', async function () {
      this.timeout(120_000);
      const client = createClient({ connection: db.connection });
      const c = await client.getOrCreateTaskContainer('refused');
      // Each candidate passes the library's validation. Which one a server refuses depends on the
      // server: MongoDB enforces BSON's 16 MiB per document on updates (FerretDB 1.x does not);
      // FerretDB 1.x refuses nested arrays (MongoDB stores them). Every refusal must come out the
      // same way (a non-transient DatabaseError, answered 4xx over HTTP), and at least one must happen.
      const big = (ch: string) => ({ blob: Buffer.alloc(9 * 1024 * 1024, ch) }); // Buffers: counted exactly
      const candidates: {
        label: string;
        attempt: () => Promise<unknown>;
        unchanged: () => Promise<boolean>;
      }[] = [
        {
          label: 'a task document over 16 MiB (two payloads of 9 MiB)',
          attempt: async () => {
            await c.addTask('big', big('a'));
            return c.updateTask('big', { processingData: big('b') });
          },
          unchanged: async () => ((await c.getTask('big'))?.processingData() ?? null) === null,
        },
        {
          // The library refuses these with a ValidationError where the server cannot store
          // them (spec/http/bodies.spec.ts); the store itself does not check.
          label: 'nested arrays',
          attempt: () => client.core.store.setContainerMetadata('refused', { matrix: [[1, 2], [3]] }),
          unchanged: async () => (await client.containerMetadata('refused'))?.matrix === undefined,
        },
      ];
      const refused: string[] = [];
      for (const { label, attempt, unchanged } of candidates) {
        const err = await attempt().then(
          () => null,
          (e: unknown) => e,
        );
        if (err === null) continue;
        refused.push(label);
        expect(err, label).to.be.instanceOf(DatabaseError);
        const de = err as DatabaseError;
        expect(de.transient, `${label}: ${de.message}`).to.equal(false);
        expect(de.details.op, label).to.be.a('string');
        expect(de.details.driverCode, label).to.be.a('number');
        expect(de.cause, label).to.be.instanceOf(Error);
        // Both refusals are the request's fault: too large is 413, a value the server cannot store 400.
        expect(toHttpError(de).status, label).to.equal(label === 'nested arrays' ? 400 : 413);
        expect(toExit(de).code, label).to.equal(EXIT.FAILURE);
        expect(isTransient(de), label).to.equal(false);
        expect(await unchanged(), `${label}: nothing written`).to.equal(true);
      }
      expect(
        refused,
        `this server (${process.env.PTS_TEST_SERVER_KIND}) refused none of the candidates`,
      ).to.have.length.above(0);
    });
  });
});
