/**
 * Checks that a container's counters and percentage agree with its tasks, read one by one.
 */
import { expect } from 'chai';
import type { TaskContainer } from '../../lib';
import { TASK_STATES } from '../../lib';

export async function expectConsistent(container: TaskContainer): Promise<void> {
  const summary = await container.summary();
  const tasks = (await container.getTasks()).map((t) => t.toJSON());
  const counts = Object.fromEntries(TASK_STATES.map((s) => [s, tasks.filter((t) => t.state === s).length]));
  expect(summary.counts, 'counts per state').to.deep.equal(counts);
  expect(summary.total, 'total').to.equal(tasks.length);
  const weightTotal = tasks.reduce((n, t) => n + t.weight, 0);
  expect(summary.weightTotal).to.be.closeTo(weightTotal, 1e-9);
  const expected = weightTotal === 0 ? 0 : tasks.reduce((n, t) => n + t.weight * t.percentageComplete, 0) / weightTotal;
  expect(summary.percentageComplete, 'weighted percentage').to.be.closeTo(expected, 1e-6);
  expect(await container.reconcile(), 'reconcile found drift').to.equal(false);
}

/** Counts driver commands by name on a connection opened with `monitorCommands: true`. */
export class CommandCounter {
  readonly commands: Array<{ name: string; collection: unknown; command: Record<string, unknown> }> = [];
  private readonly listener = (e: { commandName: string; command: Record<string, unknown> }): void => {
    if (['hello', 'isMaster', 'ping', 'endSessions', 'saslStart', 'saslContinue', 'buildInfo'].includes(e.commandName)) return;
    this.commands.push({ name: e.commandName, collection: e.command[e.commandName], command: e.command });
  };
  constructor(private readonly client: { on(ev: string, l: (e: never) => void): unknown; off(ev: string, l: (e: never) => void): unknown }) {
    client.on('commandStarted', this.listener as (e: never) => void);
  }
  reset(): void {
    this.commands.length = 0;
  }
  names(): string[] {
    return this.commands.map((c) => c.name);
  }
  stop(): void {
    this.client.off('commandStarted', this.listener as (e: never) => void);
  }
}
