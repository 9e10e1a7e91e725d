/**
 * Opening the database for a CLI command, and the CLI's exit codes.
 */
import mongoose from 'mongoose';
import { createClient, type Client } from '../client';
import { redactUri } from '../uri';
import { CliError, EXIT, oneLine } from './exit';

export { CliError, EXIT, oneLine, toExit, type ExitCode } from './exit';

/** Options every database command accepts. */
export interface DbOptions {
  mongodbUri?: string;
}

/** The URI from `--mongodb-uri` or `MONGODB_URI`, or a usage error. */
export function resolveUri(opts: DbOptions): string {
  const uri = (opts.mongodbUri ?? process.env.MONGODB_URI ?? '').trim();
  if (!uri) throw new CliError('no database: pass --mongodb-uri or set MONGODB_URI', EXIT.USAGE);
  if (!/^mongodb(\+srv)?:\/\//i.test(uri))
    throw new CliError(`not a mongodb:// URI: ${redactUri(uri)}`, EXIT.USAGE);
  return uri;
}

/** How long start-up waits for the server (`PTS_CONNECT_TIMEOUT_MS`, default 2500). */
function connectTimeoutMs(): number {
  const n = Number(process.env.PTS_CONNECT_TIMEOUT_MS);
  return Number.isFinite(n) && n > 0 ? n : 2500;
}

/** A connected client owning its connection, or CliError(exit 3) when the server is unreachable. */
export async function connect(
  uri: string,
  extra: Parameters<typeof createClient>[0] = {},
): Promise<{ client: Client; connection: mongoose.Connection }> {
  const connection = mongoose.createConnection(uri, {
    serverSelectionTimeoutMS: connectTimeoutMs(),
    autoIndex: false,
  });
  try {
    await connection.asPromise();
    await connection.db!.command({ ping: 1 });
  } catch (err) {
    await connection.close(true).catch(() => undefined);
    throw new CliError(`cannot reach the database at ${redactUri(uri)}: ${oneLine(err)}`, EXIT.UNREACHABLE);
  }
  const client = createClient({ ...extra, connection });
  return { client, connection };
}

/** Runs `fn` with a connected client and always closes the connection. */
export async function withClient<T>(opts: DbOptions, fn: (client: Client) => Promise<T>): Promise<T> {
  const { client, connection } = await connect(resolveUri(opts));
  try {
    return await fn(client);
  } finally {
    await client.close();
    await connection.close().catch(() => undefined);
  }
}
