import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import Module from 'node:module';
import { expect } from 'chai';
import mongoose from 'mongoose';
import {
  ensureFerretDBBinary,
  FERRETDB_VERSION,
  FERRETDB_BUILD_REV,
  ferretDBCachePath,
  ferretDBSourceDir,
  findFreePort,
  isMemoryServerMissing,
  MEMORY_SERVER_MISSING_MESSAGE,
  redactUri,
  startEmbeddedServer,
  startFerretDB,
  type FerretDBServer,
} from '../lib/embedded';
import { probeAtomicity } from '../lib/store/atomicity';
import { DatabaseError } from '../lib/errors';
import { skipWithReason, testServerUri } from './helpers/db';
import { trackResource } from './helpers/leaks';

const quiet = (): void => {};

function isAlive(pid: number): boolean {
  try {
    // a zombie (exited, not yet reaped by init) counts as dead
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    // no /proc entry: gone (or not Linux)
  }
  try {
    process.kill(pid, 0);
    return process.platform !== 'linux';
  } catch {
    return false;
  }
}

async function eventually(check: () => boolean, timeoutMs = 5000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return check();
}

async function withEnv<T>(vars: Record<string, string | undefined>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  const apply = (values: Record<string, string | undefined>) => {
    for (const [k, v] of Object.entries(values)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
  apply(vars);
  try {
    return await fn();
  } finally {
    apply(saved);
  }
}

/**
 * Runs `fn` as if mongodb-memory-server were not installed: resolving it throws the same
 * MODULE_NOT_FOUND error Node throws for an absent package (the packed-package spec checks the
 * real absence).
 */
async function withoutMemoryServer<T>(fn: () => Promise<T>): Promise<T> {
  const loader = Module as unknown as { _resolveFilename: (request: string, ...rest: unknown[]) => string };
  const original = loader._resolveFilename;
  // The global fixture may already have loaded it: Node then answers from its caches without
  // resolving again, so take the cached module out for the duration.
  const resolved = require.resolve('mongodb-memory-server');
  const cached = require.cache[resolved];
  delete require.cache[resolved];
  loader._resolveFilename = function (request: string, ...rest: unknown[]): string {
    if (request === 'mongodb-memory-server') {
      throw Object.assign(new Error(`Cannot find module '${request}'`), { code: 'MODULE_NOT_FOUND' });
    }
    return original.call(this, request, ...rest);
  };
  try {
    return await fn();
  } finally {
    loader._resolveFilename = original;
    if (cached) require.cache[resolved] = cached;
  }
}

/** Runs `fn` with a MongoClient connected to `uri`, always closing it. */
async function withClient<T>(
  uri: string,
  fn: (client: mongoose.mongo.MongoClient) => Promise<T>,
): Promise<T> {
  const client = new mongoose.mongo.MongoClient(uri, {
    serverSelectionTimeoutMS: 5000,
  });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}

/** Starts FerretDB and registers it with the leak tracker; returns server + a stop that untracks. */
async function startTracked(opts: Parameters<typeof startFerretDB>[0]): Promise<FerretDBServer> {
  const server = await startFerretDB({ log: quiet, ...opts });
  const untrack = trackResource(`ferretdb pid ${server.pid}`, () => server.stop());
  const stop = server.stop;
  return {
    ...server,
    stop: async () => {
      await stop();
      untrack();
    },
  };
}

function portOf(uri: string): number {
  const match = /:(\d+)\/?/.exec(uri.replace(/^mongodb(\+srv)?:\/\//, ''));
  return match ? Number(match[1]) : -1;
}

describe('embedded server', function () {
  describe('redactUri', function () {
    it('hides user info and password-like query parameters', function () {
      expect(redactUri('mongodb://alice:s3cret@db.example:27017/app?authSource=admin')).to.equal(
        'mongodb://***:***@db.example:27017/app?authSource=admin',
      );
      expect(redactUri('mongodb+srv://bob@cluster0.example/?retryWrites=true')).to.equal(
        'mongodb+srv://***:***@cluster0.example/?retryWrites=true',
      );
      expect(redactUri('mongodb://h/?tlsCertificateKeyFilePassword=x&password=y')).to.equal(
        'mongodb://h/?tlsCertificateKeyFilePassword=***&password=***',
      );
      expect(redactUri('mongodb://127.0.0.1:27017/')).to.equal('mongodb://127.0.0.1:27017/');
    });
  });

  describe('startEmbeddedServer', function () {
    it('uses opts.uri as an external server and never starts anything', async function () {
      const server = await withEnv({ MONGODB_URI: 'mongodb://ignored:1/' }, () =>
        startEmbeddedServer({
          uri: 'mongodb://user:pw@127.0.0.1:1/',
          log: quiet,
        }),
      );
      expect(server.kind).to.equal('external');
      expect(server.uri).to.equal('mongodb://user:pw@127.0.0.1:1/');
      expect(server.description).to.equal('external mongodb://***:***@127.0.0.1:1/');
      await server.stop();
      await server.stop();
    });

    it('uses MONGODB_URI when no uri is given', async function () {
      const server = await withEnv({ MONGODB_URI: 'mongodb://u:p@localhost:27017/?replicaSet=rs0' }, () =>
        startEmbeddedServer({ log: quiet }),
      );
      expect(server.kind).to.equal('external');
      expect(server.description).to.equal(
        'external MONGODB_URI=mongodb://***:***@localhost:27017/?replicaSet=rs0',
      );
      await server.stop();
    });

    it('rejects an unknown PTS_EMBEDDED_SERVER value', async function () {
      let error: unknown;
      await withEnv({ MONGODB_URI: undefined, PTS_EMBEDDED_SERVER: 'postgres' }, () =>
        startEmbeddedServer({ log: quiet }).catch((err: unknown) => {
          error = err;
        }),
      );
      expect(error).to.be.instanceOf(Error);
      expect((error as Error).message).to.match(
        /PTS_EMBEDDED_SERVER must be 'ferretdb' or 'mongodb-memory-server'/,
      );
    });

    it('without mongodb-memory-server and PTS_EMBEDDED_SERVER=mongodb-memory-server: a DatabaseError saying how to install it', async function () {
      let error: unknown;
      await withEnv({ MONGODB_URI: undefined, PTS_EMBEDDED_SERVER: 'mongodb-memory-server' }, () =>
        withoutMemoryServer(() =>
          startEmbeddedServer({ log: quiet }).catch((err: unknown) => {
            error = err;
          }),
        ),
      );
      expect(error).to.be.instanceOf(DatabaseError);
      expect(isMemoryServerMissing(error)).to.equal(true);
      expect((error as DatabaseError).code).to.equal('PTS_DATABASE');
      expect((error as DatabaseError).details).to.deep.include({ missing: 'mongodb-memory-server' });
      expect((error as DatabaseError).transient, 'installing it is needed, retrying is not').to.equal(false);
      expect((error as Error).message).to.equal(MEMORY_SERVER_MISSING_MESSAGE);
      expect((error as Error).message).to.include(
        'install mongodb-memory-server (npm i -D mongodb-memory-server) or pass MONGODB_URI / use FerretDB',
      );
    });

    it('without mongodb-memory-server and no FerretDB either: one DatabaseError naming both, with the install hint', async function () {
      const lines: string[] = [];
      let error: unknown;
      await withEnv(
        {
          MONGODB_URI: undefined,
          PTS_EMBEDDED_SERVER: undefined,
          PTS_FERRETDB_BIN: path.join(os.tmpdir(), 'pts-no-such-ferretdb'),
        },
        () =>
          withoutMemoryServer(() =>
            startEmbeddedServer({ log: (l) => lines.push(l) }).catch((err: unknown) => {
              error = err;
            }),
          ),
      );
      expect(error).to.be.instanceOf(DatabaseError);
      expect(isMemoryServerMissing(error), 'the aggregate is not the missing-module error itself').to.equal(
        false,
      );
      expect((error as Error).message).to.match(
        /^No MongoDB-compatible server available\. MONGODB_URI: not set\./,
      );
      expect((error as Error).message).to.include(MEMORY_SERVER_MISSING_MESSAGE);
      expect((error as Error).message).to.include('pts-no-such-ferretdb is not an executable file');
      expect(lines).to.have.length(1);
      expect(lines[0]).to.match(
        /^mongodb-memory-server unavailable, falling back to FerretDB: .*npm i -D mongodb-memory-server/,
      );
    });

    it('serves the suite-wide test server announced by the global fixture', async function () {
      const uri = testServerUri();
      const kind = process.env.PTS_TEST_SERVER_KIND;
      expect(kind).to.be.oneOf(['external', 'mongodb-memory-server', 'ferretdb']);
      const reply = await withClient(uri, (client) => client.db('admin').command({ ping: 1 }));
      expect(reply.ok).to.equal(1);
    });
  });

  describe('FerretDB', function () {
    const tmpDirs: string[] = [];

    async function tempDir(label: string): Promise<string> {
      const dir = await fsp.mkdtemp(path.join(os.tmpdir(), `pts-spec-${label}-`));
      tmpDirs.push(dir);
      return dir;
    }

    before(async function () {
      this.timeout(20 * 60_000); // a first-time build downloads Go modules
      try {
        await ensureFerretDBBinary(quiet);
      } catch (err) {
        skipWithReason(this, `no FerretDB binary: ${(err as Error).message}`);
      }
    });

    after(async function () {
      await Promise.all(tmpDirs.map((dir) => fsp.rm(dir, { recursive: true, force: true })));
    });

    it('starts on its own port and data dir, and stop() ends the process but keeps a given dataDir', async function () {
      const dataDir = await tempDir('own');
      const port = await findFreePort();
      const server = await startTracked({ dataDir, port });

      expect(server.kind).to.equal('ferretdb');
      expect(server.port).to.equal(port);
      expect(server.dataDir).to.equal(dataDir);
      expect(server.uri).to.equal(`mongodb://127.0.0.1:${port}/`);
      expect(portOf(server.uri)).to.not.equal(portOf(testServerUri()));
      expect(server.description).to.equal(`ferretdb ${FERRETDB_VERSION} (sqlite, 127.0.0.1:${port})`);
      expect(isAlive(server.pid)).to.equal(true);

      await withClient(server.uri, async (client) => {
        const buildInfo = await client.db('admin').command({ buildInfo: 1 });
        expect(buildInfo).to.have.property('ferretdbVersion');
        await client.db('embedded_own').collection('things').insertOne({ name: 'widget' });
        expect(await client.db('embedded_own').collection('things').countDocuments()).to.equal(1);
      });
      expect(fs.readdirSync(dataDir)).to.include('embedded_own.sqlite');

      await server.stop();
      expect(isAlive(server.pid)).to.equal(false);
      expect(fs.existsSync(dataDir)).to.equal(true);
      await server.stop(); // idempotent
    });

    it('serializes by default (probeAtomicity: atomic); serialize: false talks to FerretDB directly, whose SQLite handler the probe catches losing writes', async function () {
      const serial = await startTracked({});
      const direct = await startTracked({ serialize: false });
      try {
        expect(direct.description).to.equal(
          `ferretdb ${FERRETDB_VERSION} (sqlite, unserialized, 127.0.0.1:${direct.port})`,
        );
        const [a, b] = [
          await probeAtomicity(serial.uri),
          await probeAtomicity(direct.uri, { connections: 8 }),
        ];
        expect(a).to.deep.include({ rounds: 20, doubleWinners: 0, lostIncrements: 0, atomic: true });
        // FerretDB#3040: an update's query and write are not one transaction on SQLite.
        expect(b.atomic, JSON.stringify(b)).to.equal(false);
        expect(b.doubleWinners + b.lostIncrements).to.be.greaterThan(0);
      } finally {
        await direct.stop();
        await serial.stop();
      }
    });

    it('keeps data across stop and restart on the same dataDir and port', async function () {
      const dataDir = await tempDir('restart');
      const port = await findFreePort();

      const first = await startTracked({ dataDir, port });
      await withClient(first.uri, async (client) => {
        await client
          .db('embedded_restart')
          .collection<{ _id: string; state: string; progress: number }>('tasks')
          .insertMany([
            { _id: 'a', state: 'done', progress: 100 },
            { _id: 'b', state: 'running', progress: 42 },
          ]);
      });
      await first.stop();
      expect(isAlive(first.pid)).to.equal(false);
      expect(await tcpAccepts(port)).to.equal(false);

      const second = await startTracked({ dataDir, port });
      expect(second.pid).to.not.equal(first.pid);
      expect(second.uri).to.equal(first.uri);
      const docs = await withClient(second.uri, (client) =>
        client.db('embedded_restart').collection('tasks').find({}).sort({ _id: 1 }).toArray(),
      );
      expect(docs).to.deep.equal([
        { _id: 'a', state: 'done', progress: 100 },
        { _id: 'b', state: 'running', progress: 42 },
      ]);
      await second.stop();
    });

    it('creates and removes its own temp data dir when none is given', async function () {
      const server = await startTracked({});
      expect(fs.statSync(server.dataDir).isDirectory()).to.equal(true);
      expect(path.basename(server.dataDir)).to.match(/^pts-ferretdb-/);
      await withClient(server.uri, (client) => client.db('embedded_tmp').collection('x').insertOne({ x: 1 }));
      await server.stop();
      expect(fs.existsSync(server.dataDir)).to.equal(false);
    });

    it('fails with the stderr tail when the port is already taken', async function () {
      const blocker = net.createServer();
      await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
      const untrack = trackResource('port blocker', () => new Promise((r) => blocker.close(r)));
      const port = (blocker.address() as net.AddressInfo).port;
      try {
        let error: unknown;
        await startFerretDB({ port, log: quiet }).catch((err: unknown) => {
          error = err;
        });
        expect(error).to.be.instanceOf(Error);
        expect((error as Error).message).to.include(`127.0.0.1:${port}`);
        expect((error as Error).message).to.match(/exited during startup/);
        expect((error as Error).message).to.match(/address already in use/);
      } finally {
        await new Promise((r) => blocker.close(r));
        untrack();
      }
    });

    it('does not outlive a Node process killed by SIGTERM, which still terminates', async function () {
      const child = spawn(
        process.execPath,
        ['--import=tsx', path.join(__dirname, 'fixtures', 'ferretdb-child.ts')],
        {
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      const untrack = trackResource('ferretdb-child.ts process', () => child.kill('SIGKILL'));
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const exited = new Promise<NodeJS.Signals | number | null>((resolve) =>
        child.once('exit', (code, signal) => resolve(signal ?? code)),
      );
      const firstLine = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (chunk: Buffer) => {
          out += chunk.toString();
          if (out.includes('\n')) resolve(out.split('\n')[0]);
        });
        void exited.then((how) => reject(new Error(`child exited (${how}) before reporting: ${stderr}`)));
      });
      const { pid, dataDir } = JSON.parse(firstLine) as { pid: number; dataDir: string };
      expect(isAlive(pid)).to.equal(true);
      expect(fs.existsSync(dataDir)).to.equal(true);

      child.kill('SIGTERM');
      expect(await exited).to.equal('SIGTERM'); // default signal behaviour is kept
      untrack();
      expect(await eventually(() => !isAlive(pid)), `ferretdb pid ${pid} still alive`).to.equal(true);
      expect(fs.existsSync(dataDir)).to.equal(false);
    });

    it('ensureFerretDBBinary honours PTS_FERRETDB_BIN and reports a bad one', async function () {
      const real = await ensureFerretDBBinary(quiet);
      const viaEnv = await withEnv({ PTS_FERRETDB_BIN: real }, () => ensureFerretDBBinary(quiet));
      expect(viaEnv).to.equal(real);

      const missing = path.join(os.tmpdir(), 'pts-no-such-ferretdb');
      let error: unknown;
      await withEnv({ PTS_FERRETDB_BIN: missing }, () =>
        ensureFerretDBBinary(quiet).catch((err: unknown) => {
          error = err;
        }),
      );
      expect((error as Error).message).to.equal(`PTS_FERRETDB_BIN=${missing} is not an executable file`);
    });

    it('scripts/ensure-ferretdb.sh pins the same version and resolves the same binary', async function () {
      const goMod = await fsp.readFile(path.join(__dirname, '..', 'tools', 'ferretdb', 'go.mod'), 'utf8');
      expect(goMod).to.match(
        new RegExp(`github\\.com/FerretDB/FerretDB v${FERRETDB_VERSION.replace(/\./g, '\\.')}\\b`),
      );
      const script = path.join(__dirname, '..', 'scripts', 'ensure-ferretdb.sh');
      expect(await fsp.readFile(script, 'utf8')).to.include(`FERRETDB_VERSION=${FERRETDB_VERSION}\n`);
      const printed = await new Promise<string>((resolve, reject) =>
        execFile('bash', [script], { timeout: 60_000 }, (err, stdout) =>
          err ? reject(err) : resolve(stdout.trim()),
        ),
      );
      expect(printed).to.equal(await ensureFerretDBBinary(quiet));
    });

    it('builds into a fresh PTS_CACHE_DIR, safely with two concurrent builders', async function () {
      this.timeout(20 * 60_000);
      if (process.env.PTS_FERRETDB_BIN)
        skipWithReason(this, 'PTS_FERRETDB_BIN is set, the build path is not used');
      if (!ferretDBSourceDir()) skipWithReason(this, 'tools/ferretdb sources not found');
      const cache = await tempDir('cache');
      const lines: string[] = [];
      let results: string[] = [];
      try {
        results = await withEnv({ PTS_CACHE_DIR: cache }, () =>
          Promise.all([
            ensureFerretDBBinary((l) => lines.push(l)),
            ensureFerretDBBinary((l) => lines.push(l)),
          ]),
        );
      } catch (err) {
        if (/go toolchain: not found/.test((err as Error).message)) skipWithReason(this, 'no Go toolchain');
        throw err;
      }
      const expected = path.join(cache, `ferretdb-${FERRETDB_VERSION}-${FERRETDB_BUILD_REV}`, 'ferretdb');
      expect(results).to.deep.equal([expected, expected]);
      expect(fs.statSync(expected).mode & 0o111).to.not.equal(0);
      expect(fs.readdirSync(path.dirname(expected))).to.deep.equal(['ferretdb']); // no temp files left
      expect(lines.filter((l) => l.startsWith('building FerretDB'))).to.have.length(2);
      // the cached binary is reused without building again
      const again = await withEnv({ PTS_CACHE_DIR: cache }, () => ensureFerretDBBinary((l) => lines.push(l)));
      expect(again).to.equal(expected);
      expect(lines.filter((l) => l.startsWith('building FerretDB'))).to.have.length(2);
      expect(ferretDBCachePath()).to.not.equal(expected); // env restored
    });
  });
});

function tcpAccepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
