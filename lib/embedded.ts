/**
 * Start a MongoDB-compatible server for tests, demos and benchmarks.
 *
 * Selection order used by {@link startEmbeddedServer}:
 *   1. an explicit URI (`opts.uri` or `MONGODB_URI`)            -> kind 'external'
 *   2. mongodb-memory-server, if installed (downloads mongod on first use) -> kind 'mongodb-memory-server'
 *   3. FerretDB 1.24.2 on SQLite, built from `tools/ferretdb`     -> kind 'ferretdb'
 *
 * Nothing in here is needed at runtime by the library itself: it is published as the
 * `persistent-task-status/testing` entry (lib/testing.ts), never loaded by the main entry.
 * mongodb-memory-server is an optional peer dependency, required only inside
 * {@link startEmbeddedServer}; without it the selection goes on to FerretDB, or fails with a
 * {@link DatabaseError} that says how to install it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import mongoose from 'mongoose';
import { DatabaseError } from './errors';
import { redactUri } from './uri';

export { redactUri };

export type EmbeddedServerKind = 'external' | 'mongodb-memory-server' | 'ferretdb';

export interface EmbeddedServer {
  /** Connection string without a database name, e.g. `mongodb://127.0.0.1:41234/`. */
  uri: string;
  kind: EmbeddedServerKind;
  /** One human-readable line; credentials are redacted. */
  description: string;
  /** Stops the server (no-op for 'external'). Safe to call more than once. */
  stop(): Promise<void>;
}

export interface EmbeddedServerOptions {
  /** Use this server instead of starting one (takes precedence over `MONGODB_URI`). */
  uri?: string;
  /** Receives progress / fallback messages, one line each. Defaults to stderr with a `[pts]` prefix. */
  log?: (line: string) => void;
  /** FerretDB only: SQLite data directory (kept on stop). Default: a temp dir removed on stop. */
  dataDir?: string;
  /** Port for mongodb-memory-server or FerretDB. Default: a free loopback port. */
  port?: number;
  /** Upper bound for starting mongodb-memory-server, including a first-time mongod download. Default 120000. */
  memoryServerTimeoutMs?: number;
}

export interface FerretDBOptions {
  dataDir?: string;
  port?: number;
  log?: (line: string) => void;
  /**
   * Use FerretDB's PostgreSQL handler on this database instead of SQLite (`dataDir` is then
   * unused). FerretDB pushes equality filters down to SQL there; the benchmark's million-task
   * scale run uses it (bench/postgres.ts starts a throwaway cluster).
   */
  postgresqlUrl?: string;
  /**
   * `false`: talk to FerretDB directly instead of through tools/ferretdb's proxy that forwards
   * one request at a time. FerretDB/SQLite then loses concurrent updates of one document (see
   * tools/ferretdb/main.go); check a server with `probeAtomicity` before relying on it. For
   * measurements of concurrent writers (`npm run bench:concurrent`). @defaultValue true
   */
  serialize?: boolean;
}

export type FerretDBServer = EmbeddedServer & {
  dataDir: string;
  port: number;
  pid: number;
};

/** The FerretDB version pinned by tools/ferretdb/go.mod. */
export const FERRETDB_VERSION = '1.24.2';
/** Revision of tools/ferretdb (bump when it changes so cached builds are rebuilt; keep in sync with scripts/ensure-ferretdb.sh). */
export const FERRETDB_BUILD_REV = 'serial1';

const FERRETDB_READY_TIMEOUT_MS = 30_000;
const FERRETDB_STOP_GRACE_MS = 5_000;
const GO_BUILD_TIMEOUT_MS = 15 * 60_000;
const STDERR_TAIL_BYTES = 8 * 1024;

const defaultLog = (line: string): void => {
  process.stderr.write(`[pts] ${line}\n`);
};

function oneLine(err: unknown, max = 240): string {
  const text = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

// ---------------------------------------------------------------------------------------------
// Selection
// ---------------------------------------------------------------------------------------------

export async function startEmbeddedServer(opts: EmbeddedServerOptions = {}): Promise<EmbeddedServer> {
  const log = opts.log ?? defaultLog;

  const explicit = opts.uri ?? process.env.MONGODB_URI;
  if (explicit !== undefined && explicit.trim() !== '') {
    const uri = explicit.trim();
    const source = opts.uri !== undefined ? '' : 'MONGODB_URI=';
    return {
      uri,
      kind: 'external',
      description: `external ${source}${redactUri(uri)}`,
      stop: async () => {},
    };
  }

  // PTS_EMBEDDED_SERVER=ferretdb skips the mongodb-memory-server attempt (handy offline);
  // PTS_EMBEDDED_SERVER=mongodb-memory-server disables the FerretDB fallback.
  const forced = process.env.PTS_EMBEDDED_SERVER?.trim();
  if (forced && forced !== 'ferretdb' && forced !== 'mongodb-memory-server') {
    throw new Error(`PTS_EMBEDDED_SERVER must be 'ferretdb' or 'mongodb-memory-server', got '${forced}'`);
  }

  let memoryServerFailure = 'skipped (PTS_EMBEDDED_SERVER=ferretdb)';
  if (forced !== 'ferretdb') {
    try {
      return await startMemoryServer(opts.port, opts.memoryServerTimeoutMs ?? 120_000);
    } catch (err) {
      memoryServerFailure = oneLine(err);
      if (forced === 'mongodb-memory-server') {
        if (isMemoryServerMissing(err)) throw err;
        throw new Error(
          `mongodb-memory-server failed (PTS_EMBEDDED_SERVER=mongodb-memory-server): ${memoryServerFailure}`,
        );
      }
      log(`mongodb-memory-server unavailable, falling back to FerretDB: ${memoryServerFailure}`);
    }
  }

  try {
    return await startFerretDB({ dataDir: opts.dataDir, port: opts.port, log });
  } catch (err) {
    const ferretFailure = err instanceof Error ? err.message : String(err);
    throw new DatabaseError(
      `No MongoDB-compatible server available. MONGODB_URI: not set. ` +
        `mongodb-memory-server: ${memoryServerFailure}. FerretDB: ${ferretFailure}`,
      { memoryServer: memoryServerFailure, ferretdb: ferretFailure },
      err,
    );
  }
}

/** Message of the {@link DatabaseError} thrown when mongodb-memory-server is not installed. */
export const MEMORY_SERVER_MISSING_MESSAGE =
  'mongodb-memory-server is not installed: install mongodb-memory-server (npm i -D mongodb-memory-server) ' +
  'or pass MONGODB_URI / use FerretDB (PTS_EMBEDDED_SERVER=ferretdb)';

/** True for the error {@link loadMemoryServer} throws when the optional peer is absent. */
export function isMemoryServerMissing(err: unknown): boolean {
  return err instanceof DatabaseError && err.details.missing === 'mongodb-memory-server';
}

/**
 * Requires mongodb-memory-server (an optional peer dependency) on first use only, so neither the
 * library nor this module needs it to load. Absent: a DatabaseError with
 * `details.missing === 'mongodb-memory-server'`; any other failure to load is rethrown.
 */
function loadMemoryServer(): typeof import('mongodb-memory-server') {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('mongodb-memory-server') as typeof import('mongodb-memory-server');
  } catch (err) {
    const code = (err as { code?: string } | null)?.code;
    if (code === 'MODULE_NOT_FOUND' && /['"]mongodb-memory-server['"]/.test(String((err as Error).message)))
      throw new DatabaseError(MEMORY_SERVER_MISSING_MESSAGE, { missing: 'mongodb-memory-server' }, err);
    throw err;
  }
}

async function startMemoryServer(port: number | undefined, timeoutMs: number): Promise<EmbeddedServer> {
  // Loaded here, not at the top: a missing/broken module must only make us fall back (or fail
  // with the install hint), never crash at import time.
  const { MongoMemoryServer } = loadMemoryServer();
  const server = new MongoMemoryServer(port !== undefined ? { instance: { port } } : {});

  // mongodb-memory-server prints a multi-line stack via console.warn when start() fails; our caller
  // reports a one-line reason instead, so swallow exactly that message while starting.
  const originalWarn = console.warn;
  console.warn = (...args: unknown[]) => {
    if (typeof args[0] === 'string' && args[0].startsWith('Starting the MongoMemoryServer Instance failed'))
      return;
    originalWarn.apply(console, args);
  };
  let timer: NodeJS.Timeout | undefined;
  const starting = server.start();
  try {
    await Promise.race([
      starting,
      new Promise<never>((_resolve, reject) => {
        timer = setTimeout(
          () => reject(new Error(`mongodb-memory-server did not start within ${timeoutMs} ms`)),
          timeoutMs,
        );
      }),
    ]);
  } catch (err) {
    // If the start finishes after we gave up, do not leave an orphaned mongod behind.
    starting.then(
      () => server.stop().catch(() => undefined),
      () => undefined,
    );
    throw err;
  } finally {
    if (timer) clearTimeout(timer);
    console.warn = originalWarn;
  }

  const uri = server.getUri();
  let stopped: Promise<void> | undefined;
  return {
    uri,
    kind: 'mongodb-memory-server',
    description: `mongodb-memory-server (${uri.replace(/^mongodb:\/\//, '').replace(/\/$/, '')})`,
    stop: () => (stopped ??= server.stop({ doCleanup: true, force: false }).then(() => undefined)),
  };
}

// ---------------------------------------------------------------------------------------------
// FerretDB binary
// ---------------------------------------------------------------------------------------------

function cacheDir(): string {
  const fromEnv = process.env.PTS_CACHE_DIR?.trim();
  return fromEnv ? path.resolve(fromEnv) : path.join(os.homedir(), '.cache', 'persistent-task-status');
}

/** Where {@link ensureFerretDBBinary} caches the binary (unless `PTS_FERRETDB_BIN` is set). */
export function ferretDBCachePath(): string {
  return path.join(cacheDir(), `ferretdb-${FERRETDB_VERSION}-${FERRETDB_BUILD_REV}`, 'ferretdb');
}

/** tools/ferretdb relative to this file: lib/embedded.ts (source) or dist/lib/embedded.js (built). */
export function ferretDBSourceDir(): string | undefined {
  const candidates = [
    path.join(__dirname, '..', 'tools', 'ferretdb'),
    path.join(__dirname, '..', '..', 'tools', 'ferretdb'),
  ];
  return candidates.find(
    (dir) => fs.existsSync(path.join(dir, 'go.mod')) && fs.existsSync(path.join(dir, 'main.go')),
  );
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

function findGo(): string | undefined {
  const exe = process.platform === 'win32' ? 'go.exe' : 'go';
  const dirs = (process.env.PATH ?? '').split(path.delimiter).filter(Boolean);
  if (process.env.GOROOT) dirs.push(path.join(process.env.GOROOT, 'bin'));
  dirs.push('/usr/local/go/bin', '/usr/lib/go/bin');
  for (const dir of dirs) {
    const candidate = path.join(dir, exe);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

/**
 * Returns the path of a runnable FerretDB binary: `PTS_FERRETDB_BIN`, else the cached build, else
 * builds `tools/ferretdb` with the local Go toolchain into the cache (atomic rename, so concurrent
 * builders are safe). Throws an Error listing everything that was tried.
 */
export async function ensureFerretDBBinary(log: (line: string) => void = defaultLog): Promise<string> {
  const fromEnv = process.env.PTS_FERRETDB_BIN?.trim();
  if (fromEnv) {
    if (isExecutable(fromEnv)) return fromEnv;
    throw new Error(`PTS_FERRETDB_BIN=${fromEnv} is not an executable file`);
  }

  const target = ferretDBCachePath();
  if (isExecutable(target)) return target;

  const tried = [`PTS_FERRETDB_BIN: not set`, `cached binary ${target}: missing`];
  const go = findGo();
  const src = ferretDBSourceDir();
  if (!go) tried.push(`go toolchain: not found on PATH, $GOROOT/bin, /usr/local/go/bin or /usr/lib/go/bin`);
  if (!src) {
    tried.push(
      `FerretDB wrapper sources: no tools/ferretdb/{go.mod,main.go} next to ${path.join(__dirname, '..')}`,
    );
  }
  if (!go || !src) {
    throw new Error(
      `Cannot provide a FerretDB ${FERRETDB_VERSION} binary. Tried: ${tried.join('; ')}. ` +
        `Install Go >= 1.24, set PTS_FERRETDB_BIN, or set MONGODB_URI to use an existing server.`,
    );
  }

  await fsp.mkdir(path.dirname(target), { recursive: true });
  const tmp = `${target}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  log(
    `building FerretDB ${FERRETDB_VERSION} from ${src} with ${go} (first build downloads Go modules, ~1-2 min)`,
  );
  const started = Date.now();
  try {
    await runCommand(go, ['build', '-trimpath', '-o', tmp, '.'], src, GO_BUILD_TIMEOUT_MS);
    await fsp.chmod(tmp, 0o755);
    await fsp.rename(tmp, target); // atomic; a concurrent builder's identical binary may be replaced
  } catch (err) {
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
    tried.push(`go build in ${src}: ${err instanceof Error ? err.message : String(err)}`);
    throw new Error(`Cannot provide a FerretDB ${FERRETDB_VERSION} binary. Tried: ${tried.join('; ')}`);
  }
  log(`built ${target} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return target;
}

function runCommand(cmd: string, args: string[], cwd: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd,
      // GOWORK=off: a go.work in some parent directory must not capture tools/ferretdb
      env: { ...process.env, GOWORK: 'off' },
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: timeoutMs,
    });
    let output = '';
    const collect = (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-STDERR_TAIL_BYTES);
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    child.on('error', (err) => reject(err));
    child.on('close', (code, signal) => {
      if (code === 0) resolve();
      else
        reject(
          new Error(
            `${path.basename(cmd)} ${args.join(' ')} exited with ${signal ?? code}: ${output.trim()}`,
          ),
        );
    });
  });
}

// ---------------------------------------------------------------------------------------------
// FerretDB process
// ---------------------------------------------------------------------------------------------

// While a FerretDB child is alive, 'exit' and termination signals stop it. The signal handlers
// are installed only while needed and keep the default behaviour: if nobody else listens for the
// signal, it is re-raised after cleanup so the process still terminates.
const emergencyCleanups = new Set<() => void>();
const TERMINATION_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
const signalHandlers = new Map<NodeJS.Signals, () => void>();

function runEmergencyCleanups(): void {
  for (const cleanup of [...emergencyCleanups]) {
    emergencyCleanups.delete(cleanup);
    try {
      cleanup();
    } catch {
      // best effort while exiting
    }
  }
  uninstallEmergencyHandlers();
}

function uninstallEmergencyHandlers(): void {
  process.removeListener('exit', runEmergencyCleanups);
  for (const [signal, handler] of signalHandlers) process.removeListener(signal, handler);
  signalHandlers.clear();
}

function addEmergencyCleanup(cleanup: () => void): void {
  emergencyCleanups.add(cleanup);
  if (signalHandlers.size > 0) return;
  process.on('exit', runEmergencyCleanups);
  for (const signal of TERMINATION_SIGNALS) {
    const handler = () => {
      const othersListen = process.listenerCount(signal) > 1;
      runEmergencyCleanups();
      if (!othersListen) process.kill(process.pid, signal);
    };
    signalHandlers.set(signal, handler);
    process.on(signal, handler);
  }
}

function removeEmergencyCleanup(cleanup: () => void): void {
  emergencyCleanups.delete(cleanup);
  if (emergencyCleanups.size === 0) uninstallEmergencyHandlers();
}

/** Asks the OS for a free loopback port (listen on 0, close, return it). */
export function findFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      srv.close(() => (port ? resolve(port) : reject(new Error('could not determine a free port'))));
    });
  });
}

function tcpConnects(port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

async function pingOnce(uri: string): Promise<Record<string, unknown>> {
  const client = new mongoose.mongo.MongoClient(uri, {
    serverSelectionTimeoutMS: 1500,
    connectTimeoutMS: 1500,
    directConnection: true,
  });
  try {
    await client.connect();
    const admin = client.db('admin');
    await admin.command({ ping: 1 });
    return await admin.command({ buildInfo: 1 });
  } finally {
    await client.close().catch(() => undefined);
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Starts FerretDB (SQLite handler) on 127.0.0.1 and resolves once it answers `ping`.
 * Restarting with the same `dataDir` and `port` after stop() sees the same data.
 */
export async function startFerretDB(opts: FerretDBOptions = {}): Promise<FerretDBServer> {
  const log = opts.log ?? defaultLog;
  const bin = await ensureFerretDBBinary(log);
  if (opts.postgresqlUrl !== undefined) {
    const port = opts.port ?? (await findFreePort());
    return launchFerretDB(bin, { postgresqlUrl: opts.postgresqlUrl }, false, port, opts.serialize !== false);
  }

  const ownsDataDir = opts.dataDir === undefined;
  const dataDir = ownsDataDir
    ? await fsp.mkdtemp(path.join(os.tmpdir(), 'pts-ferretdb-'))
    : path.resolve(opts.dataDir as string);
  await fsp.mkdir(dataDir, { recursive: true });

  // A port picked by findFreePort() can be grabbed by someone else before FerretDB binds it;
  // retry with a fresh port in that case (only when we chose the port).
  const attempts = opts.port === undefined ? 3 : 1;
  let lastError: unknown;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const port = opts.port ?? (await findFreePort());
    try {
      return await launchFerretDB(bin, { dataDir }, ownsDataDir, port, opts.serialize !== false);
    } catch (err) {
      lastError = err;
      const portClash = /address already in use/i.test(String((err as Error)?.message));
      if (!portClash || attempt === attempts) break;
      log(`FerretDB port ${port} was taken, retrying with another port`);
    }
  }
  if (ownsDataDir) await fsp.rm(dataDir, { recursive: true, force: true }).catch(() => undefined);
  throw lastError;
}

async function launchFerretDB(
  bin: string,
  backend: { dataDir: string } | { postgresqlUrl: string },
  ownsDataDir: boolean,
  port: number,
  serialize: boolean,
): Promise<FerretDBServer> {
  const listenAddr = `127.0.0.1:${port}`;
  const logLevel = process.env.PTS_FERRETDB_LOG_LEVEL?.trim() || 'error';
  const dataDir = 'dataDir' in backend ? backend.dataDir : '';
  const handler = 'dataDir' in backend ? 'sqlite' : 'postgresql';
  const args = [
    ...('dataDir' in backend
      ? ['--handler=sqlite', `--sqlite-url=${pathToFileURL(backend.dataDir).href.replace(/\/?$/, '/')}`] // must end with '/'
      : ['--handler=postgresql', `--postgresql-url=${backend.postgresqlUrl}`]),
    `--listen-addr=${listenAddr}`,
    `--log-level=${logLevel}`,
    ...(serialize ? [] : ['--serialize=false']),
  ];

  const child: ChildProcess = spawn(bin, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderrTail = '';
  let listening = false;
  const onOutput = (chunk: Buffer) => {
    stderrTail = (stderrTail + chunk.toString()).slice(-STDERR_TAIL_BYTES);
    if (!listening && stderrTail.includes('ferretdb listening on')) listening = true;
  };
  child.stdout?.on('data', onOutput);
  child.stderr?.on('data', onOutput);

  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  let spawnError: Error | undefined;
  const exitPromise = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      resolve();
    });
    child.once('error', (err) => {
      spawnError = err;
      exited ??= { code: null, signal: null };
      resolve();
    });
  });

  // Never leave FerretDB running (or its temp dir behind) if this process exits or is killed
  // by a signal without calling stop().
  const emergencyCleanup = () => {
    if (!exited) child.kill(ownsDataDir ? 'SIGKILL' : 'SIGTERM');
    if (ownsDataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  };
  addEmergencyCleanup(emergencyCleanup);

  const describeFailure = (what: string) =>
    new Error(
      `FerretDB (${bin} ${args.join(' ')}) ${what}.` +
        (stderrTail.trim()
          ? ` stderr tail:\n${stderrTail.trim().split('\n').slice(-15).join('\n')}`
          : ' (no stderr output)'),
    );

  const uri = `mongodb://${listenAddr}/`;
  let buildInfo: Record<string, unknown> | undefined;
  const deadline = Date.now() + FERRETDB_READY_TIMEOUT_MS;
  let lastPingError: unknown;
  try {
    while (!buildInfo) {
      if (spawnError) throw describeFailure(`could not be spawned: ${spawnError.message}`);
      if (exited)
        throw describeFailure(`exited during startup with ${exited.signal ?? `code ${exited.code}`}`);
      if (Date.now() > deadline) {
        throw describeFailure(
          `did not answer ping on ${listenAddr} within ${FERRETDB_READY_TIMEOUT_MS} ms` +
            (lastPingError ? ` (last error: ${oneLine(lastPingError)})` : ''),
        );
      }
      // Only talk to the port after *our* process says it is listening, so a foreign server that
      // happens to own the port is never mistaken for ours.
      if (listening && (await tcpConnects(port, 1000))) {
        try {
          const info = await pingOnce(uri);
          if (!exited) buildInfo = info;
        } catch (err) {
          lastPingError = err;
        }
      }
      if (!buildInfo) await sleep(100);
    }
  } catch (err) {
    removeEmergencyCleanup(emergencyCleanup);
    if (!exited) {
      child.kill('SIGKILL');
      await exitPromise;
    }
    throw err;
  }

  const reported = typeof buildInfo.ferretdbVersion === 'string' ? buildInfo.ferretdbVersion : 'unknown';
  // The embeddable FerretDB package reports 'unknown'; our wrapper pins FERRETDB_VERSION.
  const version =
    reported !== 'unknown'
      ? reported.replace(/^v/, '')
      : process.env.PTS_FERRETDB_BIN?.trim()
        ? 'unknown-version'
        : FERRETDB_VERSION;

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      if (!exited) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => {
          if (!exited) child.kill('SIGKILL');
        }, FERRETDB_STOP_GRACE_MS);
        await exitPromise;
        clearTimeout(timer);
      }
      removeEmergencyCleanup(emergencyCleanup);
      if (ownsDataDir) await fsp.rm(dataDir, { recursive: true, force: true });
    })());

  return {
    uri,
    kind: 'ferretdb',
    description: `ferretdb ${version} (${handler}${serialize ? '' : ', unserialized'}, ${listenAddr})`,
    dataDir,
    port,
    pid: child.pid as number,
    stop,
  };
}
