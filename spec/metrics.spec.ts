import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import mongoose from 'mongoose';
import { CliError, EXIT } from '../lib/cli/exit';
import { metricsLabelOptions } from '../lib/cli/serve';
import { createClient } from '../lib/client';
import { ManualClock } from '../lib/clock';
import { ValidationError } from '../lib/errors';
import { MAX_LABEL_LENGTH, containerGroup, resolveLabelOptions, stepLabel } from '../lib/metric-labels';
import { createMetrics, type Metrics } from '../lib/metrics';
import { useTestDatabase } from './helpers/db';
import { startFixture } from './http/support';

describe('metrics', function () {
  const db = useTestDatabase();

  it('counts tasks by state at scrape time and transitions/failures from events', async function () {
    const client = createClient({ connection: db.connection });
    const m = createMetrics(client);
    try {
      const c = await client.getOrCreateTaskContainer('m1');
      await c.addTasks([{ name: 'a' }, { name: 'b', maxRetries: 0 }, { name: 'c' }]);
      const l1 = await client.claimNext({ container: 'm1' }, { owner: 'w' });
      await l1!.succeed(null);
      const l2 = await client.claimNext({ container: 'm1' }, { owner: 'w' });
      await l2!.fail(new Error('no'), { retryable: false });
      m.httpDuration.observe({ method: 'GET', route: '/x', status: '200' }, 0.01);
      const text = await m.text();
      expect(text).to.match(/pts_tasks\{state="succeeded"\} 1\b/);
      expect(text).to.match(/pts_tasks\{state="failed"\} 1\b/);
      expect(text).to.match(/pts_tasks\{state="pending"\} 1\b/);
      expect(text).to.match(/pts_task_transitions_total\{transition="added"\} 3\b/);
      expect(text).to.match(/pts_task_transitions_total\{transition="started"\} 2\b/);
      expect(text).to.match(/pts_task_failures_total\{final="true"\} 1\b/);
      expect(text).to.match(/pts_containers 1\b/);
      expect(text).to.match(
        /pts_http_request_duration_seconds_count\{method="GET",route="\/x",status="200"\} 1\b/,
      );
    } finally {
      m.close();
    }
    // after close(), events are no longer counted
    const c = await client.getTaskContainer('m1');
    await c!.addTask('d', null);
    expect(await m.text()).to.match(/pts_task_transitions_total\{transition="added"\} 3\b/);
  });

  it('counts lease expiries found by the sweep', async function () {
    const { ManualClock } = await import('../lib/clock');
    const clock = new ManualClock();
    const client = createClient({ connection: db.connection, clock, leaseMs: 1_000 });
    const m = createMetrics(client);
    try {
      const c = await client.getOrCreateTaskContainer('m2');
      await c.addTask('x', null);
      await client.claimNext({ container: 'm2' }, { owner: 'dead' });
      clock.advance(5_000);
      const r = await client.recoverStale({ container: 'm2' });
      expect(r.recovered).to.have.length(1);
      expect(await m.text()).to.match(/pts_lease_expiries_total 1\b/);
    } finally {
      m.close();
    }
  });
});

/** The observations of one histogram, by label set: count, sum and cumulative bucket counts. */
interface Observed {
  count: number;
  sum: number;
  buckets: Record<string, number>;
}

async function histogram(m: Metrics, name: string): Promise<Map<string, Observed>> {
  const metric = m.registry.getSingleMetric(name);
  expect(metric, name).to.not.equal(undefined);
  const out = new Map<string, Observed>();
  for (const v of (await metric!.get()).values) {
    const { le, ...rest } = v.labels as Record<string, string | number>;
    const key = Object.entries(rest)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([k, x]) => `${k}=${x}`)
      .join(',');
    const o = out.get(key) ?? { count: 0, sum: 0, buckets: {} };
    const metricName = (v as { metricName?: string }).metricName;
    if (metricName === `${name}_count`) o.count = v.value;
    else if (metricName === `${name}_sum`) o.sum = v.value;
    else if (metricName === `${name}_bucket`) o.buckets[String(le)] = v.value;
    out.set(key, o);
  }
  return out;
}

describe('metrics: step duration and queue wait histograms', function () {
  const db = useTestDatabase();

  it('observes each attempt (claim → end, by outcome) and each claim (ready → claimed) on the stored times', async function () {
    const clock = new ManualClock(new Date('2026-12-01T03:00:00.000Z'));
    const client = createClient({ connection: db.connection, clock, leaseMs: 600_000 });
    const m = createMetrics(client);
    try {
      // A pipeline run's container: its group is the pipeline's name.
      const c = await client.getOrCreateTaskContainer('nightly@2026-12-01T03:00:00.000Z');
      await c.addTasks([
        { name: 'extract' },
        { name: 'load', dependsOn: ['extract'], maxRetries: 1, retryDelayMs: 5_000, backoff: 'fixed' },
      ]);
      const claim = async (name: string) => {
        const l = await client.claimNext({ container: c.name(), names: [name] }, { owner: 'w' });
        expect(l, name).to.not.equal(null);
        return l!;
      };
      clock.advance(2_000); // extract waited 2 s since it was added
      const e = await claim('extract');
      clock.advance(3_000); // ran 3 s
      await e.succeed('ok'); // load is unblocked now (unblockedAt)
      clock.advance(4_000); // load waited 4 s since extract finished
      const l1 = await claim('load');
      clock.advance(1_500);
      await l1.fail(new Error('connection reset')); // retry in 5 s
      clock.advance(7_000); // claimable 5 s after the failure: waited 2 s
      const l2 = await claim('load');
      clock.advance(20_000);
      await l2.succeed(null);

      const d = await histogram(m, 'pts_step_duration_seconds');
      expect([...d.keys()].sort()).to.deep.equal([
        'group=nightly,outcome=failed,step=load',
        'group=nightly,outcome=succeeded,step=extract',
        'group=nightly,outcome=succeeded,step=load',
      ]);
      const ex = d.get('group=nightly,outcome=succeeded,step=extract')!;
      expect(ex.count).to.equal(1);
      expect(ex.sum).to.be.closeTo(3, 1e-9);
      expect(ex.buckets['1']).to.equal(0);
      expect(ex.buckets['5']).to.equal(1);
      expect(ex.buckets['+Inf']).to.equal(1);
      expect(d.get('group=nightly,outcome=failed,step=load')).to.include({ count: 1, sum: 1.5 });
      const ok = d.get('group=nightly,outcome=succeeded,step=load')!;
      expect(ok).to.include({ count: 1, sum: 20 });
      expect(ok.buckets['15']).to.equal(0);
      expect(ok.buckets['30']).to.equal(1);

      const w = await histogram(m, 'pts_queue_wait_seconds');
      expect([...w.keys()].sort()).to.deep.equal(['group=nightly,step=extract', 'group=nightly,step=load']);
      expect(w.get('group=nightly,step=extract')).to.include({ count: 1, sum: 2 });
      const lw = w.get('group=nightly,step=load')!;
      expect(lw.count).to.equal(2);
      expect(lw.sum).to.be.closeTo(4 + 2, 1e-9); // 4 s behind its dependency, 2 s after its backoff
      expect(lw.buckets['1']).to.equal(0);
      expect(lw.buckets['5']).to.equal(2);

      // the stored field behind the dependency wait
      const load = await c.getTask('load');
      expect(
        (await db.connection
          .db!.collection('pts_tasks')
          .findOne({ _id: new mongoose.Types.ObjectId(load!.id) }))!.unblockedAt,
      ).to.deep.equal(new Date('2026-12-01T03:00:05.000Z'));
      // the counts that existed before stay
      const text = await m.text();
      expect(text).to.match(/pts_tasks\{state="succeeded"\} 2\b/);
      expect(text).to.match(/pts_task_transitions_total\{transition="started"\} 3\b/);
      expect(text).to.match(/pts_task_failures_total\{final="false"\} 1\b/);
    } finally {
      m.close();
    }
  });

  it('observes attempts ended by the sweep (lease expired), a release and a cancel, and nothing for tasks never claimed', async function () {
    const clock = new ManualClock(new Date('2026-12-01T04:00:00.000Z'));
    const client = createClient({ connection: db.connection, clock, leaseMs: 10_000 });
    const m = createMetrics(client);
    try {
      const c = await client.getOrCreateTaskContainer('ops/a');
      await c.addTasks([{ name: 'x' }, { name: 'y' }, { name: 'z' }, { name: 'never' }]);
      const x = await client.claimNext({ container: 'ops/a', names: ['x'] }, { owner: 'dead' });
      expect(x).to.not.equal(null);
      const y = await client.claimNext({ container: 'ops/a', names: ['y'] }, { owner: 'w' });
      const z = await client.claimNext({ container: 'ops/a', names: ['z'] }, { owner: 'w' });
      clock.advance(4_000);
      await y!.release();
      await c.cancel('z');
      clock.advance(20_000);
      expect((await client.recoverStale({ container: 'ops/a' })).recovered).to.have.length(1);
      await c.cancel('never');
      void z;
      const d = await histogram(m, 'pts_step_duration_seconds');
      expect(d.get('group=ops,outcome=released,step=y')).to.include({ count: 1, sum: 4 });
      expect(d.get('group=ops,outcome=cancelled,step=z')).to.include({ count: 1, sum: 4 });
      expect(d.get('group=ops,outcome=interrupted,step=x')).to.include({ count: 1, sum: 24 });
      expect([...d.keys()].filter((k) => k.includes('never'))).to.deep.equal([]);
      expect((await histogram(m, 'pts_queue_wait_seconds')).get('group=ops,step=x')).to.include({
        count: 1,
        sum: 0,
      });
    } finally {
      m.close();
    }
  });

  it('bounds the label sets: run containers by pipeline, prefixes, path segments, children as parent/*, a cap with other', async function () {
    const labels = resolveLabelOptions({ groupPrefixes: ['imports-', 'imports-eu-'], groupSegments: 2 });
    expect(containerGroup('nightly@2026-12-01T03:00:00.000Z', labels)).to.equal('nightly');
    expect(containerGroup('a@b@2026-12-01T03:00:00.000Z', labels)).to.equal('a@b');
    expect(containerGroup('imports-eu-2026-12-01', labels)).to.equal('imports-eu-');
    expect(containerGroup('imports-us-7', labels)).to.equal('imports-');
    expect(containerGroup('tenant/42/file-9', labels)).to.equal('tenant/42');
    expect(containerGroup('x'.repeat(300), labels)).to.have.length(MAX_LABEL_LENGTH);
    expect(stepLabel({ name: 'fetch/17', parent: 'fetch' })).to.equal('fetch/*');
    expect(stepLabel({ name: 'fetch', parent: null })).to.equal('fetch');
    expect(() => resolveLabelOptions({ maxLabelSets: 0 })).to.throw(ValidationError);
    expect(() =>
      createMetrics(createClient({ connection: db.connection }), { stepDurationBuckets: [5, 1] }),
    ).to.throw(ValidationError);
    // pts serve's flags
    expect(
      metricsLabelOptions({ metricsGroupPrefix: 'imports/,exports-', metricsMaxLabelSets: '50' }),
    ).to.deep.equal({
      groupPrefixes: ['imports/', 'exports-'],
      maxLabelSets: 50,
    });
    expect(metricsLabelOptions({})).to.deep.equal({});
    for (const bad of ['0', '-1', '1.5', 'many', ''])
      expect(() => metricsLabelOptions({ metricsMaxLabelSets: bad }), bad)
        .to.throw(CliError)
        .with.property('exitCode', EXIT.USAGE);

    const clock = new ManualClock(new Date('2026-12-01T05:00:00.000Z'));
    const client = createClient({ connection: db.connection, clock });
    const m = createMetrics(client, { maxLabelSets: 3 });
    try {
      // 4 containers × 2 steps: 8 raw pairs, 2 groups (files0, files1) × 2 steps = 4 pairs, cap 3.
      for (let i = 0; i < 4; i++) {
        const c = await client.getOrCreateTaskContainer(`files${i % 2}/${i}`);
        await c.addTasks([{ name: 'parse' }, { name: 'store', dependsOn: ['parse'] }]);
      }
      for (let n = 0; n < 8; n++) {
        const l = await client.claimNext({ container: `files${n % 2}/${n % 4}` }, { owner: 'w' });
        expect(l).to.not.equal(null);
        clock.advance(1_000);
        await l!.succeed(null);
      }
      // a spawning parent: its 10 children are one step, parent/*
      const p = await client.getOrCreateTaskContainer('files0/fanout');
      await p.addTask('split', null);
      const parent = await client.claimNext({ container: 'files0/fanout' }, { owner: 'w' });
      await parent!.spawn(Array.from({ length: 10 }, (_, i) => ({ name: `split/${i}` })));
      await parent!.succeed(null);
      for (let n = 0; n < 10; n++)
        await (await client.claimNext({ container: 'files0/fanout' }, { owner: 'w' }))!.succeed(null);

      const d = await histogram(m, 'pts_step_duration_seconds');
      const pairs = new Set([...d.keys()].map((k) => k.replace(/outcome=[a-z]+,?/, '')));
      expect(pairs.size).to.be.at.most(4); // 3 admitted + other
      expect(pairs).to.include('group=other,step=other');
      const total = [...d.values()].reduce((s, o) => s + o.count, 0);
      expect(total).to.equal(8 + 1 + 10); // nothing dropped: the overflow is counted under other
      const text = await m.text();
      const overflow = Number(/pts_step_label_overflow_total (\d+)/.exec(text)![1]);
      expect(overflow).to.be.greaterThan(0);
      expect(overflow).to.equal(
        d.get('group=other,outcome=succeeded,step=other')!.count +
          (await histogram(m, 'pts_queue_wait_seconds')).get('group=other,step=other')!.count,
      );
      expect(text).to.not.match(/step="split\/\d+"/);
    } finally {
      m.close();
    }

    // without a cap in the way, the children are one step `split/*`
    const m2 = createMetrics(client);
    try {
      const p = await client.getOrCreateTaskContainer('files1/fanout');
      await p.addTask('split', null);
      const parent = await client.claimNext({ container: 'files1/fanout' }, { owner: 'w' });
      await parent!.spawn(Array.from({ length: 3 }, (_, i) => ({ name: `split/${i}` })));
      await parent!.succeed(null);
      for (let n = 0; n < 3; n++)
        await (await client.claimNext({ container: 'files1/fanout' }, { owner: 'w' }))!.succeed(null);
      const d = await histogram(m2, 'pts_step_duration_seconds');
      expect(d.get('group=files1,outcome=succeeded,step=split/*')!.count).to.equal(3);
      expect(d.get('group=files1,outcome=succeeded,step=split')!.count).to.equal(1);
    } finally {
      m2.close();
    }
  });

  it('observes attempts ended by their deadline as timeout / stalled, for the retry and the final failure alike', async function () {
    const clock = new ManualClock(new Date('2026-12-01T06:00:00.000Z'));
    const client = createClient({ connection: db.connection, clock, leaseMs: 600_000 });
    const m = createMetrics(client);
    try {
      const c = await client.getOrCreateTaskContainer('deadline/a');
      await c.addTasks([
        { name: 'slow', timeoutMs: 5_000, maxRetries: 1, retryDelayMs: 1_000, backoff: 'fixed' },
        { name: 'quiet', stallMs: 3_000, maxRetries: 0 },
      ]);
      expect(
        await client.claimNext({ container: 'deadline/a', names: ['slow'] }, { owner: 'w' }),
      ).to.not.equal(null);
      expect(
        await client.claimNext({ container: 'deadline/a', names: ['quiet'] }, { owner: 'w' }),
      ).to.not.equal(null);
      clock.advance(7_000);
      await client.recoverStale({ container: 'deadline/a' }); // both past their deadline: slow retries, quiet fails
      clock.advance(1_000);
      expect(
        await client.claimNext({ container: 'deadline/a', names: ['slow'] }, { owner: 'w' }),
      ).to.not.equal(null);
      clock.advance(9_000);
      await client.recoverStale({ container: 'deadline/a' }); // slow's second attempt: failed for good
      const d = await histogram(m, 'pts_step_duration_seconds');
      expect(d.get('group=deadline,outcome=timeout,step=slow')).to.include({ count: 2, sum: 7 + 9 });
      expect(d.get('group=deadline,outcome=stalled,step=quiet')).to.include({ count: 1, sum: 7 });
      expect([...d.keys()].filter((k) => !/outcome=(timeout|stalled)/.test(k))).to.deep.equal([]);
    } finally {
      m.close();
    }
  });

  it('pts serve counts the attempts of HTTP workers on its /metrics, and the Grafana dashboard uses only metrics it exposes', async function () {
    const f = await startFixture(db);
    try {
      const c = await f.client.getOrCreateTaskContainer('http-m');
      await c.addTasks([{ name: 'a' }, { name: 'b', maxRetries: 0 }]);
      for (const outcome of ['succeed', 'fail'] as const) {
        const r = await f.call('POST', '/api/v1/claim', {
          token: f.token.worker,
          body: { container: 'http-m', owner: 'remote' },
        });
        expect(r.status, JSON.stringify(r.body)).to.equal(200);
        const t = r.body.task ?? r.body;
        const body =
          outcome === 'succeed'
            ? { token: t.lease.token, result: 1 }
            : { token: t.lease.token, error: { message: 'no' }, retryable: false };
        const done = await f.call('POST', `/api/v1/containers/http-m/tasks/${t.name}/${outcome}`, {
          token: f.token.worker,
          body,
        });
        expect(done.status, JSON.stringify(done.body)).to.equal(200);
      }
      const text = (await f.call('GET', '/metrics', { token: null })).body as string;
      expect(text).to.match(
        /pts_step_duration_seconds_count\{group="http-m",step="a",outcome="succeeded"\} 1\b/,
      );
      expect(text).to.match(
        /pts_step_duration_seconds_count\{group="http-m",step="b",outcome="failed"\} 1\b/,
      );
      expect(text).to.match(/pts_queue_wait_seconds_count\{group="http-m",step="a"\} 1\b/);

      // The dashboard: valid Grafana JSON, and every metric its PromQL names is on /metrics.
      const dash = JSON.parse(
        readFileSync(path.join(__dirname, '..', 'docs', 'grafana', 'persistent-task-status.json'), 'utf8'),
      );
      expect(dash.schemaVersion).to.be.a('number').and.at.least(30);
      expect(dash.uid).to.be.a('string');
      const vars = dash.templating.list as Array<{ name: string; type: string; query: unknown }>;
      expect(vars.find((v) => v.type === 'datasource')).to.include({
        name: 'datasource',
        query: 'prometheus',
      });
      const exposed = new Set<string>();
      for (const line of text.split('\n')) {
        const mt = /^# TYPE (\S+) (\S+)/.exec(line);
        if (!mt) continue;
        exposed.add(mt[1]);
        if (mt[2] === 'histogram') for (const s of ['_bucket', '_sum', '_count']) exposed.add(mt[1] + s);
      }
      const panels = (
        dash.panels as Array<{
          type: string;
          targets?: Array<{ expr: string }>;
          datasource?: { uid: string };
        }>
      ).filter((p) => p.type !== 'row');
      expect(panels.length).to.be.at.least(10);
      const used = new Set<string>();
      const exprs = [
        ...panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)),
        ...vars.map((v) => JSON.stringify(v.query)),
      ];
      for (const p of panels) {
        expect(p.datasource?.uid).to.equal('${datasource}');
        expect(p.targets, JSON.stringify(p)).to.have.length.at.least(1);
      }
      for (const e of exprs) for (const n of e.match(/\bpts_[a-z_]+/g) ?? []) used.add(n);
      expect(used.size).to.be.at.least(10);
      expect(
        [...used].filter((n) => !exposed.has(n)),
        'metrics the dashboard uses that /metrics does not expose',
      ).to.deep.equal([]);
      for (const n of [
        'pts_tasks',
        'pts_task_transitions_total',
        'pts_task_failures_total',
        'pts_step_duration_seconds_bucket',
        'pts_queue_wait_seconds_bucket',
        'pts_http_request_duration_seconds_bucket',
      ])
        expect(used, n).to.include(n);

      // The OpenAPI document names the same metrics (each exposed, each family listed).
      const doc = (await f.call('GET', '/openapi.json', { token: null })).body;
      const described = new Set<string>(
        doc.paths['/metrics'].get.responses['200'].description.match(/\bpts_[a-z_]+/g),
      );
      const families = [...text.matchAll(/^# TYPE (\S+) /gm)].map((x) => x[1]);
      expect(
        [...described].filter((n) => !exposed.has(n)),
        'described, not exposed',
      ).to.deep.equal([]);
      expect(
        families.filter((n) => !described.has(n)),
        'exposed, not described',
      ).to.deep.equal([]);
    } finally {
      await f.close();
    }
  });
});
