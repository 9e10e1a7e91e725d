/**
 * Section "docsize": the stored size of a task document in each state (issue 12, item 2). Tasks
 * are written through the library (a batch `addTasks`, a single `addTask`, a claim, a progress
 * heartbeat, a succeed, a final failure) and read back raw from `pts_tasks`; the size is the
 * document's BSON size (what MongoDB stores and sends, `BSON.calculateObjectSize`), the field
 * count is the number of top-level fields (nested `lease` / failure fields are counted apart).
 * No timing: one document per state, the numbers are deterministic for a given library version.
 */
import mongoose from 'mongoose';
import type { Document } from 'mongodb';
import { log, tasksOf, type Bench } from '../harness';

const { BSON } = mongoose.mongo;

/** Fields of embedded objects at any depth (the lease, failure records, result/taskData objects); BSON values are leaves. */
function nestedFields(v: unknown): number {
  if (Array.isArray(v)) return v.reduce((n: number, x) => n + nestedFields(x), 0);
  if (!v || typeof v !== 'object' || (v as object).constructor !== Object) return 0;
  return Object.values(v).reduce((n: number, x) => n + 1 + nestedFields(x), 0);
}

export async function docsize(bench: Bench): Promise<Document> {
  const { conn, client } = await bench.freshDb('bench_docsize');
  const col = tasksOf(conn);
  const c = await client.getOrCreateTaskContainer('docsize');
  // The same payload as the bench's other sections (`{ n: name }`).
  await c.addTasks([
    { name: 'batch', data: { n: 'batch' } },
    { name: 'claimed', data: { n: 'claimed' } },
    { name: 'progress', data: { n: 'progress' } },
    { name: 'succeeded', data: { n: 'succeeded' } },
    { name: 'failed', data: { n: 'failed' }, maxRetries: 0 },
  ]);
  await c.addTask('single', { n: 'single' });
  const claim = async (name: string) => {
    const lease = await client.claimNext(
      { container: 'docsize', names: [name] },
      { owner: 'docsize', leaseMs: 60_000 },
    );
    if (!lease || lease.task.name !== name)
      throw new Error(`docsize: claimed ${lease?.task.name ?? 'nothing'} instead of ${name}`);
    return lease;
  };
  await claim('claimed');
  await (await claim('progress')).heartbeat({ percentageComplete: 50, statusText: 'half way' });
  await (await claim('succeeded')).succeed({ ok: true });
  await (await claim('failed')).fail(new Error('boom'), { retryable: false });
  const rows: Document[] = [];
  for (const [state, name] of [
    ['pending (addTasks batch)', 'batch'],
    ['pending (single addTask)', 'single'],
    ['running (just claimed)', 'claimed'],
    ['running, progress 50 % + status text', 'progress'],
    ['succeeded (result { ok: true })', 'succeeded'],
    ['failed (1 failure record)', 'failed'],
  ] as const) {
    const d = await col.findOne({ containerId: c._id, name });
    if (!d) throw new Error(`docsize: task ${name} not found`);
    const nulls = Object.entries(d)
      .filter(([, v]) => v === null || (Array.isArray(v) && v.length === 0))
      .map(([k]) => k);
    rows.push({
      state,
      bytes: BSON.calculateObjectSize(d),
      fields: Object.keys(d).length,
      nested: Object.values(d).reduce((n: number, x) => n + nestedFields(x), 0),
      nullOrEmpty: nulls,
    });
  }
  log(
    'docsize: stored task document per state (BSON bytes, top-level fields, nested fields, null/empty fields)',
  );
  for (const r of rows)
    log(
      `    ${String(r.state).padEnd(40)} ${String(r.bytes).padStart(5)} B  ${String(r.fields).padStart(3)} fields  +${r.nested} nested  null/empty: ${(r.nullOrEmpty as string[]).join(', ') || '-'}`,
    );
  await conn.dropDatabase();
  return { rows };
}
