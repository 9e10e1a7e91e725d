/**
 * A throwaway PostgreSQL cluster for the million-task scale run (`npm run bench:scale`):
 * FerretDB's PostgreSQL handler pushes equality filters down to SQL, which its SQLite handler
 * does not, so a page of failed tasks among 1M is a Postgres scan instead of a million documents
 * decoded in Go. Binaries come from scripts/ensure-postgres.sh (Debian's package). The cluster
 * lives in a temp dir, listens on loopback only, keeps PostgreSQL's durable defaults (fsync,
 * synchronous_commit) and is removed on stop. Running as root, the server runs as the `postgres`
 * user (PostgreSQL refuses to run as root).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { findFreePort } from '../lib/embedded';

export interface Postgres {
  /** postgres:// URL of an empty database `ferretdb` (trust auth on loopback). */
  url: string;
  version: string;
  stop(): Promise<void>;
}

const ROOT = path.resolve(__dirname, '..');

export async function startPostgres(log: (line: string) => void): Promise<Postgres> {
  const bin = execFileSync('bash', [path.join(ROOT, 'scripts', 'ensure-postgres.sh')], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  }).trim();
  const asRoot = process.getuid?.() === 0;
  const ids = asRoot
    ? {
        uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' })),
        gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' })),
      }
    : {};
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pts-bench-pg-'));
  if (asRoot) fs.chownSync(dir, ids.uid!, ids.gid!);
  const data = path.join(dir, 'data');
  execFileSync(path.join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '-A', 'trust', '--no-sync'], {
    ...ids,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const version = execFileSync(path.join(bin, 'postgres'), ['--version'], { encoding: 'utf8' }).trim();
  const port = await findFreePort();
  const child: ChildProcess = spawn(
    path.join(bin, 'postgres'),
    ['-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'shared_buffers=1GB'],
    { ...ids, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr = (stderr + String(d)).slice(-4000)));
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once('exit', () => ((exited = true), resolve())));
  const cleanup = (): void => {
    if (!exited) child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', cleanup);
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exited) throw new Error(`postgres exited during startup: ${stderr.trim()}`);
    try {
      execFileSync(path.join(bin, 'createdb'), ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', 'ferretdb'], {
        stdio: 'ignore',
      });
      break;
    } catch {
      if (Date.now() > deadline) {
        cleanup();
        throw new Error(`postgres did not accept connections on ${port} within 30 s: ${stderr.trim()}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  log(`postgres: ${version} on 127.0.0.1:${port} (data in ${dir})`);
  return {
    url: `postgres://postgres@127.0.0.1:${port}/ferretdb`,
    version,
    stop: async () => {
      if (!exited) {
        child.kill('SIGINT'); // fast shutdown
        const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exit;
        clearTimeout(t);
      }
      process.removeListener('exit', cleanup);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
