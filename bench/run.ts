/**
 * The benchmark: `npm run bench` (full) or `npm run bench:quick`.
 *
 * Starts or uses a server (MONGODB_URI, else startEmbeddedServer: mongodb-memory-server, else
 * FerretDB), measures the library against the raw driver (the floor) and Agenda 6, side by side
 * and interleaved, and writes bench/results/latest.json (quick: bench/results/quick.json), the
 * plots docs/img/bench-*.svg and the generated block of docs/performance.md.
 *
 * Flags: --quick, --only=overhead,pipeline,bulk,docsize,scale,flood,explain (writes bench/results/partial.json, no doc), --no-doc, --doc (quick: also write the doc),
 * --replot (re-render plots and doc from the last JSON; with --scale-1m: from scale.json).
 *
 * `npm run bench:scale` (--scale-1m): only section 4 at 10k / 100k / 1M tasks. Without
 * MONGODB_URI it runs on FerretDB's PostgreSQL handler over a throwaway PostgreSQL cluster
 * (bench/postgres.ts), because FerretDB/SQLite pushes no filter down and a million-task container
 * there is hours of scanning. Writes bench/results/scale.json, docs/img/bench-scale-1m.svg and its
 * own generated block of docs/performance.md.
 *
 * `npm run bench:concurrent` (--concurrent): only section 2, on a server that runs writes
 * concurrently: without MONGODB_URI, FerretDB's PostgreSQL handler without tools/ferretdb's
 * serializing proxy, after the atomicity probe (lib/store/atomicity.ts) has shown that conditional
 * single-document writes stay atomic there (if not, nothing is measured and the probe's result is
 * the finding). Adds the `claimNext` loop with one container per worker (no shared counter
 * document). Writes bench/results/concurrent.json and its own block of docs/performance.md.
 *
 * Layout: this file is the driver (flags, server, section order, results JSON). Each section is
 * one module under bench/sections/ (probe, overhead, pipeline, bulk, scale, flood, explain); sizes
 * come from bench/config.ts, the shared connection/command-counting/timing helpers from
 * bench/harness.ts, the markdown, plots and doc writer from bench/report.ts.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Document } from 'mongodb';
import {
  probeAtomicity,
  startEmbeddedServer,
  startFerretDB,
  type AtomicityProbe,
  type EmbeddedServer,
} from '../lib/testing';
import { config } from './config';
import { Bench, ROOT, T0, log, machine } from './harness';
import { startPostgres, type Postgres } from './postgres';
import { md, plots, writeDoc } from './report';
import { bulk } from './sections/bulk';
import { docsize } from './sections/docsize';
import { explain } from './sections/explain';
import { flood } from './sections/flood';
import { overhead } from './sections/overhead';
import { pipeline } from './sections/pipeline';
import { scanProbe } from './sections/probe';
import { scale } from './sections/scale';
import { round } from './stats';

const argv = process.argv.slice(2);
const QUICK = argv.includes('--quick');
/** `npm run bench:scale`: section 4 only, up to 1M tasks (FerretDB/PostgreSQL unless MONGODB_URI). */
const SCALE_RUN = argv.includes('--scale-1m');
/** `npm run bench:concurrent`: section 2 only, on a server that runs writes concurrently. */
const CONCURRENT = argv.includes('--concurrent');
/** Which results file and generated doc block a run writes. */
const RUN_KIND: 'main' | 'scale' | 'concurrent' = SCALE_RUN ? 'scale' : CONCURRENT ? 'concurrent' : 'main';
const ONLY =
  argv
    .find((a) => a.startsWith('--only='))
    ?.slice(7)
    .split(',') ?? null;
const WRITE_DOC = argv.includes('--doc') || (!QUICK && !argv.includes('--no-doc'));
const want = (section: string): boolean =>
  SCALE_RUN ? section === 'scale' : CONCURRENT ? section === 'pipeline' : !ONLY || ONLY.includes(section);

/**
 * `--replot`: re-renders the plots and the generated doc block from the last results JSON
 * (bench/results/latest.json, or scale.json with --scale-1m) without measuring anything.
 */
function replot(): void {
  const file = path.join(
    ROOT,
    'bench',
    'results',
    { scale: 'scale.json', concurrent: 'concurrent.json', main: 'latest.json' }[RUN_KIND],
  );
  const results = JSON.parse(fs.readFileSync(file, 'utf8')) as Document;
  plots(results);
  writeDoc(md(results), RUN_KIND);
  log(`re-rendered docs/performance.md and docs/img/bench-*.svg from ${path.relative(ROOT, file)}`);
}

async function main(): Promise<void> {
  if (argv.includes('--replot')) return replot();
  let server: EmbeddedServer | undefined;
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      log(`${sig}: stopping the server`);
      void (server ? server.stop() : Promise.resolve()).finally(() => process.exit(130));
    });
  }
  const m = machine();
  log(`machine: ${m.cores} cores, ${m.memoryGb} GB, load ${(m.loadAvgAtStart as number[]).join(' ')}`);
  let pg: Postgres | undefined;
  /** True when the server pushes equality filters down (FerretDB/PostgreSQL; MongoDB uses indexes). */
  let pushdown = false;
  if ((SCALE_RUN || CONCURRENT) && !process.env.MONGODB_URI) {
    pg = await startPostgres(log);
    server = await startFerretDB({ postgresqlUrl: pg.url, serialize: !CONCURRENT, log: (l) => log(l) });
    server.description += ` over ${pg.version}`;
    pushdown = true;
  } else {
    server = await startEmbeddedServer({ log: (l) => log(l) });
  }
  log(`server: ${server.description}`);
  let atomicity: AtomicityProbe | null = null;
  if (CONCURRENT) {
    atomicity = await probeAtomicity(server.uri, { rounds: 50, connections: 16 });
    log(`atomicity probe: ${JSON.stringify(atomicity)}`);
  }
  const bench = new Bench(server, pushdown);
  const cfg = config(server.kind, { quick: QUICK, scaleRun: SCALE_RUN, concurrent: CONCURRENT });
  for (const n of cfg.notes) log(`note: ${n}`);
  const sections: Document = {};
  const failures: string[] = [];
  const section = async (name: string, fn: () => Promise<Document>): Promise<void> => {
    if (!want(name)) return;
    const t = performance.now();
    try {
      sections[name] = { ...(await fn()), seconds: round((performance.now() - t) / 1000, 1) };
    } catch (err) {
      failures.push(`${name}: ${(err as Error).message}`);
      log(`SECTION ${name} FAILED: ${(err as Error).stack}`);
    }
    log(`${name} done in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  };
  try {
    if (atomicity && !atomicity.atomic)
      failures.push(
        `atomicity probe failed (${atomicity.doubleWinners}/${atomicity.rounds} rounds with two winners of one conditional findOneAndUpdate, ${atomicity.lostIncrements}/${atomicity.rounds} with lost $inc): nothing measured, a server that loses writes cannot run the library`,
      );
    else if (server.kind === 'ferretdb' && !SCALE_RUN && !CONCURRENT)
      await section('probe', () => scanProbe(bench, cfg));
    if (!atomicity || atomicity.atomic) {
      await section('overhead', () => overhead(bench, cfg));
      await section('pipeline', () => pipeline(bench, cfg));
    }
    await section('bulk', () => bulk(bench, cfg));
    await section('docsize', () => docsize(bench));
    await section('flood', () => flood(bench, cfg));
    await section('explain', () => explain(bench));
    await section('scale', () => scale(bench, cfg));
  } finally {
    await bench.closeConnections();
    await server.stop();
    await pg?.stop();
  }
  const explainFailures =
    ((sections.explain as Document | undefined)?.failures as string[] | undefined) ?? [];
  for (const r of (((sections.scale as Document | undefined)?.rows as Document[] | undefined) ?? []).filter(
    (x) => x.error,
  ))
    failures.push(`scale ${r.size}: ${r.error}`);
  if (explainFailures.length) failures.push(`COLLSCAN / no index for: ${explainFailures.join(', ')}`);
  const results: Document = {
    command: `${process.env.MONGODB_URI ? 'MONGODB_URI=… ' : process.env.PTS_EMBEDDED_SERVER ? `PTS_EMBEDDED_SERVER=${process.env.PTS_EMBEDDED_SERVER} ` : ''}${SCALE_RUN ? 'npm run bench:scale' : CONCURRENT ? `npm run bench:concurrent${QUICK ? ' -- --quick' : ''}` : QUICK ? 'npm run bench:quick' : 'npm run bench'}${argv
      .filter((a) => a !== '--quick' && a !== '--scale-1m' && a !== '--concurrent')
      .map((a) => ` ${a}`)
      .join('')}`,
    argv,
    quick: QUICK,
    scaleRun: SCALE_RUN,
    concurrentRun: CONCURRENT,
    /** Whether the server runs writes concurrently: FerretDB behind tools/ferretdb's proxy does not. */
    concurrentServer: server.kind !== 'ferretdb' || CONCURRENT,
    atomicity,
    server: server.description,
    serverKind: server.kind,
    machine: m,
    loadAvgAtEnd: os.loadavg().map((v) => round(v, 2)),
    finishedAt: new Date().toISOString(),
    durationS: round((performance.now() - T0) / 1000, 1),
    notes: cfg.notes,
    failures,
    sections,
  };
  const outDir = path.join(ROOT, 'bench', 'results');
  fs.mkdirSync(outDir, { recursive: true });
  const out = path.join(
    outDir,
    SCALE_RUN
      ? 'scale.json'
      : CONCURRENT
        ? 'concurrent.json'
        : ONLY
          ? 'partial.json'
          : QUICK
            ? 'quick.json'
            : 'latest.json',
  );
  fs.writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
  const block = md(results);
  process.stdout.write(`\n${block}\n\n`);
  log(`wrote ${path.relative(ROOT, out)}`);
  if (WRITE_DOC && (SCALE_RUN || CONCURRENT || !ONLY)) {
    plots(results);
    writeDoc(block, RUN_KIND);
    log('wrote docs/performance.md and docs/img/bench-*.svg');
  }
  if (failures.length) {
    log(`FAILED: ${failures.join('; ')}`);
    process.exitCode = 1;
  }
}

main()
  .then(() => {
    // Exit explicitly: Agenda 6 leaves one ref'd 5-minute timer per processed job behind after
    // stop() (JobProcessor.checkIfJobIsStillAlive's delay, lockLifetime / 2), which otherwise
    // kept the process alive for 300 s after the results were written.
    process.exit(process.exitCode ?? 0);
  })
  .catch((err) => {
    process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
