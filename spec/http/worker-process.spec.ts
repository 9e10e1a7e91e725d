import { expect } from 'chai';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { useTestDatabase } from '../helpers/db';
import { trackResource } from '../helpers/leaks';
import { startFixture, type HttpFixture } from './support';

describe('http worker protocol with an external process (examples/worker.py)', function () {
  const db = useTestDatabase();
  let f: HttpFixture;
  before(async function () {
    f = await startFixture(db);
  });
  after(async function () {
    await f?.close();
  });

  it('a python3 stdlib worker claims, heartbeats and completes a 3-task container', async function () {
    this.timeout(60_000);
    await f.call('PUT', '/api/v1/containers/py%20job', { body: {} });
    const add = await f.call('POST', '/api/v1/containers/py%20job/tasks', {
      body: {
        tasks: [
          { name: 'a', data: { numbers: [1, 2, 3] } },
          { name: 'b/2', data: { numbers: [10, 20] }, dependsOn: ['a'] },
          { name: 'c', data: { numbers: [5] }, dependsOn: ['b/2'] },
        ],
      },
    });
    expect(add.status).to.equal(200);
    const child = spawn('python3', [path.join(__dirname, '../../examples/worker.py')], {
      env: {
        ...process.env,
        PTS_URL: f.url,
        PTS_TOKEN: f.token.worker,
        PTS_CONTAINER: 'py job',
        PTS_IDLE_EXIT_MS: '1500',
        PTS_OWNER: 'py-test',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const untrack = trackResource('python worker', () => child.kill('SIGKILL'));
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    untrack();
    expect(code, out).to.equal(0);

    const list = await f.call('GET', '/api/v1/containers/py%20job/tasks', { token: f.token.read });
    const byName = Object.fromEntries(list.body.items.map((t: { name: string }) => [t.name, t]));
    expect(byName.a.state).to.equal('succeeded');
    expect(byName.a.result).to.deep.equal({ sum: 6, worker: 'py-test' });
    expect(byName['b/2'].result.sum).to.equal(30);
    expect(byName['b/2'].processingData).to.deep.equal({ i: 2, total: 30 });
    expect(byName.c.result.sum).to.equal(5);
    expect(byName.c.failures).to.deep.equal([]);
    const summary = await f.call('GET', '/api/v1/containers/py%20job', { token: f.token.read });
    expect(summary.body.status).to.equal('succeeded');
    expect(out).to.include('c succeeded');
  });
});
