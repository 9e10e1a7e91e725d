/**
 * The pipeline workload on Agenda 6: add T jobs, each job reports progress 3× (`job.touch(p)`,
 * one write each) and completes. Agenda 6 keeps its MongoDB storage in a separate package
 * (`@agendajs/mongo-backend`); when it is not installed this module reports exactly that.
 */
import type { Sample } from './stats';

const BACKEND_PKG = '@agendajs/mongo-backend';

export interface AgendaRunner {
  round(tasks: number, concurrency: number): Promise<Sample>;
  close(): Promise<void>;
}

/** Loads Agenda and its MongoDB backend; resolves to the reason as a string when they cannot run. */
/**
 * `db` (optional) is a database handle of a connection with command monitoring: Agenda then uses
 * it instead of opening its own client, so its commands are counted like everyone else's.
 */
export async function openAgenda(uri: string, dbName: string, db?: unknown): Promise<AgendaRunner | string> {
  let AgendaCtor: new (opts: Record<string, unknown>) => AgendaLike;
  let Backend: new (opts: Record<string, unknown>) => unknown;
  try {
    ({ Agenda: AgendaCtor } = (await import('agenda')) as unknown as { Agenda: typeof AgendaCtor });
  } catch (err) {
    return `cannot load agenda: ${(err as Error).message}`;
  }
  try {
    const pkg: string = BACKEND_PKG; // a variable, so tsc does not need the package to compile
    ({ MongoBackend: Backend } = (await import(pkg)) as { MongoBackend: typeof Backend });
  } catch (err) {
    return (
      `Agenda 6 needs its MongoDB backend package ${BACKEND_PKG} (agenda/dist/backends/index.d.ts: ` +
      `"Backend implementations have been moved to separate packages"), which is not installed: ${(err as Error).message.split('\n')[0]}`
    );
  }
  const address = `${uri.replace(/\/?(\?.*)?$/, '')}/${dbName}${uri.includes('?') ? uri.slice(uri.indexOf('?')) : ''}`;
  return {
    async round(tasks: number, concurrency: number): Promise<Sample> {
      const agenda = new AgendaCtor({
        backend: new Backend(db ? { mongo: db, collection: 'agendaJobs' } : { address, collection: 'agendaJobs' }),
        processEvery: 50,
        maxConcurrency: concurrency,
        defaultConcurrency: concurrency,
        lockLimit: 0,
        defaultLockLimit: 0,
      });
      let done = 0;
      let finish: () => void = () => {};
      const finished = new Promise<void>((resolve) => (finish = resolve));
      agenda.define(
        'bench',
        async (job: JobLike) => {
          for (const p of [25, 50, 75]) await job.touch(p);
        },
        { concurrency },
      );
      agenda.on('complete:bench', () => {
        if (++done === tasks) finish();
      });
      agenda.on('error', (e: unknown) => process.stderr.write(`agenda error: ${String(e)}\n`));
      await agenda.ready;
      const t = performance.now();
      for (let i = 0; i < tasks; i += 100) {
        await Promise.all(
          Array.from({ length: Math.min(100, tasks - i) }, (_, j) => agenda.now('bench', { i: i + j })),
        );
      }
      await agenda.start();
      await finished;
      const ms = performance.now() - t;
      await agenda.stop(true);
      return { ops: tasks, ms };
    },
    async close(): Promise<void> {},
  };
}

interface JobLike {
  touch(progress?: number): Promise<void>;
}
interface AgendaLike {
  ready: Promise<void>;
  define(name: string, fn: (job: JobLike) => Promise<void>, opts: Record<string, unknown>): void;
  on(event: string, fn: (...a: unknown[]) => void): void;
  now(name: string, data: unknown): Promise<unknown>;
  start(): Promise<void>;
  stop(close?: boolean): Promise<void>;
}
