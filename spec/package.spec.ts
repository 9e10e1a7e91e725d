/**
 * The package as a user gets it: `npm pack`, install the tarball (with mongoose, nothing else)
 * into an empty directory, then require/import its three entry points, check what the library
 * entry loads (and what it does not), type-check a consumer, and run the original README's samples
 * verbatim against the test server.
 */
import { expect } from 'chai';
import { execFileSync, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { useTestDatabase } from './helpers/db';

const root = path.resolve(__dirname, '..');
const tsc = path.join(root, 'node_modules', '.bin', 'tsc');

/** What `require('persistent-task-status')` must never pull in (the server's, CLI's and test harness's dependencies). */
const FORBIDDEN_PACKAGES = [
  'fastify',
  '@fastify',
  'commander',
  'mongodb-memory-server',
  'mongodb-memory-server-core',
  'pino',
  'prom-client',
  'ajv',
];
/** …nor these modules of the package itself. */
const FORBIDDEN_MODULES =
  /[\\/]dist[\\/]lib[\\/](?:(?:http|cli|dashboard)[\\/]|(?:embedded|auth|metrics|server|testing)\.js$)/;

describe('package (npm pack, installed into a temp dir)', function () {
  this.timeout(120_000); // pack (runs the build) + install take ~20-40 s; every test after that is a child process
  const db = useTestDatabase();
  let dir: string;
  let pkgDir: string;

  /** Runs node in the consumer project, as a user would: no tsx, no NODE_OPTIONS from mocha. */
  function node(args: string[], env: Record<string, string | undefined> = {}): SpawnSyncReturns<string> {
    const base: Record<string, string | undefined> = { ...process.env, NODE_OPTIONS: undefined, ...env };
    const clean = Object.fromEntries(Object.entries(base).filter(([, v]) => v !== undefined)) as Record<
      string,
      string
    >;
    return spawnSync(process.execPath, args, { cwd: dir, encoding: 'utf8', env: clean, timeout: 60_000 });
  }

  /** Runs `code` as a CommonJS script in the consumer project and parses the JSON it prints. */
  function runJson<T>(code: string, env: Record<string, string | undefined> = {}): T {
    const r = node(['-e', code], env);
    expect(r.status, r.stderr).to.equal(0);
    return JSON.parse(r.stdout) as T;
  }

  before(function () {
    dir = mkdtempSync(path.join(tmpdir(), 'pts-pack-'));
    execFileSync('npm', ['pack', '--pack-destination', dir], {
      cwd: root,
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const tgz = readdirSync(dir).find((f) => f.endsWith('.tgz'));
    expect(tgz, 'tarball').to.be.a('string');
    writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'pts-consumer', private: true }));
    // --prefer-offline: the registry is only asked for what the npm cache does not have yet.
    execFileSync(
      'npm',
      [
        'install',
        '--no-audit',
        '--no-fund',
        '--ignore-scripts',
        '--prefer-offline',
        `./${tgz}`,
        'mongoose@^9',
      ],
      { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] },
    );
    pkgDir = path.join(dir, 'node_modules', 'persistent-task-status');
  });
  after(function () {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('ships compiled JavaScript with type declarations for each entry point', function () {
    for (const entry of ['index', 'server', 'testing']) {
      expect(existsSync(path.join(pkgDir, 'dist', 'lib', `${entry}.js`)), `${entry}.js`).to.equal(true);
      expect(existsSync(path.join(pkgDir, 'dist', 'lib', `${entry}.d.ts`)), `${entry}.d.ts`).to.equal(true);
    }
    expect(existsSync(path.join(pkgDir, 'lib')), 'TypeScript sources are not shipped').to.equal(false);
  });

  it('does not install mongodb-memory-server: it is an optional peer dependency', function () {
    const manifest = JSON.parse(readFileSync(path.join(pkgDir, 'package.json'), 'utf8')) as {
      dependencies?: Record<string, string>;
      peerDependencies?: Record<string, string>;
      peerDependenciesMeta?: Record<string, { optional?: boolean }>;
    };
    expect(manifest.dependencies ?? {}).to.not.have.property('mongodb-memory-server');
    expect(manifest.peerDependencies).to.have.property('mongodb-memory-server');
    expect(manifest.peerDependenciesMeta?.['mongodb-memory-server']?.optional).to.equal(true);
    expect(existsSync(path.join(dir, 'node_modules', 'mongodb-memory-server'))).to.equal(false);
    expect(existsSync(path.join(dir, 'node_modules', 'mongodb-memory-server-core'))).to.equal(false);
  });

  it("works with require('persistent-task-status').client and with import { createClient }", function () {
    const cjs = node([
      '-e',
      "const m = require('persistent-task-status'); console.log(typeof m.client.getOrCreateTaskContainer, typeof m.createClient, m.TASK_STATES.join(','))",
    ]);
    expect(cjs.status, cjs.stderr).to.equal(0);
    expect(cjs.stdout.trim()).to.equal(
      'function function pending,running,succeeded,failed,skipped,cancelled',
    );
    const esm = node([
      '--input-type=module',
      '-e',
      "import { createClient, client, LeaseLostError } from 'persistent-task-status'; console.log(typeof createClient, typeof client.addListener === 'undefined', new LeaseLostError('x').code)",
    ]);
    expect(esm.status, esm.stderr).to.equal(0);
    expect(esm.stdout.trim()).to.equal('function true PTS_LEASE_LOST');
  });

  it("require('persistent-task-status') loads the library only, and compiles no mongoose model", function () {
    const loaded = runJson<{ modules: string[]; models: string[]; exports: string[] }>(
      "const m = require('persistent-task-status'); const mongoose = require('mongoose');" +
        'console.log(JSON.stringify({ modules: Object.keys(require.cache), models: Object.keys(mongoose.connection.models),' +
        ' exports: Object.keys(m) }))',
    );
    const own = loaded.modules.filter((f) => f.startsWith(pkgDir + path.sep));
    expect(own.length, 'the package itself was loaded').to.be.greaterThan(0);
    const forbidden = loaded.modules.filter(
      (f) =>
        FORBIDDEN_PACKAGES.some((p) => f.includes(`${path.sep}node_modules${path.sep}${p}${path.sep}`)) ||
        FORBIDDEN_MODULES.test(f),
    );
    expect(forbidden, 'modules the library entry must not load').to.deep.equal([]);
    expect(loaded.models, 'models are compiled on first use, not at require time').to.deep.equal([]);
    for (const gone of [
      'buildServer',
      'startServer',
      'InsecureBindError',
      'TokenStore',
      'TOKEN_SCOPES',
      'scopeAllows',
      'createMetrics',
      'startEmbeddedServer',
      'startFerretDB',
    ])
      expect(loaded.exports, `${gone} moved to /server or /testing`).to.not.include(gone);
    for (const kept of [
      'client',
      'createClient',
      'Client',
      'TaskContainer',
      'TaskLease',
      'Task',
      'changes',
      'ManualClock',
      'systemClock',
      'TRANSITIONS',
      'TASK_OPERATIONS',
      'PtsError',
      'DatabaseError',
    ])
      expect(loaded.exports).to.include(kept);
  });

  it("require('persistent-task-status/server') and '/testing' export the HTTP service and the test-server launcher", function () {
    const types = runJson<Record<string, string>>(
      "const s = require('persistent-task-status/server'); const t = require('persistent-task-status/testing');" +
        'const pick = (m, names) => Object.fromEntries(names.map((n) => [n, typeof m[n]]));' +
        "console.log(JSON.stringify({ ...pick(s, ['buildServer', 'startServer', 'InsecureBindError', 'registerDashboard', 'createMetrics', 'TokenStore', 'scopeAllows'])," +
        " TOKEN_SCOPES: s.TOKEN_SCOPES.join(','), ...pick(t, ['startEmbeddedServer', 'startFerretDB', 'probeAtomicity']), manifest: typeof require('persistent-task-status/package.json').version }))",
    );
    expect(types).to.deep.equal({
      buildServer: 'function',
      startServer: 'function',
      InsecureBindError: 'function',
      registerDashboard: 'function',
      createMetrics: 'function',
      TokenStore: 'function',
      scopeAllows: 'function',
      TOKEN_SCOPES: 'read,worker,admin',
      startEmbeddedServer: 'function',
      startFerretDB: 'function',
      probeAtomicity: 'function',
      manifest: 'string',
    });
  });

  it("serves the dashboard's charting library (uPlot) from the installed dependency under /ui/vendor/", function () {
    const answers = runJson<Array<[string, number, string, boolean]>>(
      "const path = require('path'); const { registerDashboard } = require('persistent-task-status/server');" +
        "const Fastify = require(require.resolve('fastify', { paths: [path.dirname(require.resolve('persistent-task-status/package.json'))] }));" +
        'const app = Fastify(); registerDashboard(app);' +
        "const urls = ['/ui/vendor/uplot.js', '/ui/vendor/uplot.css', '/ui/pipelines.js', '/ui/vendor/package.json'];" +
        'Promise.all(urls.map((u) => app.inject(u))).then((rs) => {' +
        "  console.log(JSON.stringify(rs.map((r, i) => [urls[i], r.statusCode, String(r.headers['content-type']).split(';')[0], /export \\{ uPlot as default \\}|\\.uplot|vendor\\/uplot\\.js/.test(r.body)])));" +
        '  return app.close();' +
        '});',
    );
    expect(answers).to.deep.equal([
      ['/ui/vendor/uplot.js', 200, 'text/javascript', true],
      ['/ui/vendor/uplot.css', 200, 'text/css', true],
      ['/ui/pipelines.js', 200, 'text/javascript', true],
      ['/ui/vendor/package.json', 404, 'application/json', false],
    ]);
  });

  it('the three entries work from ESM: named imports and import()', function () {
    writeFileSync(
      path.join(dir, 'entries.mjs'),
      [
        "import { createClient, TRANSITIONS } from 'persistent-task-status';",
        "import { buildServer, startServer, InsecureBindError, registerDashboard, createMetrics, TokenStore, TOKEN_SCOPES, scopeAllows } from 'persistent-task-status/server';",
        "import { startEmbeddedServer, startFerretDB } from 'persistent-task-status/testing';",
        'const named = [createClient, buildServer, startServer, InsecureBindError, registerDashboard, createMetrics, TokenStore, scopeAllows, startEmbeddedServer, startFerretDB];',
        "const lib = await import('persistent-task-status');",
        "const server = await import('persistent-task-status/server');",
        "const testing = await import('persistent-task-status/testing');",
        'console.log(JSON.stringify({',
        "  named: named.every((f) => typeof f === 'function') && Array.isArray(TOKEN_SCOPES) && typeof TRANSITIONS === 'object',",
        '  dynamic: [lib.createClient, server.startServer, testing.startEmbeddedServer].map((f) => typeof f),',
        "  libHasServer: 'startServer' in lib,",
        '}));',
      ].join('\n'),
    );
    const r = node(['entries.mjs']);
    expect(r.status, r.stderr).to.equal(0);
    expect(JSON.parse(r.stdout)).to.deep.equal({
      named: true,
      dynamic: ['function', 'function', 'function'],
      libHasServer: false,
    });
  });

  it('startEmbeddedServer without mongodb-memory-server: a DatabaseError that says how to install it', function () {
    const err = runJson<{
      name: string;
      code: string;
      missing: string;
      message: string;
      isDatabaseError: boolean;
    }>(
      "const { startEmbeddedServer } = require('persistent-task-status/testing'); const { DatabaseError } = require('persistent-task-status');" +
        'startEmbeddedServer({ log: () => {} }).then(' +
        '  (s) => { console.log(JSON.stringify({ started: s.kind })); return s.stop(); },' +
        '  (e) => console.log(JSON.stringify({ name: e.name, code: e.code, missing: e.details && e.details.missing, message: e.message, isDatabaseError: e instanceof DatabaseError })));',
      { MONGODB_URI: undefined, PTS_EMBEDDED_SERVER: 'mongodb-memory-server' },
    );
    expect(err).to.deep.include({
      name: 'DatabaseError',
      code: 'PTS_DATABASE',
      missing: 'mongodb-memory-server',
      isDatabaseError: true,
    });
    expect(err.message).to.include(
      'install mongodb-memory-server (npm i -D mongodb-memory-server) or pass MONGODB_URI / use FerretDB',
    );
  });

  it('`pts demo` without mongodb-memory-server and without FerretDB prints the install hint and exits 3', function () {
    const r = node(
      [
        path.join(pkgDir, 'dist', 'lib', 'cli', 'main.js'),
        'demo',
        '--no-open',
        '--port',
        '0',
        '--fast',
        '--exit-when-done',
      ],
      {
        MONGODB_URI: undefined,
        PTS_EMBEDDED_SERVER: undefined,
        PTS_FERRETDB_BIN: path.join(dir, 'no-such-ferretdb'),
      },
    );
    expect(r.status, `${r.stdout}\n${r.stderr}`).to.equal(3);
    expect(r.stderr).to.include('pts: demo: no database to run on');
    expect(r.stderr).to.include(
      'install mongodb-memory-server (npm i -D mongodb-memory-server) or pass MONGODB_URI / use FerretDB',
    );
    expect(r.stderr).to.include('no-such-ferretdb is not an executable file');
  });

  it('type-checks a consumer importing the three entries (node16 resolution, CommonJS and ESM; node10 via typesVersions)', function () {
    const body = [
      "import { createClient, TRANSITIONS, type Client, type TaskRecord } from 'persistent-task-status';",
      "import { startServer, TokenStore, createMetrics, registerDashboard, type ServerOptions, type RunningServer, type Metrics, type TokenScope } from 'persistent-task-status/server';",
      "import { startEmbeddedServer, startFerretDB, type EmbeddedServer, type EmbeddedServerOptions } from 'persistent-task-status/testing';",
      '// @ts-expect-error the HTTP service is not part of the library entry any more',
      "import { startServer as notHere } from 'persistent-task-status';",
      'export async function main(): Promise<void> {',
      '  const opts: EmbeddedServerOptions = { log: () => undefined };',
      '  const db: EmbeddedServer = await startEmbeddedServer(opts);',
      '  const client: Client = createClient();',
      '  const serverOptions: ServerOptions = { client, auth: { tokens: new TokenStore(client) } };',
      '  const running: RunningServer = await startServer(serverOptions);',
      '  const metrics: Metrics = createMetrics(client);',
      "  const scope: TokenScope = 'read';",
      '  const task: TaskRecord | null = null;',
      '  void [db, running, metrics, scope, task, TRANSITIONS, startFerretDB, registerDashboard, notHere];',
      '}',
    ].join('\n');
    writeFileSync(path.join(dir, 'consumer.ts'), body);
    writeFileSync(path.join(dir, 'consumer.mts'), body);
    const common = [
      '--noEmit',
      '--strict',
      '--skipLibCheck', // as most consumers' tsconfig; the consumer's own code is still checked against our .d.ts
      '--types',
      'node',
      '--typeRoots',
      path.join(root, 'node_modules', '@types'),
    ];
    for (const [label, args] of [
      [
        'node16',
        [
          '--moduleResolution',
          'node16',
          '--module',
          'node16',
          '--target',
          'es2022',
          'consumer.ts',
          'consumer.mts',
        ],
      ],
      [
        'node10',
        [
          '--moduleResolution',
          'node10',
          '--module',
          'commonjs',
          '--target',
          'es2022',
          '--esModuleInterop',
          'consumer.ts',
        ],
      ],
    ] as const) {
      const r = spawnSync(tsc, [...common, ...args], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
      expect(r.status, `${label}: ${r.stdout}${r.stderr}`).to.equal(0);
    }
  });

  it("runs the original README's JavaScript samples verbatim (apart from the connection string)", function () {
    copyFileSync(path.join(root, 'examples', 'seed-readme.js'), path.join(dir, 'seed-readme.js'));
    const run = () => node(['seed-readme.js'], { MONGODB_URI: db.uri });
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
