/**
 * The progress reporter of one running task: throttles `ctx.progress()`/`ctx.status()` writes
 * and renews the lease from a timer, in one command each (a heartbeat carries any unwritten
 * progress). A lost lease aborts the handler.
 * @internal
 */
import type { Core } from './core';
import { isTransient, LeaseLostError } from './errors';
import type { TaskLease } from './lease';
import type { ProgressPatch } from './store';

/** The runner options the reporter reads. */
export interface ReporterTiming {
  leaseMs: number;
  heartbeatMs: number;
  progressIntervalMs: number;
}

/**
 * Throttled writer of one running task's progress, plus its heartbeat. Writes go out at most
 * every `progressIntervalMs`; the heartbeat renews the lease every `heartbeatMs` (carrying any
 * unwritten progress). A lost lease aborts the handler.
 */
export class Reporter {
  private pending: ProgressPatch = {};
  private dirty = false;
  private lastWrite = 0;
  private inflight: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private beat: NodeJS.Timeout | null = null;
  private expiresAt: number;
  writes = 0;

  constructor(
    private readonly lease: TaskLease,
    private readonly run: ReporterTiming,
    private readonly abort: (reason: Error) => void,
    private readonly core: Core,
  ) {
    this.expiresAt = lease.task.lease?.expiresAt.getTime() ?? Date.now() + run.leaseMs;
    this.beat = setInterval(() => this.write(true), run.heartbeatMs);
    this.beat.unref?.();
  }

  report(patch: ProgressPatch): void {
    Object.assign(this.pending, patch);
    this.dirty = true;
    this.schedule();
  }

  private schedule(): void {
    if (this.inflight || this.timer || !this.beat) return;
    const wait = this.lastWrite + this.run.progressIntervalMs - Date.now();
    if (wait <= 0) this.write(false);
    else {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.write(false);
      }, wait);
      this.timer.unref?.();
    }
  }

  private write(isBeat: boolean): Promise<void> {
    if (this.inflight) return this.inflight;
    if (!isBeat && !this.dirty) return Promise.resolve();
    const patch = this.pending;
    this.pending = {};
    this.dirty = false;
    this.writes++;
    this.inflight = this.lease
      .heartbeatValidated(patch, this.run.leaseMs)
      .then((exp) => {
        this.expiresAt = exp.getTime();
        this.lastWrite = Date.now();
        this.core.notify.dbAvailable('heartbeat');
      })
      .catch((err) => {
        // Put unwritten values back unless something newer replaced them.
        this.pending = { ...patch, ...this.pending };
        this.dirty = true;
        if (err instanceof LeaseLostError) this.abort(err);
        else if (isTransient(err)) {
          this.core.notify.dbUnavailable('heartbeat', err as Error);
          if (Date.now() >= this.expiresAt) {
            this.abort(new LeaseLostError(`lease on ${this.lease.task.name} ran out while the database was unreachable`, { task: this.lease.task.name }));
          }
        } else this.abort(err as Error);
      })
      .finally(() => {
        this.inflight = null;
        if (this.dirty && this.beat) this.schedule();
      });
    return this.inflight;
  }

  /** Resolves once no write is in flight (writes nothing itself). */
  async idle(): Promise<void> {
    if (this.inflight) await this.inflight;
  }

  async flush(): Promise<void> {
    if (this.inflight) await this.inflight;
    if (this.dirty) await this.write(false);
  }

  /** Stops timers and returns what was not written yet (folded into the final write). */
  async stop(): Promise<ProgressPatch> {
    if (this.beat) clearInterval(this.beat);
    this.beat = null;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.inflight) await this.inflight;
    const p = this.pending;
    this.pending = {};
    return p;
  }
}

