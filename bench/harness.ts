/**
 * What every benchmark section shares: the log line, the write concern, the `Bench` context (the
 * server under test and every connection opened on it, with their commands counted), fixture
 * documents and the timing helpers.
 */
import os from 'node:os';
import path from 'node:path';
import { BSON, ObjectId, Timestamp, type Collection, type Document, type MongoClient } from 'mongodb';
import mongoose, { type Connection } from 'mongoose';
import { createClient, type Client, type TaskLease } from '../lib';
import type { EmbeddedServer } from '../lib/testing';
import { round, type Sample } from './stats';

export const ROOT = path.resolve(__dirname, '..');
/** The library's default write concern, used by the raw floor too. */
export const WC = { w: 1, j: true } as const;
/**
 * FerretDB/SQLite can be busy for over 10 s on one scan of a 100k collection; the driver's server
 * monitor then times out (connectTimeoutMS) and clears the pool mid-command. Be patient instead.
 */
export const SLOW_SERVER = {
  connectTimeoutMS: 300_000,
  serverSelectionTimeoutMS: 300_000,
  socketTimeoutMS: 0,
} as const;

export const T0 = performance.now();
export const log = (s: string): void => {
  process.stderr.write(`[bench ${((performance.now() - T0) / 1000).toFixed(0).padStart(4)}s] ${s}\n`);
};

// -------------------------------------------------------------------------------------------
// Connections and command counting
// -------------------------------------------------------------------------------------------

/** Commands and BSON bytes of one `name:collection` key (cumulative, or a difference of two snapshots). */
export interface CommandTraffic {
  commands: number;
  /** BSON size of the command documents (`commandStarted`), i.e. bytes sent, without wire headers. */
  sent: number;
  /** BSON size of the replies (`commandSucceeded`), i.e. bytes received, without wire headers. */
  received: number;
  /** Time the driver waited for the replies (`commandSucceeded`/`commandFailed` `duration`), ms: the server's time plus the round trip, and queueing in a loaded server. */
  ms: number;
}

/**
 * Command-monitoring housekeeping the pipeline's per-task counts leave out: the driver's session
 * and authentication traffic. (Its server monitoring and connection handshakes are not command
 * events at all; a `hello` or `buildInfo` seen here was sent by the code under test — the
 * library's clock sampling, feed horizon, batch-insert stamp check — and is counted.)
 */
export const HOUSEKEEPING = /^(ping|endSessions|saslStart|saslContinue):/;

/** The server under test and every connection the bench opened on it. */
export class Bench {
  private readonly opened: Connection[] = [];
  /** Commands started, by `name:collection`, across every connection the bench opened. */
  private readonly commands = new Map<string, number>();
  /** Bytes sent and received, by `name:collection` (command monitoring; see `CommandTraffic`). */
  private readonly bytes = new Map<string, { sent: number; received: number; ms: number }>();
  /** `requestId` → key of the commands in flight, so a reply is booked to its command. */
  private readonly inFlight = new Map<number, string>();

  constructor(
    readonly server: EmbeddedServer,
    /** True when the server pushes equality filters down (FerretDB/PostgreSQL; MongoDB uses indexes). */
    readonly pushdown: boolean,
  ) {}

  async connect(dbName: string): Promise<Connection> {
    const conn = await mongoose
      .createConnection(this.server.uri, { dbName, monitorCommands: true, ...SLOW_SERVER })
      .asPromise();
    const client = conn.getClient() as MongoClient;
    client.on('commandStarted', (e) => {
      const coll = typeof e.command[e.commandName] === 'string' ? String(e.command[e.commandName]) : '';
      const k = `${e.commandName}:${coll}`;
      this.commands.set(k, (this.commands.get(k) ?? 0) + 1);
      this.book(k, BSON.calculateObjectSize(e.command), 0);
      this.inFlight.set(e.requestId, k);
    });
    client.on('commandSucceeded', (e) => {
      const k = this.inFlight.get(e.requestId) ?? `${e.commandName}:?`;
      this.inFlight.delete(e.requestId);
      this.book(k, 0, e.reply ? BSON.calculateObjectSize(e.reply as Document) : 0, e.duration);
    });
    client.on('commandFailed', (e) => {
      const k = this.inFlight.get(e.requestId);
      this.inFlight.delete(e.requestId);
      if (k) this.book(k, 0, 0, e.duration);
    });
    this.opened.push(conn);
    return conn;
  }

  private book(k: string, sent: number, received: number, ms = 0): void {
    const b = this.bytes.get(k) ?? { sent: 0, received: 0, ms: 0 };
    b.sent += sent;
    b.received += received;
    b.ms += ms;
    this.bytes.set(k, b);
  }

  snapshot(): Map<string, number> {
    return new Map(this.commands);
  }

  /** Commands and bytes so far, by `name:collection` (pass to `trafficSince`). */
  trafficSnapshot(): Map<string, CommandTraffic> {
    const out = new Map<string, CommandTraffic>();
    for (const [k, n] of this.commands)
      out.set(k, { commands: n, sent: 0, received: 0, ms: 0, ...this.bytes.get(k) });
    return out;
  }

  /** Commands and bytes since `before`, by `name:collection`, keys with no command left out. */
  trafficSince(
    before: Map<string, CommandTraffic>,
    filter?: (k: string) => boolean,
  ): Record<string, CommandTraffic> {
    const out: Record<string, CommandTraffic> = {};
    for (const [k, now] of this.trafficSnapshot()) {
      const b = before.get(k) ?? { commands: 0, sent: 0, received: 0, ms: 0 };
      const d = {
        commands: now.commands - b.commands,
        sent: now.sent - b.sent,
        received: now.received - b.received,
        ms: now.ms - b.ms,
      };
      if (d.commands > 0 && (!filter || filter(k))) out[k] = d;
    }
    return out;
  }

  since(before: Map<string, number>, filter?: (k: string) => boolean): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [k, v] of this.commands) {
      const d = v - (before.get(k) ?? 0);
      if (d > 0 && (!filter || filter(k))) out[k] = d;
    }
    return out;
  }

  async freshDb(name: string): Promise<{ conn: Connection; client: Client }> {
    const conn = await this.connect(name);
    await conn.dropDatabase();
    const client = createClient({ connection: conn, leaseMs: 600_000, progressIntervalMs: 0 });
    await client.ensureIndexes();
    return { conn, client };
  }

  /** Closes every connection opened through `connect`/`freshDb` (errors ignored). */
  async closeConnections(): Promise<void> {
    for (const c of this.opened) await c.close().catch(() => {});
  }
}

export const sum = (r: Record<string, number>): number => Object.values(r).reduce((a, b) => a + b, 0);

// -------------------------------------------------------------------------------------------
// Fixtures and timing
// -------------------------------------------------------------------------------------------

export function tasksOf(conn: Connection): Collection<Document> {
  return conn.db!.collection('pts_tasks');
}

/** A well-formed pending task document, as `addTasks` writes it (used to build fixtures fast). */
export function taskDoc(
  containerId: ObjectId,
  container: string,
  name: string,
  now: Date,
  over: Document = {},
): Document {
  return {
    _id: new ObjectId(),
    containerId,
    container,
    name,
    state: 'pending',
    dependsOn: [],
    waitingOn: [],
    weight: 1,
    percentageComplete: 0,
    statusText: null,
    taskData: { n: name },
    processingData: null,
    result: null,
    invokeCount: 0,
    attempts: 0,
    maxRetries: 0,
    retryDelayMs: 1000,
    backoff: 'exponential',
    maxRetryDelayMs: 3_600_000,
    failures: [],
    failureCount: 0,
    lease: null,
    fence: 0,
    key: null,
    runAfter: now,
    createdAt: now,
    updatedAt: now,
    lastInvokedAt: null,
    endedAt: null,
    durationMs: null,
    rev: 1,
    changedAt: new Timestamp({ t: Math.floor(now.getTime() / 1000), i: 1 }),
    ...over,
  };
}

export async function claimMany(client: Client, container: string, n: number): Promise<TaskLease[]> {
  const out: TaskLease[] = [];
  for (let i = 0; i < n; i++) {
    const l = await client.claimNext({ container });
    if (!l) throw new Error(`claimMany: only ${i} of ${n} tasks ready`);
    out.push(l);
  }
  return out;
}

export async function timed(ops: number, fn: () => Promise<unknown>): Promise<Sample> {
  const t = performance.now();
  await fn();
  return { ops, ms: performance.now() - t };
}

/** The machine the results were measured on (recorded in the JSON and the doc). */
export function machine(): Document {
  const cpus = os.cpus();
  return {
    cores: cpus.length,
    cpuModel: cpus[0]?.model ?? 'unknown',
    memoryGb: round(os.totalmem() / 1024 ** 3, 1),
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    loadAvgAtStart: os.loadavg().map((v) => round(v, 2)),
  };
}
