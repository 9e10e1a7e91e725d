/**
 * Sizes of every section, by mode (full, --quick, --scale-1m) and server kind. Every scale-down
 * is recorded in `notes` with its reason; the notes go into the results and the doc.
 */

export interface Mode {
  /** `--quick`: fewer rounds and smaller sizes. */
  quick: boolean;
  /** `--scale-1m` (`npm run bench:scale`): section 4 only, up to 1M tasks. */
  scaleRun: boolean;
  /** `--concurrent` (`npm run bench:concurrent`): section 2 only, on a server that runs writes concurrently. */
  concurrent?: boolean;
}

export interface Config {
  /** Collection sizes of the scan probe (FerretDB only). */
  probeSizes: number[];
  rounds: number;
  heartbeatOps: number;
  succeedOps: number;
  pipelineTasks: number;
  pipelineRounds: number;
  concurrency: number[];
  bulkN: number;
  bulkSingleN: number;
  bulkRounds: number;
  scaleSizes: number[];
  scaleSamples: (size: number) => number;
  addTasksScaleN: number;
  rssTasks: number;
  floodCalls: number;
  floodRounds: number;
  /** Section 2: also the `claimNext` loop with one container per worker (no shared counter document). */
  spreadVariant: boolean;
  /** Section 2: the BullMQ reference row. */
  bullmq: boolean;
  notes: string[];
}

export function config(kind: string, { quick, scaleRun, concurrent }: Mode): Config {
  const ferret = kind === 'ferretdb';
  const notes: string[] = [];
  if (scaleRun) return scaleRunConfig(ferret, quick);
  if (concurrent) return concurrentRunConfig(ferret, quick);
  const c: Config = {
    probeSizes: quick ? [100, 1_000] : [100, 1_000, 5_000],
    rounds: quick ? 3 : 5,
    heartbeatOps: quick ? 40 : 100,
    succeedOps: quick ? 15 : 30,
    pipelineTasks: quick ? 40 : 100,
    pipelineRounds: quick ? 2 : 3,
    concurrency: [1, 4, 16],
    bulkN: 10_000,
    bulkSingleN: 10_000,
    bulkRounds: quick ? 2 : 3,
    scaleSizes: quick ? [10_000, 100_000] : [10_000, 100_000, 1_000_000],
    scaleSamples: (size) => (size >= 1_000_000 ? 5 : 10),
    addTasksScaleN: 100_000,
    rssTasks: 100_000,
    floodCalls: 100_000,
    floodRounds: quick ? 2 : 3,
    spreadVariant: false,
    bullmq: true,
    notes,
  };
  if (!ferret) {
    if (quick) {
      c.bulkN = 2_000;
      c.bulkSingleN = 1_000;
      c.rssTasks = 5_000;
      c.addTasksScaleN = 10_000;
      notes.push(
        'quick mode: bulk add 2,000 (single addTask: 1,000, compared as rates), RSS runner 5,000 tasks, scale 10k/100k',
      );
    }
    return c;
  }
  // FerretDB 1.24 on SQLite: updates and non-_id queries scan the whole collection (measured in
  // the scan probe and the explain section), so every cost grows with collection size.
  c.rounds = quick ? 3 : 5;
  c.heartbeatOps = quick ? 30 : 60;
  c.succeedOps = quick ? 10 : 15;
  c.pipelineTasks = quick ? 12 : 40;
  c.bulkN = quick ? 100 : 300;
  c.bulkSingleN = quick ? 30 : 100;
  c.scaleSizes = quick ? [1_000, 5_000] : [1_000, 10_000, 100_000];
  c.scaleSamples = (size) => (size >= 100_000 ? 1 : size >= 5_000 ? (quick ? 1 : 3) : quick ? 3 : 5);
  c.addTasksScaleN = c.bulkN;
  c.rssTasks = quick ? 60 : 400;
  notes.push(
    'FerretDB/SQLite scans the whole collection for every update and every non-_id filter (see the scan probe and section 6), so sizes are scaled down: ' +
      `pipeline ${c.pipelineTasks} tasks/round, bulk add ${c.bulkN} (single addTask ${c.bulkSingleN}, compared as rates), ` +
      `scale ${c.scaleSizes.map((x) => x.toLocaleString('en')).join(' / ')} tasks with ${c.scaleSizes.map((x) => c.scaleSamples(x)).join(' / ')} samples (no 1M: one claim would scan 1M documents, minutes each), ` +
      `addTasks scale case = the bulk-add size, RSS runner ${c.rssTasks} tasks. Run with MONGODB_URI against a real MongoDB for the full-size targets.`,
  );
  return c;
}

/** `--scale-1m`: only the scale section, at 10k / 100k / 1M tasks. */
function scaleRunConfig(ferret: boolean, quick: boolean): Config {
  const c = config('external', { quick, scaleRun: false });
  c.scaleSizes = [10_000, 100_000, 1_000_000];
  if (!ferret) return c;
  // FerretDB/PostgreSQL: equality filters run in Postgres, but a sorted claim still decodes every
  // pending document in Go (no sort or limit pushdown), about 4,000 documents/s here.
  c.scaleSamples = (size) => (size >= 1_000_000 ? 1 : size >= 100_000 ? 3 : 5);
  c.addTasksScaleN = 0;
  c.rssTasks = 0;
  c.notes.push(
    'FerretDB/PostgreSQL: 1 / 3 / 5 samples at 1M / 100k / 10k (a claim decodes every pending task in FerretDB: minutes at 1M); ' +
      'addTasks and runner RSS are not part of this run (see the main `npm run bench`: on FerretDB a runner claims ~4,000 pending documents/s, so 100k tasks through one runner would take days).',
  );
  return c;
}

/**
 * `--concurrent`: only the pipeline section, on a server that runs writes concurrently (FerretDB's
 * PostgreSQL handler without the serializing proxy, or MONGODB_URI), with the `claimNext` loop also
 * run on one container per worker: the same work without a counter document shared by the workers.
 */
function concurrentRunConfig(ferret: boolean, quick: boolean): Config {
  const c = config('external', { quick, scaleRun: false });
  c.notes.length = 0; // the main run's scale-downs are not this run's
  c.spreadVariant = true;
  c.bullmq = false;
  c.pipelineRounds = quick ? 2 : 3;
  if (ferret) {
    // FerretDB/PostgreSQL pushes equality filters down but decodes every candidate of a sorted
    // claim in Go: claims cost grows with the pending tasks, so rounds stay small.
    c.pipelineTasks = quick ? 48 : 96;
    c.notes.push(
      `FerretDB/PostgreSQL: pipeline ${c.pipelineTasks} tasks/round (a sorted claim decodes every pending task in FerretDB); BullMQ not part of this run (another database: the main bench has its row).`,
    );
  }
  return c;
}
