/**
 * Section 0, scan probe (FerretDB only): the cost of one command vs collection size, which explains
 * everything else measured on FerretDB/SQLite (it scans the whole collection for every update and
 * every non-_id filter).
 */
import { ObjectId, type Document } from 'mongodb';
import type { Config } from '../config';
import { WC, log, taskDoc, tasksOf, type Bench } from '../harness';
import { latencies, round, spread } from '../stats';

export async function scanProbe(bench: Bench, cfg: Config): Promise<Document> {
  const conn = await bench.connect('bench_probe');
  await conn.dropDatabase();
  const col = tasksOf(conn);
  await col.createIndex({ containerId: 1, state: 1, _id: 1 });
  const cid = new ObjectId();
  const now = new Date();
  const rows: Document[] = [];
  let have = 0;
  for (const size of cfg.probeSizes) {
    const docs = [];
    for (let i = have; i < size; i++) docs.push(taskDoc(cid, 'probe', `t${i}`, now));
    if (docs.length) await col.insertMany(docs, { ordered: false });
    have = size;
    const one = (await col.findOne({}))!;
    // Writes go to documents spread over the collection: a scan that stops at the first match
    // would make the first document look cheap.
    const ids = (await col.find({}, { projection: { _id: 1 } }).toArray()).map((d) => d._id);
    const at = (i: number) => ids[Math.floor(((i * 0.618034) % 1) * ids.length)];
    const upd = spread(
      await latencies(10, (i) =>
        col.updateOne({ _id: at(i) }, { $set: { percentageComplete: i } }, { writeConcern: WC }),
      ),
    );
    // The shape of every fenced lease write (heartbeat, succeed): `_id` plus the precondition.
    // FerretDB/SQLite pushes a filter down only when it is exactly `{ _id }` (FerretDB 1.24,
    // internal/backends/sqlite/collection.go: `params.Filter.Len() == 1`); any other scans.
    const fenced = spread(
      await latencies(10, (i) =>
        col.updateOne(
          { _id: at(i), state: one.state, fence: one.fence },
          { $set: { percentageComplete: i } },
          { writeConcern: WC },
        ),
      ),
    );
    const byId = spread(await latencies(10, () => col.findOne({ _id: one._id })));
    const byIdx = spread(await latencies(5, () => col.findOne({ containerId: cid, state: 'failed' })));
    rows.push({
      size,
      updateOneByIdMs: round(upd.median, 2),
      fencedUpdateOneMs: round(fenced.median, 2),
      findOneByIdMs: round(byId.median, 2),
      findOneByIndexedFieldsMs: round(byIdx.median, 2),
    });
    log(
      `  probe size ${size}: updateOne(_id) ${upd.median.toFixed(1)} ms, updateOne(_id,state,fence) ${fenced.median.toFixed(1)} ms, findOne(_id) ${byId.median.toFixed(1)} ms, findOne(containerId,state) ${byIdx.median.toFixed(1)} ms`,
    );
  }
  await conn.dropDatabase();
  return { rows };
}
