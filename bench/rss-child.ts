/**
 * Child process of the benchmark: runs one container with trivial handlers and reports its peak
 * RSS (sampled `process.memoryUsage().rss` and the kernel's VmHWM) as one JSON line on stdout.
 * Usage: tsx bench/rss-child.ts <uri> <dbName> <container> <concurrency>
 */
import fs from 'node:fs';
import mongoose from 'mongoose';
import { createClient } from '../lib';

function vmHwmMb(): number | null {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

async function main(): Promise<void> {
  const [uri, dbName, name, conc] = process.argv.slice(2);
  const conn = await mongoose
    .createConnection(uri, {
      dbName,
      connectTimeoutMS: 300_000,
      serverSelectionTimeoutMS: 300_000,
      socketTimeoutMS: 0,
    })
    .asPromise();
  const client = createClient({ connection: conn, progressIntervalMs: 0 });
  const baseline = process.memoryUsage().rss / 1048576;
  let peak = baseline;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss / 1048576);
  }, 25);
  const container = await client.getTaskContainer(name);
  if (!container) throw new Error(`no container ${name}`);
  // RSS after each tenth of the tasks: a runner whose memory grows with the tasks it has
  // processed shows it here even when the run is too short to reach the limit.
  const total = (await container.summary()).total;
  const tenth = Math.max(1, Math.floor(total / 10));
  const rssByTenthMb: number[] = [];
  let done = 0;
  const t = performance.now();
  const r = await container.run(
    () => {
      if (++done % tenth === 0) rssByTenthMb.push(Math.round((process.memoryUsage().rss / 1048576) * 10) / 10);
      return { ok: 1 };
    },
    { concurrency: Number(conc) },
  );
  const ms = performance.now() - t;
  clearInterval(timer);
  peak = Math.max(peak, process.memoryUsage().rss / 1048576);
  await conn.close();
  process.stdout.write(
    `${JSON.stringify({ baselineRssMb: baseline, peakRssMb: peak, vmHwmMb: vmHwmMb(), rssByTenthMb, succeeded: r.succeeded.length, status: r.status, ms })}\n`,
  );
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
