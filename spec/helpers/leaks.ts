/**
 * Tiny open-resource registry. Tests (or helpers) call trackResource() when they open something
 * that must be closed (a connection, a child process, a timer, a tracker with background work) and
 * untrack() / the returned function when they close it.
 *
 * The root hooks below (registered through spec/fixtures/global.ts):
 *   - afterEach: anything tracked since the test's beforeEach started and still open fails that test
 *     (without aborting the rest of the run) and is closed;
 *   - afterAll: anything still open at the end of the run (e.g. opened in a before() hook and never
 *     closed in after()) fails the root "after all" hook and is closed.
 */
import type { Context, RootHookObject } from 'mocha';

type CloseFn = () => unknown;

interface Tracked {
  id: number;
  name: string;
  close: CloseFn;
  /** Value of `generation` when tracked; resources from before() hooks predate the current test. */
  generation: number;
}

const open = new Map<number, Tracked>();
let nextId = 1;
let generation = 0;
let testGeneration = -1;

/** Registers an open resource. Returns a function that untracks it (call it after closing). */
export function trackResource(name: string, close: CloseFn): () => void {
  const id = nextId++;
  open.set(id, { id, name, close, generation });
  return () => {
    open.delete(id);
  };
}

/** Untracks every resource registered under `name` (after it was closed). Returns how many. */
export function untrack(name: string): number {
  let removed = 0;
  for (const [id, item] of open) {
    if (item.name === name) {
      open.delete(id);
      removed++;
    }
  }
  return removed;
}

/** Names of resources currently tracked (for assertions in tests). */
export function openResources(): string[] {
  return [...open.values()].map((item) => item.name);
}

async function closeAll(items: Tracked[]): Promise<string[]> {
  const problems: string[] = [];
  for (const item of items) {
    open.delete(item.id);
    try {
      await item.close();
    } catch (err) {
      problems.push(`${item.name} (close failed: ${err instanceof Error ? err.message : String(err)})`);
    }
  }
  return problems;
}

export const leakHooks: RootHookObject = {
  beforeEach() {
    testGeneration = ++generation;
  },

  async afterEach(this: Context) {
    const leaked = [...open.values()].filter((item) => item.generation >= testGeneration);
    if (leaked.length === 0) return;
    const names = leaked.map((item) => item.name);
    const closeProblems = await closeAll(leaked);
    const err = new Error(
      `test left ${leaked.length} resource(s) open: ${names.join(', ')}` +
        (closeProblems.length ? `; ${closeProblems.join('; ')}` : ''),
    );
    const test = this.currentTest;
    // Mocha's runner listens for 'error' on the running test and marks it failed (same mechanism
    // as its global-leak check). Throwing from a root afterEach would instead abort the whole run.
    if (test && test.state === 'passed' && test.listenerCount('error') > 0) {
      test.emit('error', err);
    } else if (test && test.state !== 'passed') {
      console.log(`[pts-test] ${test.fullTitle()}: ${err.message}`);
    } else {
      throw err;
    }
  },

  async afterAll() {
    const leaked = [...open.values()];
    if (leaked.length === 0) return;
    const names = leaked.map((item) => item.name);
    const closeProblems = await closeAll(leaked);
    throw new Error(
      `resources still open at the end of the run: ${names.join(', ')}` +
        (closeProblems.length ? `; ${closeProblems.join('; ')}` : ''),
    );
  },
};
