/**
 * The original module's callback style next to promises: a call with a callback gets it
 * called (and returns undefined); a call without one returns the promise.
 * @internal
 */
export type Callback<T> = (err: Error | null, value?: T, ...extra: unknown[]) => void;

export function withCallback<T>(promise: Promise<T>, cb: unknown, extra?: (value: T) => unknown[]): Promise<T> | undefined {
  if (typeof cb !== 'function') return promise;
  promise.then(
    (v) => process.nextTick(() => (cb as Callback<T>)(null, v, ...(extra ? extra(v) : []))),
    (e) => process.nextTick(() => (cb as Callback<T>)(e as Error)),
  );
  return undefined;
}
