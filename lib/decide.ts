/**
 * What the runner does next, decided from a snapshot: a pure function, unit-tested without a
 * database (spec/decide.spec.ts). The runner (runner.ts) gathers the snapshot one store call at
 * a time — each `read-*` decision asks for the next piece — and carries out the decision.
 */
import type { StateCounts } from './states';

/** What the runner knows in one pass of its loop. Fields left undefined have not been read yet this pass. */
export interface RunnerSnapshot {
  /** The run's signal aborted: no new claims, stop. */
  stopping: boolean;
  /** A task failed for good under a fail-fast policy: no new claims; finish as failed once idle. */
  failFast: boolean;
  /** Handlers running in this runner. */
  active: number;
  concurrency: number;
  /** A claim this pass found nothing ready. */
  claimsExhausted: boolean;
  /** A claim failed on a transient error since the last adoption check (its reply may have been lost). */
  claimMayBeOrphaned: boolean;
  /** The container's counters. */
  counts?: StateCounts;
  /** The container is paused (read with the counters): nothing of it can be claimed. */
  paused?: boolean;
  /** This run's last read found the container paused: read it again before claiming. */
  wasPaused?: boolean;
  /** What to do when the container is paused and nothing of this runner's runs: wait (true) or return. */
  waitWhenPaused?: boolean;
  /** When the soonest lease of a running task (someone else's) expires, ms epoch; null: none. */
  nextLeaseExpiry?: number | null;
  /** When the soonest ready task may be claimed (retry delay), ms epoch; null: none ready. */
  nextReadyAt?: number | null;
  /**
   * Under fail-fast, once this runner is idle: the cleanup steps it still runs (released first,
   * every other pending step counting as blocked: lib/run-when.ts) — pending, waiting on nothing —
   * and when the soonest of them may be claimed (ms epoch).
   */
  cleanups?: { names: string[]; nextReadyAt: number | null };
  /** The outcome of this pass's sweep. */
  swept?: { finalized: boolean; changed: boolean };
  now: number;
  pollMs: number;
}

export type RunnerDecision =
  | { kind: 'stop' }
  | { kind: 'claim' }
  /** Wait until a handler finishes (or `ms` pass), then a new pass. */
  | { kind: 'wait'; ms: number }
  | { kind: 'read'; what: 'counts' | 'nextLeaseExpiry' | 'nextReadyAt' | 'cleanups' }
  /** Look for tasks this runner claimed but never received (lost claim replies) and run them. */
  | { kind: 'adopt' }
  /** Sleep (interrupted by stop), then optionally sweep; then a new pass. */
  | { kind: 'sleep'; ms: number; sweep: boolean }
  | { kind: 'sweep' }
  /** Give the container its final status (fail-fast). */
  | { kind: 'fail-container' }
  /** The container is paused and this runner has nothing running: return (`RunResult.paused`). */
  | { kind: 'paused' }
  /** Nothing left that this runner can move: the run is over. */
  | { kind: 'finish' }
  | { kind: 'next-pass' };

/** The next step. */
export function decide(s: RunnerSnapshot): RunnerDecision {
  if (s.stopping) return { kind: 'stop' };
  // Paused at this run's last look: look again before claiming (while paused a claim would only
  // skip held tasks), so a paused run costs one read per poll.
  if (s.wasPaused && !s.counts) return { kind: 'read', what: 'counts' };
  if (s.paused && s.counts && !s.failFast) return whilePaused(s, s.counts);
  if (!s.failFast && !s.claimsExhausted && s.active < s.concurrency) return { kind: 'claim' };
  // Fail-fast stops every claim but those of cleanup steps (runWhen 'always'/'failed', like a
  // `finally`): they still run, then the container fails.
  if (s.failFast && s.cleanups?.names.length && !s.claimsExhausted && s.active < s.concurrency) return { kind: 'claim' };
  if (s.active > 0) return { kind: 'wait', ms: s.pollMs };
  if (!s.counts) return { kind: 'read', what: 'counts' };
  if (s.failFast) {
    if (s.cleanups === undefined) return { kind: 'read', what: 'cleanups' };
    if (s.cleanups.names.length === 0) return { kind: 'fail-container' };
    // Cleanup steps left, none claimable now (a retry delay): sleep until the soonest may be.
    const at = s.cleanups.nextReadyAt ?? s.now + s.pollMs;
    return { kind: 'sleep', ms: Math.min(s.pollMs, Math.max(5, at - s.now)), sweep: false };
  }
  const c = s.counts;
  if (c.pending === 0 && c.running === 0) return { kind: 'finish' };
  if (c.running > 0) {
    // Other workers hold leases: wait for them to finish or expire, then sweep.
    if (s.claimMayBeOrphaned) return { kind: 'adopt' };
    if (s.nextLeaseExpiry === undefined) return { kind: 'read', what: 'nextLeaseExpiry' };
    const exp = s.nextLeaseExpiry ?? s.now;
    return { kind: 'sleep', ms: Math.min(s.pollMs, Math.max(10, exp - s.now + 5)), sweep: true };
  }
  if (s.nextReadyAt === undefined) return { kind: 'read', what: 'nextReadyAt' };
  if (s.nextReadyAt !== null) return { kind: 'sleep', ms: Math.min(s.pollMs, Math.max(5, s.nextReadyAt - s.now)), sweep: false };
  // Nothing running, nothing ready: pending tasks are blocked. The sweep repairs what a crash
  // left (unblocks, counters) or finalizes a container blocked for good.
  if (!s.swept) return { kind: 'sweep' };
  if (s.swept.finalized) return { kind: 'finish' };
  if (s.swept.changed) return { kind: 'next-pass' };
  // Nothing ready, nothing running, nothing blocked for good: only a status to settle.
  return { kind: 'finish' };
}

/**
 * The container is paused: no claim. Handlers of this run finish first; then wait for a resume
 * (sleeping a poll, sweeping if other workers' tasks run: their leases may expire) or return.
 */
function whilePaused(s: RunnerSnapshot, c: StateCounts): RunnerDecision {
  if (s.active > 0) return { kind: 'wait', ms: s.pollMs };
  if (c.pending === 0 && c.running === 0) return { kind: 'finish' };
  if (c.running > 0 && s.claimMayBeOrphaned) return { kind: 'adopt' };
  return s.waitWhenPaused === false ? { kind: 'paused' } : { kind: 'sleep', ms: s.pollMs, sweep: c.running > 0 };
}
