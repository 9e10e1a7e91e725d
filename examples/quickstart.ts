/**
 * Quick start: a five-step pipeline with two parallel steps, progress, a checkpoint and resume.
 *
 *   npx tsx examples/quickstart.ts            # run (or resume) the pipeline
 *   npx tsx examples/quickstart.ts --crash    # die half-way through "transform-a"; run again to resume
 *   npx tsx examples/quickstart.ts --fresh    # delete the container first and start over
 *
 * The database is MONGODB_URI if set; otherwise `startEmbeddedServer()` starts one
 * (mongodb-memory-server, or FerretDB on SQLite when mongod cannot be downloaded). The FerretDB
 * data directory is kept in the OS temp dir, so a second run sees the first run's state.
 *
 * Pipeline:  download ──┬── transform-a ──┬── merge ── publish
 *                       └── transform-b ──┘
 *
 * (Outside this repository, import from 'persistent-task-status' instead of '../lib', and from
 * 'persistent-task-status/testing' instead of '../lib/testing'.)
 */
import os from 'node:os';
import path from 'node:path';
import mongoose from 'mongoose';
import { createClient, type TaskContext } from '../lib';
import { startEmbeddedServer } from '../lib/testing';

const CONTAINER = 'quickstart-pipeline';
const crash = process.argv.includes('--crash');
const fresh = process.argv.includes('--fresh');

/** A step that processes `chunks` chunks, reporting progress and checkpointing after each one. */
function chunkedStep(chunks: number, onChunkDone?: (ctx: TaskContext, chunk: number) => Promise<void>) {
  return async (ctx: TaskContext): Promise<unknown> => {
    // The checkpoint of an interrupted (or failed) earlier attempt, null on a fresh start.
    const saved = ctx.checkpoint as { nextChunk: number } | null;
    const start = saved?.nextChunk ?? 0;
    if (start > 0) console.log(`  ${ctx.name}: resuming at chunk ${start} (attempt ${ctx.attempt})`);
    else console.log(`  ${ctx.name}: starting (attempt ${ctx.attempt})`);
    for (let chunk = start; chunk < chunks; chunk++) {
      if (ctx.signal.aborted) throw ctx.signal.reason; // lease lost or run stopped: stop working
      await new Promise((r) => setTimeout(r, 50)); // the real work would go here
      ctx.progress(((chunk + 1) / chunks) * 100, `chunk ${chunk + 1}/${chunks}`);
      await ctx.saveCheckpoint({ nextChunk: chunk + 1 });
      await onChunkDone?.(ctx, chunk);
    }
    return { chunks, input: ctx.data };
  };
}

async function main(): Promise<void> {
  const server = await startEmbeddedServer({
    dataDir: path.join(os.tmpdir(), 'pts-quickstart-ferretdb'),
    log: (line) => console.error(`[quickstart] ${line}`),
  });
  console.log(`database: ${server.description}`);
  const connection = await mongoose.createConnection(server.uri, { dbName: 'pts_quickstart' }).asPromise();
  // A short lease so that a resumed run does not wait long for a crashed run's lease to expire.
  const client = createClient({ connection, leaseMs: 3_000, progressIntervalMs: 100 });
  client.on('task:succeeded', ({ task }) =>
    console.log(`  ${task.name}: succeeded in ${task.durationMs} ms`),
  );
  client.on('lease:expired', ({ task, owner }) =>
    console.log(`  ${task.name}: lease of ${owner} expired, the step will be resumed`),
  );

  try {
    if (fresh) await client.deleteTaskContainer(CONTAINER);
    const container = await client.getOrCreateTaskContainer(CONTAINER);
    console.log(
      container.isNew ? `created container ${CONTAINER}` : `container ${CONTAINER} exists: resuming`,
    );

    // Idempotent by name: on a re-run these return the existing tasks unchanged.
    await container.addTasks([
      { name: 'download', data: { url: 'https://example.com/feed.tar' } },
      { name: 'transform-a', dependsOn: ['download'], weight: 2 },
      { name: 'transform-b', dependsOn: ['download'], weight: 2 },
      { name: 'merge', dependsOn: ['transform-a', 'transform-b'] },
      { name: 'publish', dependsOn: ['merge'], retryDelayMs: 100 },
    ]);

    const result = await container.run(
      {
        download: chunkedStep(4),
        'transform-a': chunkedStep(10, async (ctx, chunk) => {
          if (crash && chunk === 4) {
            console.log(`  ${ctx.name}: simulating a crash after chunk ${chunk + 1} (checkpoint saved)`);
            await connection.close(true);
            await server.stop();
            process.exit(1);
          }
        }),
        'transform-b': chunkedStep(6),
        merge: chunkedStep(3),
        publish: async (ctx) => {
          ctx.status('publishing');
          return { publishedAt: new Date().toISOString() };
        },
      },
      { concurrency: 2 },
    );

    const s = result.summary;
    console.log(`\nstatus: ${result.status}  ${s.percentageComplete.toFixed(1)}% complete`);
    console.log(`counts: ${JSON.stringify(s.counts)}`);
    console.log(`this run started: ${JSON.stringify(result.attempts)}`);
    for (const t of await container.getTasks()) {
      console.log(
        `  ${t.name().padEnd(12)} ${t.state().padEnd(9)} ${String(t.percentageComplete()).padStart(3)}%  invoked ${t.invokeCount()}x  ` +
          `failures ${t.failures().length}  ${t.statusText() ?? ''}`,
      );
    }
    if (result.status === 'succeeded')
      console.log(`\nrun again to see nothing re-run, or with --fresh to start over`);
  } finally {
    await client.close();
    await connection.close();
    await server.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
