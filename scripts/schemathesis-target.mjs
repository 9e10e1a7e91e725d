#!/usr/bin/env node
// Starts what scripts/schemathesis.sh tests: FerretDB (lib/testing's startFerretDB), an admin
// token (`pts token create`) and a real `pts serve` on a free loopback port, all from dist/ (npm
// run build). Prints one line "URL TOKEN" on stdout once the server answers, then runs until
// SIGTERM/SIGINT and stops both. Logs go to stderr.
import { spawn, execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const { startFerretDB } = require(path.join(root, 'dist/lib/testing.js'));
const cli = path.join(root, 'dist/lib/cli/main.js');
const log = (line) => process.stderr.write(`[schemathesis-target] ${line}\n`);

const db = await startFerretDB({ log });
const env = { ...process.env, MONGODB_URI: `${db.uri.replace(/\/$/, '')}/pts_schemathesis`, NO_COLOR: '1' };
let serve;
const stop = async (code) => {
  if (serve && serve.exitCode === null) {
    serve.kill('SIGTERM');
    await new Promise((r) => serve.once('exit', r));
  }
  await db.stop();
  process.exit(code);
};
process.on('SIGTERM', () => void stop(0));
process.on('SIGINT', () => void stop(0));
try {
  const token = execFileSync(process.execPath, [cli, 'token', 'create', '--scope', 'admin', '--name', 'schemathesis'], {
    env,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  }).trim();
  const port = 20000 + Math.floor(Math.random() * 20000);
  serve = spawn(process.execPath, [cli, 'serve', '--host', '127.0.0.1', '--port', String(port)], {
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  serve.once('exit', (code) => {
    log(`pts serve exited with ${code}`);
    void db.stop().then(() => process.exit(1));
  });
  const url = await new Promise((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`pts serve did not start: ${out}`)), 30_000);
    serve.stdout.on('data', (chunk) => {
      out += chunk;
      process.stderr.write(chunk);
      const m = /serving on (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(m[1]);
      }
    });
  });
  // Something for the example parameters (`nightly`, `resize/1`) to find.
  const api = async (method, route, body) => {
    const res = await fetch(`${url}/api/v1${route}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (!res.ok) throw new Error(`${method} ${route}: ${res.status} ${await res.text()}`);
  };
  await api('PUT', '/containers/nightly', { metadata: { team: 'ops' } });
  await api('POST', '/containers/nightly/tasks', {
    tasks: [
      { name: 'resize/1', data: { file: 'a.png' } },
      { name: 'resize/2', data: { file: 'b.png' }, weight: 2 },
      { name: 'report', dependsOn: ['resize/1', 'resize/2'] },
    ],
  });
  process.stdout.write(`${url} ${token}\n`);
} catch (err) {
  log(`failed: ${err.stack ?? err}`);
  await stop(1);
}
