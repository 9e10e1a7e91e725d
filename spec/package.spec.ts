/**
 * The package as a user gets it: `npm pack`, install the tarball into an empty directory, then
 * require/import it and run the original README's samples verbatim against the test server.
 */
import { expect } from 'chai';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { useTestDatabase } from './helpers/db';

const root = path.resolve(__dirname, '..');

describe('package (npm pack, installed into a temp dir)', function () {
  this.timeout(600_000);
  const db = useTestDatabase();
  let dir: string;

  before(function () {
    dir = mkdtempSync(path.join(tmpdir(), 'pts-pack-'));
    execFileSync('npm', ['pack', '--pack-destination', dir], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
    const tgz = readdirSync(dir).find((f) => f.endsWith('.tgz'));
    expect(tgz, 'tarball').to.be.a('string');
    writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'pts-consumer', private: true }));
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--ignore-scripts', `./${tgz}`, 'mongoose@^9'], {
      cwd: dir,
      stdio: ['ignore', 'ignore', 'inherit'],
    });
  });
  after(function () {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('ships compiled JavaScript with type declarations', function () {
    const pkg = path.join(dir, 'node_modules', 'persistent-task-status');
    expect(existsSync(path.join(pkg, 'dist', 'lib', 'index.js'))).to.equal(true);
    expect(existsSync(path.join(pkg, 'dist', 'lib', 'index.d.ts'))).to.equal(true);
    expect(existsSync(path.join(pkg, 'lib')), 'TypeScript sources are not shipped').to.equal(false);
  });

  it("works with require('persistent-task-status').client and with import { createClient }", function () {
    const cjs = spawnSync(
      process.execPath,
      ['-e', "const m = require('persistent-task-status'); console.log(typeof m.client.getOrCreateTaskContainer, typeof m.createClient, m.TASK_STATES.join(','))"],
      { cwd: dir, encoding: 'utf8' },
    );
    expect(cjs.status, cjs.stderr).to.equal(0);
    expect(cjs.stdout.trim()).to.equal('function function pending,running,succeeded,failed,skipped,cancelled');
    const esm = spawnSync(
      process.execPath,
      ['--input-type=module', '-e', "import { createClient, client, LeaseLostError } from 'persistent-task-status'; console.log(typeof createClient, typeof client.addListener === 'undefined', new LeaseLostError('x').code)"],
      { cwd: dir, encoding: 'utf8' },
    );
    expect(esm.status, esm.stderr).to.equal(0);
    expect(esm.stdout.trim()).to.equal('function true PTS_LEASE_LOST');
  });

  it("runs the original README's JavaScript samples verbatim (apart from the connection string)", function () {
    copyFileSync(path.join(root, 'examples', 'seed-readme.js'), path.join(dir, 'seed-readme.js'));
    const run = () => spawnSync(process.execPath, ['seed-readme.js'], { cwd: dir, encoding: 'utf8', env: { ...process.env, MONGODB_URI: db.uri }, timeout: 60_000 });
    const first = run();
    expect(first.status, first.stderr).to.equal(0);
    expect(first.stdout).to.include('container: the unique name here (new: true)');
    expect(first.stdout).to.include('task: my unique name within container');
    expect(first.stdout).to.include('maxRetries: 3');
    expect(first.stdout).to.include('delayBetweenRetriesInSeconds: 30');
    const second = run();
    expect(second.status, second.stderr).to.equal(0);
    expect(second.stdout).to.include('(new: false)');
  });
});
