/**
 * A library worker that exposes its own Prometheus metrics. `pts serve` counts only the attempts
 * of the transitions it performs (HTTP workers, admin actions, its sweeps): a process that runs
 * `container.run()` itself observes its claims and attempts in its own registry, and Prometheus
 * scrapes it next to `pts serve` (sum over instances in PromQL; docs/api.md "Metrics").
 *
 *   npx tsx examples/metrics-worker.ts          # runs a small pipeline, prints the step histograms
 *   npx tsx examples/metrics-worker.ts --serve  # then keeps serving http://127.0.0.1:9464/metrics
 *
 * The database is MONGODB_URI if set; otherwise `startEmbeddedServer()` starts one. (Outside this
 * repository, import from 'persistent-task-status', 'persistent-task-status/server' and
 * 'persistent-task-status/testing'.)
 */
import http from 'node:http';
import mongoose from 'mongoose';
import { createClient } from '../lib';
import { createMetrics } from '../lib/server';
import { startEmbeddedServer } from '../lib/testing';

async function main(): Promise<void> {
  const server = process.env.MONGODB_URI
    ? null
    : await startEmbeddedServer({ log: (line) => console.error(`[metrics-worker] ${line}`) });
  const uri = process.env.MONGODB_URI ?? server!.uri;
  const connection = await mongoose.createConnection(uri, { dbName: 'pts_metrics_worker' }).asPromise();
  const client = createClient({ connection });
  // Group the step histograms by the part of the container name before the date.
  const metrics = createMetrics(client, { groupPrefixes: ['import-'] });
  const exporter = http.createServer((req, res) => {
    if (req.url !== '/metrics') return void res.writeHead(404).end();
    metrics.text().then(
      (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
      (err: Error) => res.writeHead(500).end(err.message),
    );
  });
  await new Promise<void>((resolve) => exporter.listen(9464, '127.0.0.1', resolve));
  try {
    const c = await client.getOrCreateTaskContainer(
      `import-${new Date().toISOString().slice(0, 10)}-${Date.now()}`,
    );
    await c.addTasks([
      { name: 'fetch' },
      { name: 'parse', dependsOn: ['fetch'] },
      { name: 'load', dependsOn: ['parse'], maxRetries: 1, retryDelayMs: 100, backoff: 'fixed' },
    ]);
    let loads = 0;
    const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
    await c.run({
      fetch: () => pause(50),
      parse: () => pause(20),
      load: async () => {
        await pause(30);
        if (++loads === 1) throw new Error('connection reset'); // a failed attempt, then a retry
      },
    });
    const text = await (await fetch('http://127.0.0.1:9464/metrics')).text();
    for (const line of text.split('\n'))
      if (/^pts_(step_duration|queue_wait)_seconds_(count|sum)/.test(line)) console.log(line);
    if (process.argv.includes('--serve')) {
      console.error('serving http://127.0.0.1:9464/metrics; Ctrl-C to stop');
      await new Promise((r) => process.once('SIGINT', r));
    }
  } finally {
    metrics.close();
    await new Promise((r) => exporter.close(r));
    await client.close();
    await connection.close();
    await server?.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
