/**
 * decide() (lib/decide.ts): the runner's next step from a snapshot, without a database. The
 * cases walk its ordering rules one by one; the simulation at the end drives it through whole
 * runs against a scripted in-memory fake of the store actions, carried out the way
 * Runner.execute() (lib/runner.ts) carries them out.
 */
import { expect } from 'chai';
import { decide, type RunnerDecision, type RunnerSnapshot } from '../lib/decide';
import { emptyCounts, type StateCounts, type TaskState } from '../lib/states';

const NOW = 1_000_000;
const POLL = 1_000;

/** A fresh pass of a runner with nothing read yet: free slots, nothing active. */
function snap(over: Partial<RunnerSnapshot> = {}): RunnerSnapshot {
  return {
    stopping: false,
    failFast: false,
    active: 0,
    concurrency: 2,
    claimsExhausted: false,
    claimMayBeOrphaned: false,
    now: NOW,
    pollMs: POLL,
    ...over,
  };
}

const counts = (p: Partial<StateCounts>): StateCounts => ({ ...emptyCounts(), ...p });

/** A runner that cannot claim (slots exhausted this pass), is idle and has read the counts. */
const idle = (c: Partial<StateCounts>, over: Partial<RunnerSnapshot> = {}): RunnerSnapshot =>
  snap({ claimsExhausted: true, counts: counts(c), ...over });

/** decide() on a frozen snapshot: it must not write to it. */
const d = (s: RunnerSnapshot): RunnerDecision => decide(Object.freeze({ ...s }));

describe('decide', function () {
  describe('stop', function () {
    it('wins over everything else', function () {
      const all: Partial<RunnerSnapshot>[] = [
        {},
        { active: 1 },
        { active: 2 },
        { failFast: true },
        { failFast: true, active: 1 },
        { claimsExhausted: true, counts: counts({}) },
        { claimsExhausted: true, counts: counts({ running: 1 }), claimMayBeOrphaned: true },
        { claimsExhausted: true, counts: counts({ pending: 1 }), nextReadyAt: NOW + 50 },
        {
          claimsExhausted: true,
          counts: counts({ pending: 1 }),
          nextReadyAt: null,
          swept: { finalized: true, changed: true },
        },
      ];
      for (const over of all)
        expect(d(snap({ ...over, stopping: true })), JSON.stringify(over)).to.deep.equal({ kind: 'stop' });
    });
  });

  describe('claim', function () {
    it('claims while a slot is free, claims are not exhausted and fail-fast has not tripped', function () {
      expect(d(snap())).to.deep.equal({ kind: 'claim' });
      expect(d(snap({ active: 1 }))).to.deep.equal({ kind: 'claim' });
      expect(d(snap({ active: 9, concurrency: 10 }))).to.deep.equal({ kind: 'claim' });
    });

    it('claims before reading anything (counts, leases, ready times are not needed to claim)', function () {
      expect(d(snap({ counts: counts({ pending: 0, running: 0 }) }))).to.deep.equal({ kind: 'claim' });
      expect(d(snap({ counts: counts({ running: 3 }), claimMayBeOrphaned: true }))).to.deep.equal({
        kind: 'claim',
      });
      expect(
        d(
          snap({
            counts: counts({ pending: 1 }),
            nextReadyAt: null,
            swept: { finalized: true, changed: false },
          }),
        ),
      ).to.deep.equal({
        kind: 'claim',
      });
    });

    it('does not claim with every slot taken, once claims are exhausted, or after fail-fast', function () {
      expect(d(snap({ active: 2 })).kind).to.not.equal('claim');
      expect(d(snap({ active: 3 })).kind).to.not.equal('claim');
      expect(d(snap({ claimsExhausted: true })).kind).to.not.equal('claim');
      expect(d(snap({ failFast: true })).kind).to.not.equal('claim');
    });
  });

  describe('wait', function () {
    it('waits (up to pollMs) while handlers of this runner are active and it cannot claim', function () {
      expect(d(snap({ active: 2 }))).to.deep.equal({ kind: 'wait', ms: POLL });
      expect(d(snap({ active: 1, claimsExhausted: true }))).to.deep.equal({ kind: 'wait', ms: POLL });
      expect(d(snap({ active: 1, failFast: true }))).to.deep.equal({ kind: 'wait', ms: POLL });
      expect(d(snap({ active: 1, claimsExhausted: true, pollMs: 37 }))).to.deep.equal({
        kind: 'wait',
        ms: 37,
      });
    });

    it('waits before reading counts, failing the container or finishing', function () {
      // Whatever the rest of the snapshot says, active handlers come first.
      expect(d(snap({ active: 1, claimsExhausted: true, counts: counts({}) }))).to.deep.equal({
        kind: 'wait',
        ms: POLL,
      });
      expect(d(snap({ active: 1, failFast: true, counts: counts({ pending: 2 }) }))).to.deep.equal({
        kind: 'wait',
        ms: POLL,
      });
      expect(
        d(
          snap({
            active: 1,
            claimsExhausted: true,
            counts: counts({ running: 1 }),
            claimMayBeOrphaned: true,
          }),
        ),
      ).to.deep.equal({ kind: 'wait', ms: POLL });
    });
  });

  describe('counts', function () {
    it('reads the counts once idle and unable to claim', function () {
      expect(d(snap({ claimsExhausted: true }))).to.deep.equal({ kind: 'read', what: 'counts' });
      expect(d(snap({ failFast: true }))).to.deep.equal({ kind: 'read', what: 'counts' });
      // the other reads are not asked for before the counts
      expect(d(snap({ claimsExhausted: true, claimMayBeOrphaned: true }))).to.deep.equal({
        kind: 'read',
        what: 'counts',
      });
    });
  });

  describe('fail-container', function () {
    const none = { names: [], nextReadyAt: null };
    it('fails the container on fail-fast once idle, the counts known and no cleanup step left', function () {
      expect(d(snap({ failFast: true, counts: counts({ failed: 1, pending: 2 }), cleanups: none }))).to.deep.equal({
        kind: 'fail-container',
      });
      // even with others' running tasks or an orphan suspicion: fail-fast does not wait for them
      expect(
        d(snap({ failFast: true, counts: counts({ failed: 1, running: 1 }), claimMayBeOrphaned: true, cleanups: none })),
      ).to.deep.equal({ kind: 'fail-container' });
      // and even when nothing is left (the counts would say "finish")
      expect(d(snap({ failFast: true, counts: counts({ failed: 1 }), cleanups: none }))).to.deep.equal({
        kind: 'fail-container',
      });
    });

    it('runs the cleanup steps first (runWhen): reads them, claims them, sleeps out their retry delay', function () {
      const c = counts({ failed: 1, pending: 2 });
      expect(d(snap({ failFast: true, counts: c }))).to.deep.equal({ kind: 'read', what: 'cleanups' });
      const cleanups = { names: ['unlock'], nextReadyAt: NOW };
      expect(d(snap({ failFast: true, counts: c, cleanups }))).to.deep.equal({ kind: 'claim' });
      expect(d(snap({ failFast: true, counts: c, cleanups, active: 1 }))).to.deep.equal({ kind: 'claim' });
      expect(d(snap({ failFast: true, counts: c, cleanups, active: 2 }))).to.deep.equal({ kind: 'wait', ms: POLL });
      expect(d(snap({ failFast: true, counts: c, cleanups: { names: ['unlock'], nextReadyAt: NOW + 40 }, claimsExhausted: true }))).to.deep.equal({
        kind: 'sleep',
        ms: 40,
        sweep: false,
      });
    });
  });

  describe('finish', function () {
    it('finishes when nothing is pending or running', function () {
      expect(d(idle({}))).to.deep.equal({ kind: 'finish' });
      expect(d(idle({ succeeded: 3 }))).to.deep.equal({ kind: 'finish' });
      expect(d(idle({ succeeded: 1, failed: 1, skipped: 1, cancelled: 1 }))).to.deep.equal({
        kind: 'finish',
      });
      // an orphan suspicion without running tasks changes nothing
      expect(d(idle({ succeeded: 1 }, { claimMayBeOrphaned: true }))).to.deep.equal({ kind: 'finish' });
    });
  });

  describe("others' leases (running tasks)", function () {
    it('adopts first when a claim may be orphaned', function () {
      expect(d(idle({ running: 1 }, { claimMayBeOrphaned: true }))).to.deep.equal({ kind: 'adopt' });
      // before reading (or using) the lease expiry
      expect(d(idle({ running: 1 }, { claimMayBeOrphaned: true, nextLeaseExpiry: NOW + 100 }))).to.deep.equal(
        { kind: 'adopt' },
      );
      expect(
        d(idle({ running: 1, pending: 4 }, { claimMayBeOrphaned: true, nextReadyAt: NOW })),
      ).to.deep.equal({ kind: 'adopt' });
    });

    it('then reads the soonest lease expiry', function () {
      expect(d(idle({ running: 1 }))).to.deep.equal({ kind: 'read', what: 'nextLeaseExpiry' });
      // running tasks take precedence over pending ones: no nextReadyAt read
      expect(d(idle({ running: 1, pending: 3 }))).to.deep.equal({ kind: 'read', what: 'nextLeaseExpiry' });
      expect(d(idle({ running: 1, pending: 3 }, { nextReadyAt: NOW + 1 }))).to.deep.equal({
        kind: 'read',
        what: 'nextLeaseExpiry',
      });
    });

    it('then sleeps min(pollMs, max(10, expiry - now + 5)) and sweeps', function () {
      const sleepFor = (exp: number | null, over: Partial<RunnerSnapshot> = {}) =>
        d(idle({ running: 1 }, { nextLeaseExpiry: exp, ...over }));
      expect(sleepFor(NOW + 200)).to.deep.equal({ kind: 'sleep', ms: 205, sweep: true });
      // far away: capped at pollMs
      expect(sleepFor(NOW + 60_000)).to.deep.equal({ kind: 'sleep', ms: POLL, sweep: true });
      expect(sleepFor(NOW + POLL - 5)).to.deep.equal({ kind: 'sleep', ms: POLL, sweep: true });
      expect(sleepFor(NOW + POLL - 6)).to.deep.equal({ kind: 'sleep', ms: POLL - 1, sweep: true });
      // already expired, or about to: at least 10 ms
      expect(sleepFor(NOW + 5)).to.deep.equal({ kind: 'sleep', ms: 10, sweep: true });
      expect(sleepFor(NOW + 6)).to.deep.equal({ kind: 'sleep', ms: 11, sweep: true });
      expect(sleepFor(NOW - 10_000)).to.deep.equal({ kind: 'sleep', ms: 10, sweep: true });
      // no lease found (the running task just finished): as if it expired now
      expect(sleepFor(null)).to.deep.equal({ kind: 'sleep', ms: 10, sweep: true });
      // a poll interval below the floor wins over the floor
      expect(sleepFor(NOW - 10_000, { pollMs: 3 })).to.deep.equal({ kind: 'sleep', ms: 3, sweep: true });
      // pending tasks next to running ones do not change the lease sleep
      expect(
        d(idle({ running: 1, pending: 2 }, { nextLeaseExpiry: NOW + 200, nextReadyAt: NOW + 50 })),
      ).to.deep.equal({
        kind: 'sleep',
        ms: 205,
        sweep: true,
      });
    });
  });

  describe('only pending tasks', function () {
    it('reads the soonest ready time', function () {
      expect(d(idle({ pending: 2 }))).to.deep.equal({ kind: 'read', what: 'nextReadyAt' });
      expect(d(idle({ pending: 2, failed: 1 }))).to.deep.equal({ kind: 'read', what: 'nextReadyAt' });
    });

    it('sleeps until it, at most pollMs and at least 5 ms, without sweeping', function () {
      const sleepFor = (at: number, over: Partial<RunnerSnapshot> = {}) =>
        d(idle({ pending: 1 }, { nextReadyAt: at, ...over }));
      expect(sleepFor(NOW + 250)).to.deep.equal({ kind: 'sleep', ms: 250, sweep: false });
      expect(sleepFor(NOW + POLL)).to.deep.equal({ kind: 'sleep', ms: POLL, sweep: false });
      expect(sleepFor(NOW + 10 * POLL)).to.deep.equal({ kind: 'sleep', ms: POLL, sweep: false });
      expect(sleepFor(NOW + 5)).to.deep.equal({ kind: 'sleep', ms: 5, sweep: false });
      expect(sleepFor(NOW + 4)).to.deep.equal({ kind: 'sleep', ms: 5, sweep: false });
      // ready already (a claim raced with another worker's or the clock moved): the floor
      expect(sleepFor(NOW)).to.deep.equal({ kind: 'sleep', ms: 5, sweep: false });
      expect(sleepFor(NOW - 1_000)).to.deep.equal({ kind: 'sleep', ms: 5, sweep: false });
      expect(sleepFor(NOW + 250, { pollMs: 100 })).to.deep.equal({ kind: 'sleep', ms: 100, sweep: false });
    });
  });

  describe('none ready (pending tasks blocked)', function () {
    const blocked = (over: Partial<RunnerSnapshot> = {}) =>
      d(idle({ pending: 2, failed: 1 }, { nextReadyAt: null, ...over }));

    it('sweeps first', function () {
      expect(blocked()).to.deep.equal({ kind: 'sweep' });
    });

    it('then finishes if the sweep finalized the container', function () {
      expect(blocked({ swept: { finalized: true, changed: false } })).to.deep.equal({ kind: 'finish' });
      // finalized wins over changed
      expect(blocked({ swept: { finalized: true, changed: true } })).to.deep.equal({ kind: 'finish' });
    });

    it('starts a new pass if the sweep changed something', function () {
      expect(blocked({ swept: { finalized: false, changed: true } })).to.deep.equal({ kind: 'next-pass' });
    });

    it('finishes otherwise', function () {
      expect(blocked({ swept: { finalized: false, changed: false } })).to.deep.equal({ kind: 'finish' });
    });
  });

  it('always decides something of a known kind (a small exhaustive walk)', function () {
    // Every combination of these field values (8,640 snapshots).
    const axes: { [K in keyof RunnerSnapshot]?: RunnerSnapshot[K][] } = {
      stopping: [false, true],
      failFast: [false, true],
      active: [0, 1, 2],
      claimsExhausted: [false, true],
      claimMayBeOrphaned: [false, true],
      counts: [
        undefined,
        counts({}),
        counts({ pending: 1 }),
        counts({ running: 1 }),
        counts({ pending: 1, running: 1 }),
      ],
      nextLeaseExpiry: [undefined, null, NOW + 1],
      nextReadyAt: [undefined, null, NOW + 1],
      swept: [
        undefined,
        { finalized: false, changed: false },
        { finalized: false, changed: true },
        { finalized: true, changed: false },
      ],
      cleanups: [undefined, { names: [], nextReadyAt: null }],
    };
    let all: Partial<RunnerSnapshot>[] = [{}];
    for (const [key, values] of Object.entries(axes)) {
      all = all.flatMap((partial) => (values as unknown[]).map((v) => ({ ...partial, [key]: v })));
    }
    expect(all).to.have.lengthOf(17_280);
    const kinds = new Set<string>();
    for (const over of all) {
      const s = snap(over);
      const r = d(s);
      kinds.add(r.kind === 'read' ? `read:${r.what}` : r.kind);
      if ('ms' in r) expect(r.ms, JSON.stringify(s)).to.be.a('number').within(1, POLL);
      // never claims beyond concurrency, never ends the run with handlers active
      if (r.kind === 'claim') expect(s.active, JSON.stringify(s)).to.be.below(s.concurrency);
      if (r.kind === 'finish' || r.kind === 'fail-container') expect(s.active, JSON.stringify(s)).to.equal(0);
    }
    expect([...kinds].sort()).to.deep.equal(
      [
        'adopt',
        'claim',
        'fail-container',
        'finish',
        'next-pass',
        'read:cleanups',
        'read:counts',
        'read:nextLeaseExpiry',
        'read:nextReadyAt',
        'sleep',
        'stop',
        'sweep',
        'wait',
      ].sort(),
    );
  });

  describe('simulation: a whole run against a scripted fake store', function () {
    /** What a fake task does each time it is run. */
    type Outcome = 'ok' | 'fail-retry' | 'fail';

    interface FakeTask {
      name: string;
      state: TaskState;
      readyAt: number;
      waitingOn: string[];
      script: Outcome[];
      attempts: number;
    }

    /**
     * The store actions of execute(), on plain objects. Handlers complete in claim order, one per
     * `wait`; a retry is ready `retryMs` later; the clock moves only when the runner sleeps or
     * waits (by `stepMs`).
     */
    class FakeWorld {
      now = NOW;
      readonly tasks: FakeTask[];
      readonly active: string[] = [];
      failFast = false;

      constructor(
        scripts: Record<string, { script: Outcome[]; waitingOn?: string[] }>,
        private readonly opts: { retryMs: number; stepMs: number; failFast?: boolean },
      ) {
        this.tasks = Object.entries(scripts).map(([name, t]) => ({
          name,
          state: 'pending',
          readyAt: NOW,
          waitingOn: t.waitingOn ?? [],
          script: [...t.script],
          attempts: 0,
        }));
      }

      private task(name: string): FakeTask {
        const t = this.tasks.find((x) => x.name === name);
        if (!t) throw new Error(`no task ${name}`);
        return t;
      }

      private ready(t: FakeTask): boolean {
        return (
          t.state === 'pending' &&
          t.readyAt <= this.now &&
          t.waitingOn.every((w) => this.task(w).state === 'succeeded')
        );
      }

      claim(): boolean {
        const t = this.tasks.find((x) => this.ready(x));
        if (!t) return false;
        t.state = 'running';
        t.attempts++;
        this.active.push(t.name);
        return true;
      }

      /** The oldest active handler finishes. */
      completeOne(): void {
        const name = this.active.shift();
        if (!name) return;
        const t = this.task(name);
        const outcome = t.script.shift() ?? 'ok';
        this.now += this.opts.stepMs;
        if (outcome === 'ok') t.state = 'succeeded';
        else if (outcome === 'fail-retry') {
          t.state = 'pending';
          t.readyAt = this.now + this.opts.retryMs;
        } else {
          t.state = 'failed';
          if (this.opts.failFast) this.failFast = true;
        }
      }

      counts(): StateCounts {
        const c = emptyCounts();
        for (const t of this.tasks) c[t.state]++;
        return c;
      }

      nextReadyAt(): number | null {
        const ready = this.tasks.filter(
          (t) => t.state === 'pending' && t.waitingOn.every((w) => this.task(w).state === 'succeeded'),
        );
        return ready.length ? Math.min(...ready.map((t) => t.readyAt)) : null;
      }

      /** Tasks waiting on a failed task are blocked for good: the sweep finalizes the container. */
      sweep(): { finalized: boolean; changed: boolean } {
        const blockedForGood = this.tasks.some(
          (t) =>
            t.state === 'pending' &&
            t.waitingOn.some((w) => ['failed', 'cancelled'].includes(this.task(w).state)),
        );
        return { finalized: blockedForGood && this.counts().running === 0, changed: false };
      }
    }

    /** Carries decisions out the way Runner.execute() does; returns the decisions taken. */
    function drive(world: FakeWorld, concurrency: number, limit = 100): string[] {
      const log: string[] = [];
      const fresh = (): RunnerSnapshot => ({
        stopping: false,
        failFast: world.failFast,
        active: world.active.length,
        concurrency,
        claimsExhausted: false,
        claimMayBeOrphaned: false,
        now: world.now,
        pollMs: POLL,
      });
      let s = fresh();
      for (let i = 0; i < limit; i++) {
        const r = decide(s);
        log.push(
          r.kind === 'read'
            ? `read:${r.what}`
            : r.kind === 'sleep'
              ? `sleep:${r.ms}${r.sweep ? '+sweep' : ''}`
              : r.kind,
        );
        switch (r.kind) {
          case 'stop':
          case 'finish':
          case 'fail-container':
            return log;
          case 'claim': {
            const got = world.claim();
            s = { ...s, active: world.active.length, claimsExhausted: !got };
            continue;
          }
          case 'wait':
            world.completeOne();
            break;
          case 'read':
            if (r.what === 'counts') s = { ...s, counts: world.counts() };
            else if (r.what === 'nextReadyAt') s = { ...s, nextReadyAt: world.nextReadyAt() };
            else if (r.what === 'cleanups') s = { ...s, cleanups: { names: [], nextReadyAt: null } }; // no cleanup steps here
            else s = { ...s, nextLeaseExpiry: null };
            continue;
          case 'sleep':
            world.now += r.ms;
            if (r.sweep) world.sweep();
            break;
          case 'sweep':
            s = { ...s, swept: world.sweep() };
            continue;
          case 'adopt':
            s = { ...s, claimMayBeOrphaned: false };
            continue;
          case 'next-pass':
            break;
        }
        s = fresh();
      }
      throw new Error(`no end after ${limit} decisions: ${log.join(' ')}`);
    }

    it('3 tasks, concurrency 2, one retry: claims up to 2, waits, sleeps out the retry delay, finishes', function () {
      const world = new FakeWorld(
        { a: { script: ['ok'] }, b: { script: ['fail-retry', 'ok'] }, c: { script: ['ok'] } },
        { retryMs: 200, stepMs: 10 },
      );
      const log = drive(world, 2);
      expect(log).to.deep.equal([
        // pass 1: fill both slots, then wait (a finishes)
        'claim',
        'claim',
        'wait',
        // pass 2: one slot free -> c; wait (b fails, retry in 200 ms)
        'claim',
        'wait',
        // pass 3: b is not ready yet -> exhausted; wait for c
        'claim',
        'wait',
        // pass 4: idle, only b pending with a retry delay: read, sleep until it is ready
        'claim',
        'read:counts',
        'read:nextReadyAt',
        // b failed at t+20 (ready at t+220); c finished at t+30: 190 ms left
        'sleep:190',
        // pass 5: b again; nothing else; wait for it
        'claim',
        'claim',
        'wait',
        // pass 6: nothing left
        'claim',
        'read:counts',
        'finish',
      ]);
      expect(world.tasks.map((t) => [t.name, t.state, t.attempts])).to.deep.equal([
        ['a', 'succeeded', 1],
        ['b', 'succeeded', 2],
        ['c', 'succeeded', 1],
      ]);
    });

    it('3 tasks, concurrency 2, c waits on a failing a: the sweep finalizes the blocked container', function () {
      const world = new FakeWorld(
        { a: { script: ['fail'] }, b: { script: ['ok'] }, c: { script: ['ok'], waitingOn: ['a'] } },
        { retryMs: 200, stepMs: 10 },
      );
      expect(drive(world, 2)).to.deep.equal([
        'claim',
        'claim',
        'wait', // a fails for good
        'claim', // c is blocked: exhausted
        'wait', // b succeeds
        'claim',
        'read:counts',
        'read:nextReadyAt', // null: nothing can become ready
        'sweep', // finalized
        'finish',
      ]);
      expect(world.tasks.map((t) => t.state)).to.deep.equal(['failed', 'succeeded', 'pending']);
    });

    it('3 tasks, concurrency 2, fail-fast: no claim after the failure, the container is failed once idle', function () {
      const world = new FakeWorld(
        { a: { script: ['fail'] }, b: { script: ['ok'] }, c: { script: ['ok'] } },
        { retryMs: 200, stepMs: 10, failFast: true },
      );
      expect(drive(world, 2)).to.deep.equal([
        'claim',
        'claim',
        'wait',
        'wait',
        'read:counts',
        'read:cleanups',
        'fail-container',
      ]);
      expect(world.tasks.map((t) => t.state)).to.deep.equal(['failed', 'succeeded', 'pending']);
    });
  });
});
