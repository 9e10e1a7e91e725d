/**
 * Exit codes and error-to-exit mapping of the CLI. Kept free of heavy imports so usage errors
 * and `--help` stay fast.
 */
import { isTransient, PtsError } from '../errors';
import { isTransientDriverError } from '../store/db-errors';

/** Exit codes of every `pts` command. */
export const EXIT = Object.freeze({ OK: 0, FAILURE: 1, USAGE: 2, UNREACHABLE: 3 } as const);
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** An error that ends the command with a one-line message and a given exit code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode = EXIT.FAILURE,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export function oneLine(err: unknown, max = 300): string {
  const text = err instanceof Error ? err.message || err.name : String(err);
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** Maps any error to a message and an exit code. */
export function toExit(err: unknown): { message: string; code: ExitCode } {
  if (err instanceof CliError) return { message: err.message, code: err.exitCode };
  // "Is the database down?" has one answer: the transient flag set at the store boundary.
  if (isTransient(err)) return { message: oneLine(err), code: EXIT.UNREACHABLE };
  if (!(err instanceof PtsError) && isTransientDriverError(err))
    return { message: `database unreachable: ${oneLine(err)}`, code: EXIT.UNREACHABLE };
  if (err instanceof PtsError) {
    if (err.code === 'PTS_VALIDATION') return { message: err.message, code: EXIT.USAGE };
    return { message: err.message, code: EXIT.FAILURE };
  }
  return { message: oneLine(err), code: EXIT.FAILURE };
}
