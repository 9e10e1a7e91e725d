/**
 * Section 6, index use: explains every query the library sends on a hot path. On MongoDB a
 * COLLSCAN (or no index) fails the bench; on FerretDB the SQLite plans are recorded, not asserted.
 */
import { ObjectId, type Document } from 'mongodb';
import { log, type Bench } from '../harness';
import { CLAIM_ORDER } from '../../lib/store/filters';

function stages(plan: unknown, out: string[] = []): string[] {
  if (plan && typeof plan === 'object') {
    for (const [k, v] of Object.entries(plan as Record<string, unknown>)) {
      if (k === 'stage' && typeof v === 'string') out.push(v);
      else if (k === 'rejectedPlans') continue;
      else stages(v, out);
    }
  }
  return out;
}

export async function explain(bench: Bench): Promise<Document> {
  const { conn, client } = await bench.freshDb('bench_explain');
  const db = conn.db!;
  const c = await client.getOrCreateTaskContainer('explain-a');
  await c.addTasks([
    { name: 'root' },
    { name: 'child', dependsOn: ['root'] },
    ...Array.from({ length: 50 }, (_, i) => ({ name: `t${i}` })),
  ]);
  const lease = (await client.claimNext({ container: 'explain-a' }))!;
  const now = new Date();
  const cid = c._id;
  const tid = new ObjectId(lease.task.id);
  const q: Array<{
    name: string;
    coll: string;
    kind: 'find' | 'findAndModify' | 'update';
    filter: Document;
    sort?: Document;
    limit?: number;
    update?: Document;
  }> = [
    {
      name: 'listContainers by status',
      coll: 'pts_containers',
      kind: 'find',
      filter: { status: 'running' },
      sort: { _id: -1 },
      limit: 51,
    },
    {
      name: 'listContainers by statuses + cursor',
      coll: 'pts_containers',
      kind: 'find',
      filter: { status: { $in: ['running', 'failed'] }, _id: { $lt: new ObjectId() } },
      sort: { _id: -1 },
      limit: 51,
    },
    {
      name: 'listContainers by name prefix',
      coll: 'pts_containers',
      kind: 'find',
      filter: { name: { $regex: '^explain' } },
      sort: { _id: -1 },
      limit: 51,
    },
    { name: 'container by name', coll: 'pts_containers', kind: 'find', filter: { name: 'explain-a' } },
    {
      name: 'listTasks by state + cursor',
      coll: 'pts_tasks',
      kind: 'find',
      filter: { containerId: cid, state: 'failed', _id: { $gt: tid } },
      sort: { _id: 1 },
      limit: 101,
    },
    {
      name: 'listTasks by states',
      coll: 'pts_tasks',
      kind: 'find',
      filter: { containerId: cid, state: { $in: ['failed', 'pending'] } },
      sort: { _id: 1 },
      limit: 101,
    },
    {
      name: 'summary: running tasks of a container',
      coll: 'pts_tasks',
      kind: 'find',
      filter: { containerId: cid, state: 'running' },
    },
    { name: 'task by name', coll: 'pts_tasks', kind: 'find', filter: { containerId: cid, name: 't1' } },
    {
      name: 'claim (container)',
      coll: 'pts_tasks',
      kind: 'findAndModify',
      filter: {
        state: 'pending',
        'waitingOn.0': { $exists: false },
        runAfter: { $lte: now },
        containerId: cid,
        key: null,
      },
      sort: CLAIM_ORDER,
      update: { $set: { state: 'running' } },
    },
    {
      name: 'claim (any container)',
      coll: 'pts_tasks',
      kind: 'findAndModify',
      filter: { state: 'pending', 'waitingOn.0': { $exists: false }, runAfter: { $lte: now }, key: null },
      sort: CLAIM_ORDER,
      update: { $set: { state: 'running' } },
    },
    {
      name: 'claim (one key)',
      coll: 'pts_tasks',
      kind: 'findAndModify',
      filter: { state: 'pending', 'waitingOn.0': { $exists: false }, runAfter: { $lte: now }, key: 'k' },
      sort: CLAIM_ORDER,
      update: { $set: { state: 'running' } },
    },
    {
      name: 'keyed candidates (any container)',
      coll: 'pts_tasks',
      kind: 'find',
      filter: { state: 'pending', 'waitingOn.0': { $exists: false }, runAfter: { $lte: now }, key: { $ne: null } },
      sort: CLAIM_ORDER,
      limit: 200,
    },
    {
      name: 'inputs of a task (dependencies by name)',
      coll: 'pts_tasks',
      kind: 'find',
      filter: { containerId: cid, name: { $in: ['root', 't1'] } },
    },
    {
      name: 'heartbeat (_id + state + fence)',
      coll: 'pts_tasks',
      kind: 'update',
      filter: { _id: tid, state: 'running', fence: lease.token },
      update: { $set: { percentageComplete: 5 } },
    },
    {
      name: 'succeed/fail (_id + state + fence)',
      coll: 'pts_tasks',
      kind: 'findAndModify',
      filter: { _id: tid, state: 'running', fence: lease.token },
      update: { $set: { percentageComplete: 5 } },
    },
    {
      name: 'sweep (state + lease.expiresAt)',
      coll: 'pts_tasks',
      kind: 'find',
      filter: { state: 'running', 'lease.expiresAt': { $lte: now } },
      limit: 1000,
    },
    {
      name: 'waitingOn unblock',
      coll: 'pts_tasks',
      kind: 'update',
      filter: { containerId: cid, waitingOn: 'root' },
      update: { $pull: { waitingOn: 'root' } },
    },
    {
      name: 'creation sequence reservation ($inc by _id)',
      coll: 'pts_sequences',
      kind: 'findAndModify',
      filter: { _id: 'tasks' },
      update: { $inc: { next: 1 } },
    },
    {
      name: 'container counters ($inc by _id)',
      coll: 'pts_containers',
      kind: 'findAndModify',
      filter: { _id: cid },
      update: { $inc: { rev: 1 } },
    },
  ];
  const strict = bench.server.kind !== 'ferretdb';
  const rows: Document[] = [];
  for (const x of q) {
    let res: Document;
    let explainedAs: string = x.kind;
    const asFind = (): Promise<Document> => {
      let cur = db.collection(x.coll).find(x.filter);
      if (x.sort) cur = cur.sort(x.sort);
      if (x.limit) cur = cur.limit(x.limit);
      return cur.explain('queryPlanner');
    };
    try {
      if (x.kind === 'find') res = await asFind();
      else if (x.kind === 'findAndModify') {
        res = await db.command({
          explain: {
            findAndModify: x.coll,
            query: x.filter,
            ...(x.sort ? { sort: x.sort } : {}),
            update: x.update,
          },
          verbosity: 'queryPlanner',
        });
      } else {
        res = await db.command({
          explain: {
            update: x.coll,
            updates: [{ q: x.filter, u: x.update!, multi: x.name === 'waitingOn unblock' }],
          },
          verbosity: 'queryPlanner',
        });
      }
    } catch (err) {
      explainedAs = `find (explain of ${x.kind} failed: ${(err as Error).message.split('\n')[0].slice(0, 120)})`;
      res = await asFind();
    }
    const qp = (res.queryPlanner ?? {}) as Document;
    const st = stages(qp.winningPlan ?? {});
    const sqlite = Array.isArray(qp.Plan) ? (qp.Plan as string[]) : null;
    const index = strict
      ? (JSON.stringify(qp.winningPlan ?? {}).match(/"indexName":"([^"]+)"/)?.[1] ?? null)
      : null;
    const ok = strict ? !st.includes('COLLSCAN') && st.some((s) => /IXSCAN|IDHACK|EXPRESS/.test(s)) : null;
    rows.push({
      query: x.name,
      collection: x.coll,
      explainedAs,
      filter: JSON.stringify(x.filter),
      stages: st,
      index,
      sqlitePlan: sqlite,
      pushdown: sqlite
        ? {
            filter: res.filterPushdown ?? null,
            sort: res.sortPushdown ?? null,
            limit: res.limitPushdown ?? null,
          }
        : null,
      indexed: ok,
    });
    log(`explain ${x.name}: ${sqlite ? sqlite.join(' | ') : st.join(' > ')}${index ? ` [${index}]` : ''}`);
  }
  await conn.dropDatabase();
  const failures = rows.filter((r) => r.indexed === false).map((r) => r.query);
  return { strict, rows, failures };
}
