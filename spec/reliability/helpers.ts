/**
 * Shared helpers of the reliability specs: seeded randomness, child worker processes, JSON-lines
 * logs, and byte-level dumps of the pts_* collections.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BSON } from 'mongodb';
import type mongoose from 'mongoose';
import { probeAtomicity as probeAtomicityOnce, type AtomicityProbe } from '../../lib/store/atomicity';
import { trackResource } from '../helpers/leaks';

/** The seed of a randomized test: `PTS_SEED` if set, else random. Printed so a run can be replayed. */
export function testSeed(label: string): number {
  const env = process.env.PTS_SEED;
  const seed = env !== undefined && env !== '' ? Number(env) >>> 0 : (Math.random() * 2 ** 32) >>> 0;
  console.log(`[reliability] ${label}: seed=${seed} (rerun with PTS_SEED=${seed})`);
  return seed;
}

/** mulberry32: small, fast, good enough for test schedules. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 1;
  }
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)];
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

/** A temp dir under os.tmpdir(); a failing test keeps it (and prints where) for inspection. */
export function tempDir(prefix: string): { dir: string; remove: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `pts-rel-${prefix}-`));
  return { dir, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** Every complete JSON line of every `*.jsonl` file in `dir` (a torn last line of a killed writer is ignored). */
export function readLogs<T>(dir: string): T[] {
  const out: T[] = [];
  for (const f of fs.readdirSync(dir).filter((n) => n.endsWith('.jsonl'))) {
    for (const line of fs.readFileSync(path.join(dir, f), 'utf8').split('\n')) {
      if (!line.trim()) continue;
      try {
        out.push(JSON.parse(line) as T);
      } catch {
        // torn line written by a process killed mid-write
      }
    }
  }
  return out;
}

export interface Worker {
  id: string;
  child: ChildProcess;
  /** Resolves with the exit code (null) and signal when the process ends. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  alive(): boolean;
  stderr(): string;
}

const WORKER = path.join(__dirname, 'worker.ts');

/** Starts `node --import tsx spec/reliability/worker.ts <json>`; tracked until it exits. */
export function startWorker(id: string, args: Record<string, unknown>): Worker {
  const child = spawn(process.execPath, ['--import', 'tsx', WORKER, JSON.stringify({ ...args, owner: id })], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  let err = '';
  child.stderr?.on('data', (b: Buffer) => {
    err = (err + b.toString()).slice(-4000);
  });
  let done = false;
  const untrack = trackResource(`worker process ${id}`, () => {
    if (!done) child.kill('SIGKILL');
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      done = true;
      untrack();
      resolve({ code, signal });
    });
  });
  return { id, child, exited, alive: () => !done, stderr: () => err };
}

/** Kills every still-running worker and waits for them (for after()/finally blocks). */
export async function killAll(workers: Iterable<Worker>): Promise<void> {
  const list = [...workers].filter((w) => w.alive());
  for (const w of list) w.child.kill('SIGKILL');
  await Promise.all(list.map((w) => w.exited));
}

/** Canonical EJSON of every document of every pts_* collection, sorted by `_id`. */
export async function dumpPts(conn: mongoose.Connection): Promise<string> {
  const db = conn.db!;
  const names = (await db.listCollections({}, { nameOnly: true }).toArray())
    .map((c) => c.name)
    .filter((n) => n.startsWith('pts_'))
    .sort();
  const out: Record<string, unknown[]> = {};
  for (const n of names) {
    const docs = await db.collection(n).find({}).toArray();
    docs.sort((a, b) => String(a._id).localeCompare(String(b._id)));
    out[n] = docs;
  }
  return BSON.EJSON.stringify(out, { relaxed: false });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export type { AtomicityProbe } from '../../lib/store/atomicity';

let atomicity: Promise<AtomicityProbe> | null = null;

/** lib/store/atomicity.ts's probe, once per process (every spec runs on one server). */
export function probeAtomicity(uri: string): Promise<AtomicityProbe> {
  atomicity ??= probeAtomicityOnce(uri);
  return atomicity;
}
