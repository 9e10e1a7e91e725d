/**
 * The pipeline workload on BullMQ (a reference row on a different database, not a target): add T
 * jobs with `queue.addBulk`, a `Worker` with `concurrency` = workers runs each job, which reports
 * progress 3× (`job.updateProgress(p)`) and completes.
 *
 * The Redis server is Debian's `redis-server` (/usr/bin/redis-server, or $PTS_REDIS_SERVER), started
 * here on a free loopback port in a temp dir with `appendonly yes`, `appendfsync always` (every
 * write is in the fsynced append-only file before its reply, like MongoDB's `j: true`) and no RDB
 * snapshots; it is stopped and its directory removed by `close()` (or at process exit).
 *
 * Counted per round: the Redis commands the client sends (every ioredis `sendCommand`, Lua
 * scripts named by their BullMQ script name), the commands the server executes (`INFO
 * commandstats` difference: the client's commands plus the ones run inside Lua scripts) and the
 * bytes the server read and wrote (`INFO stats` total_net_input_bytes / total_net_output_bytes), of
 * which the Lua sources sent once per script and new connection (EVAL) are counted apart.
 * When redis-server or the packages are missing, `openBullMQ` resolves to the reason as a string.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { findFreePort } from '../lib/embedded';
import type { Sample } from './stats';

/** One BullMQ round's traffic (totals for the round; the caller divides by the tasks). */
export interface RedisTraffic {
  /** Commands sent by the client, by command name (`evalsha:<BullMQ script>` for scripts). */
  clientCommands: Record<string, number>;
  /** Commands executed by the server (`INFO commandstats` difference), by command name. */
  serverCommands: Record<string, number>;
  /** Bytes the server received (total_net_input_bytes difference; RESP, wire size). */
  bytesIn: number;
  /** Bytes the server sent (total_net_output_bytes difference; RESP, wire size). */
  bytesOut: number;
  /**
   * Of `bytesIn`, the Lua sources ioredis sent (EVAL instead of EVALSHA, once per script per new
   * connection: each round opens new connections, so this is a per-round constant).
   */
  scriptSourceBytes: number;
}

export interface BullMQRunner {
  /** e.g. `BullMQ 6.7.0 (ioredis 6.0.0) on Redis 7.0.15, appendfsync always`. */
  description: string;
  round(tasks: number, concurrency: number): Promise<Sample & { traffic: RedisTraffic }>;
  close(): Promise<void>;
}

interface RedisLike {
  info(section: string): Promise<string>;
  flushdb(): Promise<unknown>;
  quit(): Promise<unknown>;
  on(event: 'error', fn: (err: Error) => void): unknown;
}
interface CommandLike {
  name: string;
  args: unknown[];
}
type RedisCtor = (new (opts: Record<string, unknown>) => RedisLike) & {
  prototype: { sendCommand(command: CommandLike, ...rest: unknown[]): unknown };
};
type CommandCtor = { prototype: { toWritable(this: CommandLike, ...a: unknown[]): unknown } };

const REDIS_SERVER = process.env.PTS_REDIS_SERVER ?? '/usr/bin/redis-server';

/** Starts redis-server and loads BullMQ; resolves to the reason as a string when either cannot run. */
export async function openBullMQ(log: (line: string) => void): Promise<BullMQRunner | string> {
  let bullmq: typeof import('bullmq');
  let Redis: RedisCtor;
  let Command: CommandCtor;
  try {
    bullmq = await import('bullmq');
    const io = (await import('ioredis')) as unknown as { default: RedisCtor; Command: CommandCtor };
    Redis = io.default;
    Command = io.Command;
  } catch (err) {
    return `cannot load bullmq / ioredis (dev dependencies): ${(err as Error).message.split('\n')[0]}`;
  }
  if (!fs.existsSync(REDIS_SERVER))
    return `${REDIS_SERVER} not found (Debian: apt-get install -y redis-server; or set PTS_REDIS_SERVER)`;

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pts-bench-redis-'));
  const port = await findFreePort();
  const args = [
    '--port', String(port),
    '--bind', '127.0.0.1',
    '--dir', dir,
    '--save', '',
    '--appendonly', 'yes',
    '--appendfsync', 'always',
    '--daemonize', 'no',
    '--loglevel', 'warning',
  ]; // prettier-ignore
  const child: ChildProcess = spawn(REDIS_SERVER, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (d: Buffer): void => void (output = (output + String(d)).slice(-4000));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  let exited = false;
  let spawnError: Error | null = null;
  child.once('error', (e) => (spawnError = e));
  const exit = new Promise<void>((resolve) => child.once('close', () => ((exited = true), resolve())));
  const cleanup = (): void => {
    if (!exited) child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', cleanup);
  const stop = async (): Promise<void> => {
    if (!exited) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exit;
      clearTimeout(t);
    }
    process.removeListener('exit', cleanup);
    fs.rmSync(dir, { recursive: true, force: true });
  };

  const connection = { host: '127.0.0.1', port, maxRetriesPerRequest: null, lazyConnect: false };
  let admin: RedisLike | undefined;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (spawnError || exited) {
      await stop();
      return `redis-server did not start: ${spawnError ? (spawnError as Error).message : output.trim() || 'exited'}`;
    }
    try {
      admin = new Redis({ ...connection, retryStrategy: () => null, maxRetriesPerRequest: 0 });
      admin.on('error', () => {}); // a refused first connect is retried by this loop
      await admin.info('server');
      break;
    } catch (err) {
      await admin?.quit().catch(() => {});
      admin = undefined;
      if (Date.now() > deadline) {
        await stop();
        return `redis-server did not accept connections on ${port} within 20 s: ${(err as Error).message}; ${output.trim()}`;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  const redisVersion = /redis_version:(\S+)/.exec(await admin.info('server'))?.[1] ?? '?';
  const versionOf = (pkg: string): string =>
    (JSON.parse(fs.readFileSync(require.resolve(`${pkg}/package.json`), 'utf8')) as { version: string })
      .version;
  const versions = { bullmq: versionOf('bullmq'), ioredis: versionOf('ioredis') };
  const description = `BullMQ ${versions.bullmq} (ioredis ${versions.ioredis}) on Redis ${redisVersion}, 127.0.0.1:${port}, appendonly yes, appendfsync always`;
  log(`bullmq: ${description} (data in ${dir})`);

  // Client-side command counting: every command of every ioredis connection goes through
  // Redis.prototype.sendCommand (pipelines and MULTI too). Lua scripts are sent as EVALSHA <sha>
  // (EVAL with the source the first time on a socket); the sha names the BullMQ script.
  const scriptsModule: string = 'bullmq/dist/cjs/scripts'; // a variable: the module has no types
  const mod = (await import(scriptsModule)) as Record<string, unknown> & {
    default?: Record<string, unknown>;
  };
  const scripts = Object.values(mod.default ?? mod).filter(
    (x): x is { name: string; content: string } =>
      typeof (x as { name?: unknown })?.name === 'string' &&
      typeof (x as { content?: unknown }).content === 'string',
  );
  const scriptBySha = new Map(
    scripts.map((s) => [createHash('sha1').update(s.content).digest('hex'), s.name]),
  );
  let counting: Record<string, number> | null = null;
  let scriptSourceBytes = 0;
  const originalToWritable = Command.prototype.toWritable;
  // A script command becomes EVAL <source> in toWritable when its socket has not loaded it yet.
  Command.prototype.toWritable = function (this: CommandLike, ...a: unknown[]) {
    const out = originalToWritable.apply(this, a);
    if (counting && this.name === 'eval') scriptSourceBytes += Buffer.byteLength(String(this.args[0]));
    return out;
  };
  const original = Redis.prototype.sendCommand;
  Redis.prototype.sendCommand = function (this: unknown, command: CommandLike, ...rest: unknown[]) {
    if (counting) {
      const script = command.name === 'evalsha' ? scriptBySha.get(String(command.args[0])) : undefined;
      const k = script ? `evalsha:${script}` : command.name;
      counting[k] = (counting[k] ?? 0) + 1;
    }
    return original.call(this, command, ...rest);
  };

  const serverStats = async (): Promise<{ commands: Record<string, number>; in: number; out: number }> => {
    const cs = await admin!.info('commandstats');
    const st = await admin!.info('stats');
    const commands: Record<string, number> = {};
    for (const m of cs.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) commands[m[1]] = Number(m[2]);
    const num = (k: string): number => Number(new RegExp(`^${k}:(\\d+)`, 'm').exec(st)?.[1] ?? NaN);
    return { commands, in: num('total_net_input_bytes'), out: num('total_net_output_bytes') };
  };

  // The two INFO calls of a snapshot are in the byte counters of the next one: measure them once
  // (two snapshots back to back) and subtract.
  const c0 = await serverStats();
  const c1 = await serverStats();
  const infoBytes = { in: c1.in - c0.in, out: c1.out - c0.out };

  let roundNo = 0;
  return {
    description,
    async round(tasks: number, concurrency: number) {
      await admin!.flushdb();
      const name = `bench-${++roundNo}`;
      const queue = new bullmq.Queue(name, { connection });
      let done = 0;
      let finish: () => void = () => {};
      let fail: (e: Error) => void = () => {};
      const finished = new Promise<void>((resolve, reject) => ((finish = resolve), (fail = reject)));
      const worker = new bullmq.Worker(
        name,
        async (job) => {
          for (const p of [25, 50, 75]) await job.updateProgress(p);
          return { ok: 1 };
        },
        { connection, concurrency, autorun: false },
      );
      worker.on('completed', () => {
        if (++done === tasks) finish();
      });
      worker.on('failed', (_job, err) => fail(new Error(`bullmq job failed: ${err.message}`)));
      worker.on('error', (err) => process.stderr.write(`bullmq worker error: ${String(err)}\n`));
      await queue.waitUntilReady();
      await worker.waitUntilReady();
      const before = await serverStats();
      const clientCommands: Record<string, number> = {};
      counting = clientCommands;
      scriptSourceBytes = 0;
      const t = performance.now();
      await queue.addBulk(Array.from({ length: tasks }, (_, i) => ({ name: 'bench', data: { i } })));
      const running = worker.run();
      await finished;
      const ms = performance.now() - t;
      counting = null;
      const after = await serverStats();
      await worker.close();
      await running.catch(() => {});
      await queue.close();
      const serverCommands: Record<string, number> = {};
      for (const [k, v] of Object.entries(after.commands)) {
        const d = v - (before.commands[k] ?? 0);
        if (d > 0 && k !== 'info') serverCommands[k] = d;
      }
      return {
        ops: tasks,
        ms,
        traffic: {
          clientCommands,
          serverCommands,
          bytesIn: after.in - before.in - infoBytes.in,
          bytesOut: after.out - before.out - infoBytes.out,
          scriptSourceBytes,
        },
      };
    },
    async close() {
      Redis.prototype.sendCommand = original;
      Command.prototype.toWritable = originalToWritable;
      await admin?.quit().catch(() => {});
      await stop();
    },
  };
}
