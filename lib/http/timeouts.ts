/**
 * How long the HTTP service waits for a client: to send a request (headers, then the whole
 * body), between keep-alive requests, and on a silent socket. Resolved once, with defaults, and
 * checked against the service's own quiet answers (long-poll claims, SSE heartbeats) so that no
 * setting cuts an answer the service is still giving.
 * @internal
 */

/** Timeout options of `buildServer`/`startServer` (all in ms). */
export interface TimeoutOptions {
  /**
   * Most time a client may take to send one whole request (headers and body); a slower one is
   * answered 408 and its connection closed. Only receiving the request counts: a long-poll claim
   * or an SSE stream is an answer and is not cut. `0` disables it. @defaultValue 60_000
   */
  requestTimeout?: number;
  /** Most time a client may take to send a request's headers (at most `requestTimeout`). @defaultValue 20_000 */
  headersTimeout?: number;
  /**
   * A socket that neither sends nor receives anything for this long is closed. Must exceed the
   * longest long-poll (30 s) and the SSE heartbeat; `0` disables it. @defaultValue 120_000
   */
  connectionTimeout?: number;
  /** How long an idle keep-alive connection stays open between requests (at least 1). @defaultValue 72_000 */
  keepAliveTimeout?: number;
}

/** {@link TimeoutOptions} with every default applied, plus how often node checks them. */
export interface ResolvedTimeouts {
  requestTimeout: number;
  headersTimeout: number;
  connectionTimeout: number;
  keepAliveTimeout: number;
  /** node's `connectionsCheckingInterval`: a tenth of the shorter request timeout, 100 ms to 30 s. */
  checkingIntervalMs: number;
}

export const DEFAULT_TIMEOUTS = Object.freeze({
  requestTimeout: 60_000,
  headersTimeout: 20_000,
  connectionTimeout: 120_000,
  keepAliveTimeout: 72_000,
});

/** The longest `waitMs` of a long-poll claim (the claim route's schema). */
export const MAX_LONG_POLL_MS = 30_000;

/** Applies the defaults; throws a TypeError for a value that is not a whole number of ms or would cut a quiet answer. */
export function resolveTimeouts(opts: TimeoutOptions, sseHeartbeatMs: number): ResolvedTimeouts {
  const out: Omit<ResolvedTimeouts, 'checkingIntervalMs'> = { ...DEFAULT_TIMEOUTS };
  for (const k of Object.keys(DEFAULT_TIMEOUTS) as Array<keyof typeof DEFAULT_TIMEOUTS>) {
    const v: unknown = opts[k];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
      throw new TypeError(`buildServer: ${k} must be a whole number of ms >= 0, got ${String(v)}`);
    }
    if (k === 'keepAliveTimeout' && v === 0)
      throw new TypeError(
        'buildServer: keepAliveTimeout must be at least 1 ms (0 would keep idle connections forever)',
      );
    out[k] = v;
  }
  // node refuses a headers timeout longer than the request timeout
  if (out.requestTimeout > 0 && (out.headersTimeout === 0 || out.headersTimeout > out.requestTimeout)) {
    out.headersTimeout = out.requestTimeout;
  }
  const quiet = Math.max(MAX_LONG_POLL_MS, sseHeartbeatMs);
  if (out.connectionTimeout > 0 && out.connectionTimeout <= quiet) {
    throw new TypeError(
      `buildServer: connectionTimeout (${out.connectionTimeout} ms) must exceed the longest quiet answer (${quiet} ms: long-poll claims, SSE heartbeats), or be 0`,
    );
  }
  const shortest = Math.min(...[out.requestTimeout, out.headersTimeout].filter((v) => v > 0));
  const checkingIntervalMs = Number.isFinite(shortest)
    ? Math.min(30_000, Math.max(100, Math.floor(shortest / 10)))
    : 30_000;
  return { ...out, checkingIntervalMs };
}
