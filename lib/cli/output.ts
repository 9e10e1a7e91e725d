/**
 * Terminal output of the CLI: colours and tables only when stdout is a TTY, plain text or JSON
 * otherwise. No state, no I/O besides the stream handed in.
 */
import { styleText } from 'node:util';
import type { ContainerSummary, TaskRecord } from '../types';
import { TASK_STATES_BY_PROGRESS } from '../states';

type Style = Parameters<typeof styleText>[0];

/** Writes to a stream, colouring only when it is a TTY (and NO_COLOR is unset). */
export class Out {
  readonly tty: boolean;
  readonly colour: boolean;

  constructor(private readonly stream: NodeJS.WriteStream = process.stdout) {
    this.tty = Boolean(stream.isTTY);
    this.colour = this.tty && !process.env.NO_COLOR && process.env.TERM !== 'dumb';
  }

  style(format: Style, text: string): string {
    return this.colour ? styleText(format, text) : text;
  }

  line(text = ''): void {
    this.stream.write(`${text}\n`);
  }

  json(value: unknown): void {
    this.stream.write(`${JSON.stringify(value, null, 2)}\n`);
  }

  write(text: string): void {
    this.stream.write(text);
  }

  get columns(): number {
    return this.stream.columns ?? 100;
  }
}

const STATE_STYLE: Record<string, Style> = {
  pending: 'gray',
  running: 'cyan',
  succeeded: 'green',
  failed: 'red',
  skipped: 'yellow',
  cancelled: 'magenta',
};

export function stateText(out: Out, state: string): string {
  return out.style(STATE_STYLE[state] ?? 'white', state);
}

/** `1h 02m`, `3m 05s`, `4.2s`, `120ms`. */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '-';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/** Age of a date relative to now, e.g. `5m 03s`. */
export function age(date: Date | string | null | undefined, now = Date.now()): string {
  if (!date) return '-';
  return formatDuration(now - new Date(date).getTime());
}

/** Parses `30s`, `15m`, `12h`, `7d`, `2w` into milliseconds; null if malformed. */
export function parseDuration(text: string): number | null {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$/i.exec(text);
  if (!m) return null;
  const unit: Record<string, number> = {
    ms: 1,
    s: 1000,
    m: 60_000,
    h: 3_600_000,
    d: 86_400_000,
    w: 7 * 86_400_000,
  };
  return Math.round(Number(m[1]) * unit[m[2].toLowerCase()]);
}

/** A text progress bar `██████░░░░  60%`. */
export function bar(out: Out, pct: number, width = 24, state = 'running'): string {
  const p = Math.max(0, Math.min(100, pct || 0));
  const full = Math.round((p / 100) * width);
  const filled = out.tty
    ? '█'.repeat(full) + '░'.repeat(width - full)
    : '#'.repeat(full) + '.'.repeat(width - full);
  return `${out.style(STATE_STYLE[state] ?? 'white', filled)} ${p.toFixed(0).padStart(3)}%`;
}

// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[[0-9;]*m/g;
/** Length of a string as shown (without colour codes). */
export const visible = (s: string): number => s.replace(ANSI, '').length;

/** Pads to `width` visible characters (colour codes do not count). */
export const padVisible = (s: string, width: number): string =>
  s + ' '.repeat(Math.max(0, width - visible(s)));

/** Aligned columns (TTY) or tab-separated values (pipes). */
export function table(out: Out, headers: string[], rows: string[][]): void {
  if (!out.tty) {
    out.line(headers.join('\t'));
    for (const r of rows) out.line(r.map((c) => c.replace(ANSI, '').replace(/[\t\n]/g, ' ')).join('\t'));
    return;
  }
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => visible(r[i] ?? ''))));
  const pad = (s: string, i: number): string => s + ' '.repeat(Math.max(0, widths[i] - visible(s)));
  out.line(out.style('bold', headers.map(pad).join('  ')));
  for (const r of rows) out.line(r.map(pad).join('  ').trimEnd());
}

/** One compact line of counts: `3 succeeded, 1 running, 2 pending`. */
export function countsText(out: Out, c: ContainerSummary): string {
  const parts: string[] = [];
  for (const s of TASK_STATES_BY_PROGRESS) {
    const n = c.counts?.[s] ?? 0;
    if (n > 0) parts.push(`${n} ${stateText(out, s)}`);
  }
  return parts.length ? parts.join(', ') : 'no tasks';
}

/** A task's duration: ended - started, or running time so far. */
export function taskDuration(t: TaskRecord, now = Date.now()): number | null {
  if (t.durationMs !== null && t.durationMs !== undefined) return t.durationMs;
  if (!t.startedAt) return null;
  const end = t.endedAt ? new Date(t.endedAt).getTime() : now;
  return end - new Date(t.startedAt).getTime();
}

/** Cuts a string to `max` visible characters with an ellipsis. */
export function clip(s: string | null | undefined, max: number): string {
  if (!s) return '';
  const flat = s.replace(/\s+/g, ' ');
  return flat.length > max ? `${flat.slice(0, Math.max(0, max - 1))}…` : flat;
}

/**
 * Characters that are invisible or reorder the text around them: controls (C0, C1, DEL), format
 * characters (bidi overrides and isolates such as U+202E, zero-width spaces and joiners, U+FEFF,
 * soft hyphen, tags), line/paragraph separators, every space but U+0020, private-use and
 * unassigned code points. The dashboard applies the same rule (`dashboard/dom.js`).
 */
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Zs}\p{Co}\p{Cn}]/u;

/** `\u202E` (4 hex digits), or `\u{E0041}` beyond the BMP. */
export function escapeChar(ch: string): string {
  const cp = ch.codePointAt(0) ?? 0;
  const hex = cp.toString(16).toUpperCase();
  return cp > 0xffff ? `\\u{${hex}}` : `\\u${hex.padStart(4, '0')}`;
}

/**
 * The one rule for showing a container, task or worker name: invisible characters escaped (in
 * reverse video on a colour terminal), and on a terminal cut to `max` characters with `…`.
 * Pipes get the whole name (escaped, so a tab or newline cannot break a line); `--json` output
 * keeps names exactly as stored.
 */
export function displayName(out: Out, name: string, max = 48): string {
  const runs = [...name].map((ch) =>
    ch !== ' ' && INVISIBLE.test(ch) ? { text: escapeChar(ch), escaped: true } : { text: ch, escaped: false },
  );
  const total = runs.reduce((n, r) => n + r.text.length, 0);
  const limit = out.tty && total > max ? Math.max(1, max - 1) : Infinity;
  let text = '';
  let shown = 0;
  for (const r of runs) {
    if (shown + r.text.length > limit) return `${text}…`;
    text += r.escaped ? out.style('inverse', r.text) : r.text;
    shown += r.text.length;
  }
  return text;
}
