#!/usr/bin/env node
/**
 * Entry point of the `pts` command (package.json `bin`). Exit codes: 0 ok, 1 failure or not
 * found, 2 usage error, 3 database unreachable.
 */
import { runCli } from './program';

runCli(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // Commands close what they open; this only guards against a stray handle keeping us alive.
    setTimeout(() => process.exit(code), 2_000).unref();
  },
  (err: unknown) => {
    process.stderr.write(`pts: ${String(err)}\n`);
    process.exit(1);
  },
);
