/**
 * The database server's clock as seen from this process: the base clock (the system clock, or
 * an injected one) plus a measured offset. Lease expiries, deadlines, retry delays and every
 * stored time are computed on it, so processes whose own clocks disagree still agree on when a
 * lease runs out. The database cannot do the arithmetic itself on every server we support
 * (FerretDB has no update pipelines, hence no `$$NOW`), so the offset is measured instead.
 *
 * How (Cristian's algorithm, as NTP does it): read the base clock (`t0`), ask the server for its
 * time (`hello.localTime`, `s`), read the base clock again (`t1`). The server read its clock at
 * some instant between `t0` and `t1`, so `s − (t0 + t1) / 2` is the offset within half the round
 * trip, plus the resolution of the two clocks (both are milliseconds: BSON dates and `Date`).
 * Of {@link CLOCK_SAMPLES} exchanges the one with the shortest round trip is kept. The round trip
 * is timed on a monotonic clock (`performance.now()`), so it is right even when the base clock is
 * a {@link ManualClock} that does not move while the exchange is in flight.
 * @internal
 */
import { performance } from 'node:perf_hooks';
import { ManualClock, type Clock } from './clock';

/** The measured offset of this process's clock to the database server's (`client.clockOffset()`). */
export interface ClockOffset {
  /** Server time minus this process's clock, in ms (positive: the server is ahead). */
  offsetMs: number;
  /**
   * The true offset lies within `offsetMs ± errorBoundMs`: half the round trip of the sample
   * used plus the resolution of both clocks (1 ms each). Null when the server did not report
   * its time (`source: 'local'`): then nothing is known about the difference.
   */
  errorBoundMs: number | null;
  /** Round trip of the sample used, in ms (monotonic clock). */
  rttMs: number;
  /** When it was measured, on the corrected clock (the server's time). */
  sampledAt: Date;
  /** `'server'`: measured from `hello.localTime`; `'local'`: the server did not say, offset 0. */
  source: 'server' | 'local';
}

/** Exchanges per measurement; the one with the shortest round trip wins. */
export const CLOCK_SAMPLES = 5;
/** Resolution of the server's clock as it reports it (`hello.localTime` is a BSON date: ms). */
export const SERVER_CLOCK_RESOLUTION_MS = 1;
/** Resolution of this process's clock readings (`Date`: ms). */
export const LOCAL_CLOCK_RESOLUTION_MS = 1;

/** One exchange: base clock before, the server's time, base clock after, round trip (monotonic). */
export interface ClockSample {
  t0: number;
  server: number;
  t1: number;
  rttMs: number;
}

/** The offset estimate from a set of samples: the one with the shortest round trip. */
export function estimateOffset(samples: readonly ClockSample[]): { offsetMs: number; errorBoundMs: number; rttMs: number } {
  if (samples.length === 0) throw new RangeError('no clock samples');
  const best = samples.reduce((a, b) => (b.rttMs < a.rttMs ? b : a));
  return {
    offsetMs: Math.round(best.server - (best.t0 + best.t1) / 2),
    // Rounded up: the bound must not under-state the error. The half millisecond covers rounding
    // the offset to whole milliseconds.
    errorBoundMs: Math.ceil(best.rttMs / 2 + SERVER_CLOCK_RESOLUTION_MS + LOCAL_CLOCK_RESOLUTION_MS + 0.5),
    rttMs: best.rttMs,
  };
}

export interface ServerClockOptions {
  /** Re-measure this often (unref'd timer; 0: only at the first use and on reconnect). */
  intervalMs: number;
  /** Called when a background re-measurement fails (the last offset stays in use). */
  onError?: (error: Error) => void;
}

/**
 * A {@link Clock} on the server's time. {@link ready} measures once (memoized; retried after a
 * failure); {@link start} re-measures periodically. A {@link ManualClock} base is measured once
 * and never again: re-measuring would silently undo the test's `advance()`s.
 */
export class ServerClock implements Clock {
  private offsetMs = 0;
  private last: ClockOffset | null = null;
  private first: Promise<void> | null = null;
  private running: Promise<ClockOffset> | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly base: Clock,
    /** Asks the server for its time (`hello.localTime`); null when the server does not say. */
    private readonly readServer: () => Promise<Date | null>,
    private readonly opts: ServerClockOptions,
  ) {}

  now(): Date {
    return new Date(this.base.now().getTime() + this.offsetMs);
  }

  /** The last measurement, or null before the first one completed. */
  offset(): ClockOffset | null {
    return this.last;
  }

  /** Whether re-measuring is allowed (not for a ManualClock, whose time belongs to the test). */
  get resyncs(): boolean {
    return !(this.base instanceof ManualClock);
  }

  /** Resolves once a first measurement succeeded (measures if none did yet). */
  ready(): Promise<void> {
    if (this.last) return Promise.resolve();
    if (!this.first) {
      this.first = this.sync().then(
        () => undefined,
        (err: unknown) => {
          this.first = null;
          throw err;
        },
      );
    }
    return this.first;
  }

  /** Measures now and applies the result (concurrent callers share one measurement). */
  sync(): Promise<ClockOffset> {
    if (!this.running) {
      this.running = this.measure().finally(() => {
        this.running = null;
      });
    }
    return this.running;
  }

  /** Re-measures in the background, if allowed; a failure keeps the last offset. */
  resync(): void {
    if (!this.resyncs || !this.last) return;
    this.sync().catch((err: Error) => this.opts.onError?.(err));
  }

  /** Starts the periodic re-measurement (unref'd; no-op for a ManualClock or intervalMs 0). */
  start(): void {
    if (this.timer || this.opts.intervalMs <= 0 || !this.resyncs) return;
    this.timer = setInterval(() => this.resync(), this.opts.intervalMs);
    this.timer.unref?.();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private async measure(): Promise<ClockOffset> {
    const samples: ClockSample[] = [];
    for (let i = 0; i < CLOCK_SAMPLES; i++) {
      const t0 = this.base.now().getTime();
      const p0 = performance.now();
      const server = await this.readServer();
      const rttMs = performance.now() - p0;
      const t1 = this.base.now().getTime();
      if (server === null) {
        this.offsetMs = 0;
        this.last = { offsetMs: 0, errorBoundMs: null, rttMs, sampledAt: this.now(), source: 'local' };
        return this.last;
      }
      samples.push({ t0, server: server.getTime(), t1, rttMs });
    }
    const e = estimateOffset(samples);
    this.offsetMs = e.offsetMs;
    this.last = { offsetMs: e.offsetMs, errorBoundMs: e.errorBoundMs, rttMs: Math.round(e.rttMs * 1000) / 1000, sampledAt: this.now(), source: 'server' };
    return this.last;
  }
}
