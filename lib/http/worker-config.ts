/**
 * Per-container worker configuration, kept in the container's `metadata.workerConfig` (there is
 * no core API for it: it is read and written here through the client's collections, with the
 * same `rev`/`changedAt` stamp every container write carries).
 * @internal
 */
import type { Client } from '../client';
import { NotFoundError, ValidationError } from '../errors';
import { validateData } from '../validation';
import { stamp } from '../store/context';

export interface WorkerConfig {
  /** How long an idle worker waits between claims. @defaultValue 1000 */
  pollIntervalMs: number;
  /** Free-form settings for the workers. */
  custom: Record<string, unknown>;
}

export const DEFAULT_WORKER_CONFIG: WorkerConfig = Object.freeze({
  pollIntervalMs: 1000,
  custom: {},
}) as WorkerConfig;

export function workerConfigOf(metadata: unknown): WorkerConfig {
  const raw = (metadata as { workerConfig?: Partial<WorkerConfig> } | null | undefined)?.workerConfig;
  return {
    pollIntervalMs:
      typeof raw?.pollIntervalMs === 'number' ? raw.pollIntervalMs : DEFAULT_WORKER_CONFIG.pollIntervalMs,
    custom: raw?.custom && typeof raw.custom === 'object' && !Array.isArray(raw.custom) ? raw.custom : {},
  };
}

export async function getWorkerConfig(client: Client, container: string): Promise<WorkerConfig> {
  const doc = await client.core.ctx.cols.containers.findOne(
    { name: container },
    { projection: { metadata: 1 } },
  );
  if (!doc) throw new NotFoundError(`no container named ${JSON.stringify(container)}`, { container });
  return workerConfigOf(doc.metadata);
}

export async function setWorkerConfig(
  client: Client,
  container: string,
  patch: Partial<WorkerConfig>,
): Promise<WorkerConfig> {
  if (patch.custom !== undefined) {
    const custom = validateData(patch.custom, 'custom');
    if (custom === null || typeof custom !== 'object' || Array.isArray(custom)) {
      throw new ValidationError('custom must be an object', { path: 'custom' });
    }
  }
  const current = await getWorkerConfig(client, container);
  const next: WorkerConfig = {
    pollIntervalMs: patch.pollIntervalMs ?? current.pollIntervalMs,
    custom: patch.custom ?? current.custom,
  };
  const s = stamp(client.core.ctx.clock.now());
  const r = await client.core.ctx.cols.containers.updateOne(
    { name: container },
    { $set: { ...s.$set, 'metadata.workerConfig': next }, $inc: s.$inc, $currentDate: s.$currentDate },
    { writeConcern: client.core.ctx.writeConcern },
  );
  if (r.matchedCount === 0)
    throw new NotFoundError(`no container named ${JSON.stringify(container)}`, { container });
  return next;
}
