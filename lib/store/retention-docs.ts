/**
 * The stored shape and schema of retention policies (`pts_retention`; docs/schema.md). The
 * operations are in retention.ts.
 * @internal
 */
import { Schema } from 'mongoose';
import type { ObjectId } from './bson';

/** One stored policy (unique by `prefix`). A null rule does not delete anything. */
export interface RetentionPolicyDoc {
  _id: ObjectId;
  /** Container name prefix ('' = every container); the longest matching prefix governs a container. */
  prefix: string;
  succeededDays: number | null;
  failedDays: number | null;
  cancelledDays: number | null;
  keepLastRuns: number | null;
  createdAt: Date;
  updatedAt: Date;
}

/** The rules of a policy, validated (lib/retention.ts). */
export type RetentionRules = Pick<
  RetentionPolicyDoc,
  'succeededDays' | 'failedDays' | 'cancelledDays' | 'keepLastRuns'
>;

export function retentionSchema(): Schema {
  const s = new Schema(
    {
      _id: Schema.Types.ObjectId,
      prefix: String,
      succeededDays: Number,
      failedDays: Number,
      cancelledDays: Number,
      keepLastRuns: Number,
      createdAt: Date,
      updatedAt: Date,
    },
    { autoIndex: false, autoCreate: false, versionKey: false, strict: true },
  );
  s.index({ prefix: 1 }, { unique: true, name: 'prefix_unique' });
  return s;
}
