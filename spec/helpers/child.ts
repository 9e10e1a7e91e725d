/**
 * Child processes of the specs: a TypeScript file run with `node --import tsx`, tracked by the
 * leak check (helpers/leaks.ts) until it exits, so a test that leaves one running fails and the
 * process is SIGKILLed. `startTs` for a long-lived child a test kills or waits for, `runTs` for a
 * command whose output it reads, `runPts` for the `pts` CLI.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { trackResource } from './leaks';

/** The `pts` CLI entry point (TypeScript source). */
export const PTS_MAIN = path.join(__dirname, '..', '..', 'lib', 'cli', 'main.ts');

export interface ChildOptions {
  /** Added to `process.env` (`NODE_OPTIONS` is cleared unless given: the child gets `--import tsx` once). */
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Named in a leak report. */
  label?: string;
  /** Pass the child's stdout/stderr through instead of capturing them. */
  inherit?: boolean;
}

export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface StartedChild {
  child: ChildProcess;
  /** Resolves when the process has exited and its output streams are closed. */
  exited: Promise<ChildExit>;
  alive(): boolean;
  /** Captured output (all of stdout, the last 64 KiB of stderr). */
  stdout(): string;
  stderr(): string;
  /** SIGKILLs the process if it is still running and waits for it. */
  kill(): Promise<ChildExit>;
}

export interface ChildRun extends ChildExit {
  stdout: string;
  stderr: string;
}

/** Starts `node --import tsx <file> ...args`. */
export function startTs(file: string, args: string[], opts: ChildOptions = {}): StartedChild {
  const child = spawn(process.execPath, ['--import', 'tsx', file, ...args], {
    cwd: opts.cwd,
    env: { ...process.env, NODE_OPTIONS: '', ...opts.env },
    stdio: opts.inherit ? ['ignore', 'inherit', 'inherit'] : ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout?.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr?.on('data', (b: Buffer) => (err = (err + b.toString()).slice(-65_536)));
  let done = false;
  const untrack = trackResource(
    opts.label ?? `child ${path.basename(file)} ${args.join(' ')}`.slice(0, 200),
    () => {
      if (!done) child.kill('SIGKILL');
    },
  );
  const exited = new Promise<ChildExit>((resolve, reject) => {
    child.once('error', (e) => {
      done = true;
      untrack();
      reject(e);
    });
    child.once('close', (code, signal) => {
      done = true;
      untrack();
      resolve({ code, signal });
    });
  });
  void exited.catch(() => undefined); // a spawn error rejects `exited` for whoever awaits it, not the process
  return {
    child,
    exited,
    alive: () => !done && child.exitCode === null && child.signalCode === null,
    stdout: () => out,
    stderr: () => err,
    kill: () => {
      if (!done) child.kill('SIGKILL');
      return exited;
    },
  };
}

/** Runs `node --import tsx <file> ...args` to its end; resolves with its exit and output. */
export async function runTs(file: string, args: string[], opts: ChildOptions = {}): Promise<ChildRun> {
  const c = startTs(file, args, opts);
  const exit = await c.exited;
  return { ...exit, stdout: c.stdout(), stderr: c.stderr() };
}

/** Runs the `pts` CLI as a real process (`NO_COLOR=1`; `env` on top). */
export function runPts(args: string[], opts: ChildOptions = {}): Promise<ChildRun> {
  return runTs(PTS_MAIN, args, {
    label: `pts ${args.join(' ')}`,
    ...opts,
    env: { NO_COLOR: '1', ...opts.env },
  });
}
