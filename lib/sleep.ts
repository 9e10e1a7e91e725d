/**
 * An abortable sleep: resolves after `ms`, or as soon as `signal` aborts (never rejects), so a
 * loop that waits between polls ends promptly on shutdown.
 * @internal
 */
export function sleep(ms: number, signal?: AbortSignal | null): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, Math.max(0, ms));
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
