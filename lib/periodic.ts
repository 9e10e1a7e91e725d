/**
 * A periodic loop: runs a pass, waits `intervalMs`, runs the next — never two passes at once
 * (a pass asked for between timer passes runs after the one in flight). `stop()` ends the timer,
 * waits for the pass in flight, then runs the owner's `onStop` (give a lease up, …). Shared by
 * the scheduler loop (lib/scheduler.ts) and the alert loop (lib/alerts.ts) so both stop, queue
 * and report the same way.
 * @internal
 */

/** What {@link startPeriodic} runs. */
export interface PeriodicOptions<R> {
  /** Pause between the end of one pass and the start of the next; 0: no timer (passes run only when `pass()` is called). */
  intervalMs: number;
  /** One pass. */
  pass: () => Promise<R>;
  /** Called with the result of a timer pass. */
  onResult?: (result: R) => void;
  /** Called with the error of a timer pass (the loop goes on). */
  onError: (err: Error) => void;
  /** Run once by `stop()`, after the pass in flight ended (its errors are ignored). */
  onStop?: () => Promise<void>;
  /** If set, `pass()` after `stop()` rejects with this error instead of running. */
  stoppedError?: () => Error;
}

/** A running loop. */
export interface PeriodicHandle<R> {
  /** Runs one pass now (after the one in flight). */
  pass(): Promise<R>;
  /** Stops the timer, waits for the pass in flight, runs `onStop`. Idempotent. */
  stop(): Promise<void>;
}

export function startPeriodic<R>(o: PeriodicOptions<R>): PeriodicHandle<R> {
  let stopped = false;
  let timer: NodeJS.Timeout | null = null;
  let current: Promise<unknown> = Promise.resolve();
  let stopping: Promise<void> | null = null;
  const run = (): Promise<R> => {
    const p = current.then(() => o.pass());
    current = p.catch(() => undefined);
    return p;
  };
  const loop = (): void => {
    if (stopped) return;
    run()
      .then(
        (r) => o.onResult?.(r),
        (err: Error) => o.onError(err),
      )
      .finally(() => {
        if (!stopped) timer = setTimeout(loop, o.intervalMs);
      });
  };
  if (o.intervalMs > 0) loop();
  return {
    pass: () => (stopped && o.stoppedError ? Promise.reject(o.stoppedError()) : run()),
    stop: () =>
      (stopping ??= (async () => {
        stopped = true;
        if (timer) clearTimeout(timer);
        await current;
        await o.onStop?.().catch(() => undefined);
      })()),
  };
}
