/**
 * The Python worker of docs/http.md (examples/worker.py, standard library only) against a real
 * `pts serve` process: a small pipeline with dependencies, a name needing URL-encoding and one
 * planned failure; every task must end succeeded with the result the worker computed, and the
 * worker must stop by itself when the container's summary has a final `status`.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { expect } from 'chai';
import { createClient, type Client } from '../lib';
import { TokenStore } from '../lib/server';
import { useTestDatabase, skipWithReason } from './helpers/db';
import { trackResource } from './helpers/leaks';
import { jsonRequest } from './http/support';

const ROOT = path.join(__dirname, '..');
const MAIN = path.join(ROOT, 'lib', 'cli', 'main.ts');
const WORKER = path.join(ROOT, 'examples', 'worker.py');

/** Resolves with the child's exit code, or kills it (SIGKILL) after `ms`. */
function exited(child: ChildProcess, ms: number): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve(child.exitCode);
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

describe('examples/worker.py against `pts serve`', function () {
  this.timeout(90_000);
  const db = useTestDatabase();
  let client: Client;
  let serve: ChildProcess | undefined;
  let serveLog = '';
  let base = '';
  let tokens: { admin: string; worker: string };
  const untrack: Array<() => void> = [];

  before(async function () {
    if (spawnSync('python3', ['--version']).status !== 0) skipWithReason(this, 'no python3 on PATH');
    client = createClient({ connection: db.connection });
    const store = new TokenStore(client);
    tokens = {
      admin: (await store.create({ scope: 'admin', name: 'py-spec-admin' })).token,
      worker: (await store.create({ scope: 'worker', name: 'py-spec-worker' })).token,
    };
    serve = spawn(
      process.execPath,
      ['--import', 'tsx', MAIN, 'serve', '--host', '127.0.0.1', '--port', '0'],
      {
        cwd: ROOT,
        env: { ...process.env, MONGODB_URI: db.uri, NO_COLOR: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const child = serve;
    untrack.push(trackResource('pts serve (python worker spec)', () => child.kill('SIGKILL')));
    base = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`pts serve did not start in 30 s:\n${serveLog}`)),
        30_000,
      );
      const onData = (b: Buffer) => {
        serveLog += b.toString();
        const m = /pts serving on (http:\/\/\S+)/.exec(serveLog);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', (b: Buffer) => (serveLog += b.toString()));
      child.on('exit', (code) => reject(new Error(`pts serve exited with ${code}:\n${serveLog}`)));
    });
  });

  after(async function () {
    if (serve) {
      serve.kill('SIGTERM');
      const code = await exited(serve, 15_000);
      expect(code, serveLog).to.equal(0);
    }
    untrack.forEach((u) => u());
    await client?.close();
  });

  const api = (method: string, p: string, body?: unknown, token = tokens.admin) =>
    jsonRequest(`${base}/api/v1${p}`, method, body, token);

  /** Runs examples/worker.py on one container until it exits by itself (at most 60 s); its exit code and output. */
  async function runWorker(
    container: string,
    env: Record<string, string> = {},
  ): Promise<{ code: number | null; out: string }> {
    const worker = spawn('python3', [WORKER], {
      cwd: ROOT,
      env: {
        ...process.env,
        PTS_URL: base,
        PTS_TOKEN: tokens.worker,
        PTS_CONTAINER: container,
        PTS_OWNER: 'py-spec',
        PTS_WAIT_MS: '1000',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const untrack = trackResource('python worker', () => worker.kill('SIGKILL'));
    let out = '';
    worker.stdout.on('data', (b: Buffer) => (out += b.toString()));
    worker.stderr.on('data', (b: Buffer) => (out += b.toString()));
    try {
      return { code: await exited(worker, 60_000), out };
    } finally {
      untrack();
    }
  }

  it('runs a small pipeline to the end with the results the worker computed, and stops when it is final', async function () {
    const name = 'py pipeline/1';
    const c = encodeURIComponent(name);
    expect((await api('PUT', `/containers/${c}`, { metadata: { from: 'spec' } })).status).to.equal(201);
    // The input field is `data` when adding (it reads back as `taskData`); `taskData` is refused.
    const wrong = await api('POST', `/containers/${c}/tasks`, { tasks: [{ name: 'x', taskData: {} }] });
    expect(wrong.status).to.equal(400);
    expect(wrong.body.error.code).to.equal('PTS_VALIDATION');
    expect(wrong.body.error.message, 'the refusal names the field')
      .to.contain('"taskData"')
      .and.to.contain('`data`');
    const other = await api('POST', `/containers/${c}/tasks`, { tasks: [{ name: 'x', urgency: 3 }] });
    expect(other.status).to.equal(400);
    expect(other.body.error.message).to.contain('unknown field "urgency"');
    const numbers: Record<string, number[]> = {
      fetch: [1, 2, 3],
      'split/a': [10, 20],
      'split/b': [5, 5, 5, 5],
      join: [100],
    };
    const add = await api('POST', `/containers/${c}/tasks`, {
      tasks: [
        { name: 'fetch', data: { numbers: numbers.fetch } },
        { name: 'split/a', data: { numbers: numbers['split/a'] }, dependsOn: ['fetch'] },
        // Fails its first attempt on purpose; retried at once (retryDelayMs 0).
        {
          name: 'split/b',
          data: { numbers: numbers['split/b'], failOnAttempt: 1 },
          dependsOn: ['fetch'],
          retryDelayMs: 0,
        },
        { name: 'join', data: { numbers: numbers.join }, dependsOn: ['split/a', 'split/b'] },
      ],
    });
    expect(add.status, JSON.stringify(add.body)).to.equal(200);

    // The worker stops by itself once the container is complete; bounded in time.
    const { code, out } = await runWorker(name, { PTS_LEASE_MS: '10000' });
    expect(code, out).to.equal(0);
    expect(out).to.include(`${name} is succeeded`);

    const list = await api('GET', `/containers/${c}/tasks`, undefined, tokens.worker);
    expect(list.status).to.equal(200);
    const byName = Object.fromEntries(list.body.items.map((t: { name: string }) => [t.name, t]));
    for (const [task, ns] of Object.entries(numbers)) {
      const t = byName[task];
      expect(t.state, task).to.equal('succeeded');
      const sum = ns.reduce((a, b) => a + b, 0);
      expect(t.result, task).to.deep.equal({ sum, worker: 'py-spec' });
      expect(t.processingData, task).to.deep.equal({ i: ns.length, total: sum });
      expect(t.percentageComplete, task).to.equal(100);
    }
    expect(byName['split/b'].invokeCount).to.equal(2);
    expect(byName['split/b'].failures).to.have.length(1);
    expect(byName['split/b'].failures[0]).to.include({
      attempt: 1,
      kind: 'error',
      code: 'RuntimeError',
      workerId: 'py-spec',
      message: 'failing attempt 1 on purpose',
    });
    expect(byName.fetch.failures).to.deep.equal([]);
    const summary = await api('GET', `/containers/${c}`, undefined, tokens.worker);
    expect(summary.body).to.include({
      status: 'succeeded',
      isComplete: true,
      total: 4,
      percentageComplete: 100,
    });
    expect(summary.body.counts.succeeded).to.equal(4);
  });

  it('stops when the container fails (a task out of retries, its dependent never runs)', async function () {
    const name = 'py-failing';
    expect((await api('PUT', `/containers/${name}`, {})).status).to.equal(201);
    const add = await api('POST', `/containers/${name}/tasks`, {
      tasks: [
        { name: 'ok', data: { numbers: [2, 2] } },
        { name: 'broken', data: { numbers: [1], failOnAttempt: 1 }, maxRetries: 0 },
        { name: 'after', data: { numbers: [3] }, dependsOn: ['broken'] },
      ],
    });
    expect(add.status, JSON.stringify(add.body)).to.equal(200);
    const { code, out } = await runWorker(name);
    expect(code, out).to.equal(0);
    expect(out).to.include(`${name} is failed`);
    const summary = await api('GET', `/containers/${name}`, undefined, tokens.worker);
    expect(summary.body).to.include({ status: 'failed', isComplete: false });
    const list = await api('GET', `/containers/${name}/tasks`, undefined, tokens.worker);
    const state = Object.fromEntries(
      list.body.items.map((t: { name: string; state: string }) => [t.name, t.state]),
    );
    expect(state).to.deep.equal({ ok: 'succeeded', broken: 'failed', after: 'pending' });
  });
});
