/**
 * Per-container worker configuration, kept in the container's `metadata.workerConfig`: read from
 * the container (`client.containerMetadata`), written with `container.setMetadata()` (the library's public API).
 * @internal
 */
import type { Client } from '../client';
import { NotFoundError, ValidationError } from '../errors';
import { validateData } from '../validation';

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
  const metadata = await client.containerMetadata(container);
  if (!metadata) throw new NotFoundError(`no container named ${JSON.stringify(container)}`, { container });
  return workerConfigOf(metadata);
}

export async function setWorkerConfig(
  client: Client,
  container: string,
  patch: Partial<WorkerConfig>,
): Promise<WorkerConfig> {
  if (patch.custom !== undefined) {
    const custom = validateData(patch.custom, 'custom', await client.core.dataRules());
    if (custom === null || typeof custom !== 'object' || Array.isArray(custom)) {
      throw new ValidationError('custom must be an object', { path: 'custom' });
    }
  }
  const c = await client.getTaskContainer(container);
  if (!c) throw new NotFoundError(`no container named ${JSON.stringify(container)}`, { container });
  const current = await getWorkerConfig(client, container);
  const next: WorkerConfig = {
    pollIntervalMs: patch.pollIntervalMs ?? current.pollIntervalMs,
    custom: patch.custom ?? current.custom,
  };
  await c.setMetadata({ workerConfig: next });
  return next;
}
