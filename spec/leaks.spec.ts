import { execFile } from 'node:child_process';
import path from 'node:path';
import { expect } from 'chai';
import { openResources, trackResource, untrack } from './helpers/leaks';
import { testServerUri } from './helpers/db';

interface MochaRun {
  code: number | null;
  output: string;
}

function runMocha(file: string): Promise<MochaRun> {
  const mochaBin = path.join(path.dirname(require.resolve('mocha/package.json')), 'bin', 'mocha.js');
  const args = [
    mochaBin,
    '--no-config',
    '--node-option',
    'import=tsx',
    '--extension',
    'ts',
    '--require',
    'spec/fixtures/global.ts',
    '--reporter',
    'spec',
    file,
  ];
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      args,
      // reuse this run's server so the child starts nothing
      { env: { ...process.env, MONGODB_URI: testServerUri(), NO_COLOR: '1' }, timeout: 60_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : null) : 0;
        resolve({ code, output: `${stdout}\n${stderr}` });
      },
    );
  });
}

describe('leak tracking', function () {
  it('untrack() by name and the returned handle both remove entries', function () {
    const before = openResources().length;
    const release = trackResource('leaks-spec handle', () => {});
    trackResource('leaks-spec named', () => {});
    trackResource('leaks-spec named', () => {});
    expect(openResources()).to.include.members(['leaks-spec handle', 'leaks-spec named']);
    release();
    expect(untrack('leaks-spec named')).to.equal(2);
    expect(openResources()).to.have.length(before);
  });

  it('fails a leaking test without aborting the run, and reports suite-level leaks at the end', async function () {
    this.timeout(90_000);
    const run = await runMocha('spec/fixtures/leaky.fixture.ts');
    expect(run.output).to.match(/test left 1 resource\(s\) open: leaked interval/);
    expect(run.output).to.match(
      /resources still open at the end of the run: suite-scoped resource never closed/,
    );
    expect(run.output).to.not.match(/closed by afterEach/);
    expect(run.output).to.match(/✔ still runs after the leak/);
    expect(run.output).to.match(/✔ is not reported/);
    // the leaking test is first reported passing, then failed by the leak check
    expect(run.output).to.match(/ 3 passing/);
    expect(run.output).to.match(/ 2 failing/);
    expect(run.code).to.equal(2);
  });
});
