/**
 * Per-spec-file database on the server started by spec/fixtures/global.ts.
 *
 *   describe('store', function () {
 *     const db = useTestDatabase();
 *     it('writes', async function () {
 *       requireCapability(this, db.capabilities, 'transactions', 'needs a replica set');
 *       await db.connection.collection('x').insertOne({});
 *     });
 *   });
 */
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import mongoose from 'mongoose';
import type { Context } from 'mocha';
import { detectCapabilities, type ServerCapabilities } from './capabilities';
import { trackResource } from './leaks';

export interface TestDatabase {
  /** Server URI with this spec file's database name as path. */
  readonly uri: string;
  readonly dbName: string;
  readonly connection: mongoose.Connection;
  readonly capabilities: ServerCapabilities;
}

/** Capabilities are a property of the server, not the database: probe once per server URI. */
const capabilityCache = new Map<string, Promise<ServerCapabilities>>();

export function testServerUri(): string {
  const uri = process.env.PTS_TEST_URI;
  if (!uri) {
    throw new Error(
      'PTS_TEST_URI is not set: spec/fixtures/global.ts did not run (run tests with `npm test` / mocha using .mocharc.json)',
    );
  }
  return uri;
}

/** `mongodb://host:port/?opts` + `name` -> `mongodb://host:port/name?opts`. */
export function withDatabase(uri: string, dbName: string): string {
  const match = /^(mongodb(?:\+srv)?:\/\/[^/?]*)(\/[^?]*)?(\?.*)?$/i.exec(uri);
  if (!match) throw new Error(`not a mongodb:// URI: ${uri}`);
  return `${match[1]}/${dbName}${match[3] ?? ''}`;
}

/** `pts_<spec basename>_<random>`, only [a-z0-9_], at most 63 characters. */
export function uniqueDatabaseName(specFile: string | undefined): string {
  const base = path
    .basename(specFile ?? 'spec')
    .replace(/\.(spec|test)\.[cm]?[jt]s$/i, '')
    .replace(/\.[cm]?[jt]s$/i, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '');
  const suffix = randomBytes(4).toString('hex');
  const room = 63 - 'pts__'.length - suffix.length;
  return `pts_${(base || 'spec').slice(0, room)}_${suffix}`;
}

function specFileFromStack(): string | undefined {
  const stack = new Error().stack ?? '';
  const match = /((?:[A-Za-z]:)?[^\s():]+\.(?:spec|test)\.[cm]?[jt]s)/.exec(stack);
  return match?.[1];
}

/**
 * Call inside a mocha `describe`. Registers before/after hooks that create a unique database for the
 * calling spec file, open an isolated mongoose connection to it, detect server capabilities, and
 * finally drop the database and close the connection.
 */
export function useTestDatabase(): TestDatabase {
  const fileAtCall = specFileFromStack();
  let state:
    | {
        uri: string;
        dbName: string;
        connection: mongoose.Connection;
        capabilities: ServerCapabilities;
      }
    | undefined;
  let untrackConnection: (() => void) | undefined;
  let opened: mongoose.Connection | undefined;

  before(async function () {
    const serverUri = testServerUri();
    const dbName = uniqueDatabaseName(this.test?.parent?.file ?? fileAtCall);
    const uri = withDatabase(serverUri, dbName);
    const connection = mongoose.createConnection(uri, {
      serverSelectionTimeoutMS: 10_000,
    });
    untrackConnection = trackResource(`mongoose connection ${dbName}`, () => connection.close(true));
    opened = connection;
    await connection.asPromise();
    if (!connection.db) throw new Error(`mongoose connection to ${dbName} has no db handle`);
    let capabilities = capabilityCache.get(serverUri);
    if (!capabilities) {
      capabilities = detectCapabilities(connection.db);
      capabilityCache.set(serverUri, capabilities);
      capabilities.catch(() => capabilityCache.delete(serverUri));
    }
    state = { uri, dbName, connection, capabilities: await capabilities };
  });

  // Runs even if before() failed half-way, so a connection is never left open.
  after(async function () {
    const connection = opened;
    state = undefined;
    opened = undefined;
    if (!connection) return;
    try {
      if (connection.readyState === mongoose.ConnectionStates.connected) await connection.dropDatabase();
    } finally {
      await connection.close(true);
      untrackConnection?.();
    }
  });

  const get = <K extends keyof NonNullable<typeof state>>(key: K): NonNullable<typeof state>[K] => {
    if (!state)
      throw new Error(`useTestDatabase().${String(key)} used outside of tests (before() hook has not run)`);
    return state[key];
  };
  return {
    get uri() {
      return get('uri');
    },
    get dbName() {
      return get('dbName');
    },
    get connection() {
      return get('connection');
    },
    get capabilities() {
      return get('capabilities');
    },
  };
}

/**
 * Skips the current test (or, from a before() hook, the suite) when `cap` is missing, printing
 * `[pts-test] skipped: <title>: <reason>` so skips are visible in CI logs.
 */
export function requireCapability(
  ctx: Context,
  caps: ServerCapabilities,
  cap: keyof ServerCapabilities,
  reason: string,
): void {
  if (caps[cap]) return;
  skipWithReason(ctx, reason);
}

/** Prints `[pts-test] skipped: <title>: <reason>` and skips the current test (or suite from before()). */
export function skipWithReason(ctx: Context, reason: string): never {
  // In a before() hook the skip applies to the whole suite; elsewhere to the current test.
  const inBeforeAll = /^"before all" hook/.test(ctx.test?.title ?? '');
  const title = inBeforeAll
    ? (ctx.test?.parent?.fullTitle() ?? '?')
    : ((ctx.currentTest ?? ctx.test)?.fullTitle() ?? '?');
  console.log(`[pts-test] skipped: ${title}: ${reason}`);
  return ctx.skip();
}
