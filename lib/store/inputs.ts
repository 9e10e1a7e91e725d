/**
 * A task's inputs: its dependencies' results, read in ONE query that projects only `name` and
 * `result` (the `container_name_unique` index: `{ containerId, name: { $in: dependsOn } }`), and
 * measured as the BSON document `{ [dependency]: result }` they make together, against a cap.
 * @internal
 */
import mongoose from 'mongoose';
import type { ObjectId } from 'mongodb';
import type { StoreContext } from './context';

const BSON = mongoose.mongo.BSON;

/** The inputs read for a task, or how far past the cap they went (the read stops there). */
export type InputsRead =
  | { ok: true; inputs: Record<string, unknown>; bytes: number }
  | { ok: false; bytes: number; dependency: string };

/** BSON size of an empty document: int32 length + terminating 0. */
const EMPTY_DOC = 5;

/**
 * The results of `dependsOn` in the container, keyed by name (a dependency without a stored
 * result, e.g. skipped: `null`). `bytes` is the BSON size of that object; past `maxBytes` the
 * read stops and reports the dependency that crossed it. Zero commands for no dependencies.
 */
export async function readInputs(ctx: StoreContext, containerId: ObjectId, dependsOn: string[], maxBytes: number): Promise<InputsRead> {
  const inputs: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  if (dependsOn.length === 0) return { ok: true, inputs: {}, bytes: EMPTY_DOC };
  const cursor = ctx.cols.tasks.find({ containerId, name: { $in: dependsOn } }, { projection: { _id: 0, name: 1, result: 1 } });
  let bytes = EMPTY_DOC;
  try {
    for await (const d of cursor) {
      const value = d.result === undefined ? null : d.result;
      // One element's size: the document { [name]: value } less its own header and terminator.
      bytes += BSON.calculateObjectSize({ [d.name]: value }) - EMPTY_DOC;
      if (bytes > maxBytes) return { ok: false, bytes, dependency: d.name };
      inputs[d.name] = value;
    }
  } finally {
    await cursor.close();
  }
  // Every dependency has a key, in `dependsOn` order; one the read did not return (none should
  // be missing: a task others depend on cannot be deleted) is null like a skipped one.
  const ordered: Record<string, unknown> = {};
  for (const name of dependsOn) {
    if (!(name in inputs)) bytes += BSON.calculateObjectSize({ [name]: null }) - EMPTY_DOC;
    // defineProperty: a task may be named `__proto__`.
    Object.defineProperty(ordered, name, { value: name in inputs ? inputs[name] : null, enumerable: true, writable: true, configurable: true });
  }
  if (bytes > maxBytes) return { ok: false, bytes, dependency: dependsOn.find((n) => !(n in inputs)) ?? dependsOn[dependsOn.length - 1] };
  return { ok: true, inputs: ordered, bytes };
}
