/** Small statistics helpers for the benchmark (no dependencies). */

export interface Spread {
  median: number;
  min: number;
  max: number;
  q1: number;
  q3: number;
  n: number;
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

export function spread(values: number[]): Spread {
  const s = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  return {
    median: quantile(s, 0.5),
    min: s[0] ?? NaN,
    max: s[s.length - 1] ?? NaN,
    q1: quantile(s, 0.25),
    q3: quantile(s, 0.75),
    n: s.length,
  };
}

/** "1.23 (1.10–1.31)" — median with min–max. */
export function fmt(s: Spread, digits = 2): string {
  if (!Number.isFinite(s.median)) return 'n/a';
  return `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`;
}

export function round(v: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

export function roundSpread(s: Spread, digits = 3): Spread {
  return {
    median: round(s.median, digits),
    min: round(s.min, digits),
    max: round(s.max, digits),
    q1: round(s.q1, digits),
    q3: round(s.q3, digits),
    n: s.n,
  };
}

/** A measured run of one variant: `ops` operations in `ms` milliseconds. */
export interface Sample {
  ops: number;
  ms: number;
}

export type Variant = () => Promise<Sample>;

export interface InterleavedResult {
  /** ops/s per variant per round. */
  rates: Record<string, number[]>;
  rate: Record<string, Spread>;
  /** Per-round ratio of each variant's rate to the reference variant's rate in the same round. */
  ratio: Record<string, Spread>;
  order: string[][];
}

/**
 * Runs the variants side by side: every round runs each variant once, and the order rotates
 * each round (A,B,C / B,C,A / ...) so neither drift nor warm-up favours one of them. Ratios are
 * taken per round, against `reference`, then summarised.
 */
export async function interleave(
  variants: Record<string, Variant>,
  rounds: number,
  reference: string,
  log?: (s: string) => void,
): Promise<InterleavedResult> {
  const names = Object.keys(variants);
  const rates: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  const order: string[][] = [];
  for (let r = 0; r < rounds; r++) {
    const rot = names.map((_, i) => names[(i + r) % names.length]);
    order.push(rot);
    for (const n of rot) {
      const s = await variants[n]();
      rates[n].push((s.ops * 1000) / s.ms);
      log?.(
        `    round ${r + 1}/${rounds} ${n}: ${s.ops} ops in ${s.ms.toFixed(0)} ms = ${((s.ops * 1000) / s.ms).toFixed(1)}/s`,
      );
    }
  }
  const ratio: Record<string, Spread> = {};
  for (const n of names) {
    if (n === reference) continue;
    ratio[n] = roundSpread(spread(rates[n].map((v, i) => v / rates[reference][i])));
  }
  const rate = Object.fromEntries(names.map((n) => [n, roundSpread(spread(rates[n]), 1)]));
  return {
    rates: Object.fromEntries(names.map((n) => [n, rates[n].map((v) => round(v, 1))])),
    rate,
    ratio,
    order,
  };
}

/** Latency samples (ms) of `n` sequential calls of `fn`. */
export async function latencies(n: number, fn: (i: number) => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn(i);
    out.push(performance.now() - t);
  }
  return out;
}
