// The pipelines page (docs/schedules.md): every schedule with its cron, zone, paused state, next
// fire times and skipped slots; per pipeline, its last runs as a grid of step states (one row per
// run, one column per step, coloured like the task badges), the duration trend of each step as a
// chart (uPlot, served from the package by lib/dashboard/plugin.ts, loaded on first use), and the
// admin actions trigger now, pause/unpause and backfill. Over the HTTP API only; every piece of
// data is inserted as text (see dom.js).
import { api, auth, request } from './api.js';
import { badge, clear, cls, displayName, duration, h, localIso, replace, visibleName } from './dom.js';
import { subscribe, throttle } from './live.js';
import { TASK_STATES } from './states.js';

/** Runs shown in the grid (rows); "Older runs" pages further with the API's cursor. */
export const RUNS_PAGE = 25;
/** Newest runs the duration chart looks at. */
const CHART_RUNS = 50;
/** Next fire times shown per schedule (the API may return more). */
const NEXT_SHOWN = 5;
/** Line colours of the chart's steps, in order (steps are not states: a palette of their own). */
const PALETTE = [
  '#1f6feb',
  '#d9480f',
  '#2f9e44',
  '#9c36b5',
  '#e8590c',
  '#0c8599',
  '#c2255c',
  '#5c940d',
  '#495057',
];

const runLink = (container) => `#/containers/${encodeURIComponent(container)}`;
export const pipelineLink = (pipeline) => `#/pipelines/${encodeURIComponent(pipeline)}`;

/**
 * Who may act on which name: the token's scope and prefix (`GET /api/v1/whoami`, which changes
 * nothing); the API lets a prefixed token act on a schedule whose name and pipeline both start
 * with the prefix. With authentication off everyone may. If the call fails: read-only.
 */
async function adminCheck() {
  if (auth.mode === 'open') return () => true;
  try {
    const me = await request('GET', '/whoami');
    return (pipeline) => me.scope === 'admin' && String(pipeline).startsWith(me.prefix || '');
  } catch {
    return () => false;
  }
}

/** `2026-12-01T22:00:00.000+01:00`, and how far off (`in 5m 03s`, `3m 05s ago`). */
function when(date) {
  const t = new Date(date).getTime();
  const d = t - Date.now();
  return h(
    'time',
    { datetime: new Date(t).toISOString(), title: new Date(t).toISOString() },
    localIso(date),
    h('span.muted', d >= 0 ? ` (in ${duration(d)})` : ` (${duration(-d)} ago)`),
  );
}

function skippedItem(r) {
  const range = r.count > 1 ? [' … ', localIso(r.lastSlot), ` (${r.count.toLocaleString()} slots)`] : null;
  return h(
    'li.skipped-slot',
    { dataset: { slot: new Date(r.slot).toISOString(), reason: r.reason || '' } },
    h('span', localIso(r.slot)),
    range,
    ' ',
    h(`span.reason.r-${cls(r.reason)}`, r.reason || 'skipped'),
  );
}

/** `YYYY-MM-DDTHH:mm` in the browser's zone, as `<input type=datetime-local>` wants it. */
function localInput(date) {
  const d = new Date(date);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** What an admin typed into each schedule's backfill form, kept across the page's refreshes. */
const drafts = new Map();

/** The admin buttons of one schedule: Trigger now, Pause/Unpause, and the Backfill form. */
function scheduleActions(s, ui, done) {
  const act = async (action, label) => {
    try {
      const r = await api.scheduleAction(s.name, action);
      if (action === 'trigger') {
        const status = r && (r.status || (r.run && r.run.status));
        ui.toast(`triggered ${visibleName(s.name)}${status ? `: ${status}` : ''}`);
      } else ui.toast(`${label} ${visibleName(s.name)}`);
    } catch (err) {
      ui.toast(`${action} failed: ${err.message}`, 'error');
    }
    done();
  };
  const now = Date.now();
  const draft = drafts.get(s.name) || { from: localInput(now - 3_600_000), to: localInput(now - 60_000) };
  const keep = () => drafts.set(s.name, { from: from.value, to: to.value });
  const input = (name) =>
    h('input', { type: 'datetime-local', name, required: true, value: draft[name], oninput: keep });
  const from = input('from');
  const to = input('to');
  const form = h(
    'form.backfill',
    {
      onsubmit: async (ev) => {
        ev.preventDefault();
        const a = new Date(from.value);
        const b = new Date(to.value);
        if (Number.isNaN(a.getTime()) || Number.isNaN(b.getTime()))
          return ui.toast('backfill: give both times', 'error');
        try {
          const r = await api.backfill(s.name, a.toISOString(), b.toISOString());
          const runs = Array.isArray(r) ? r : (r && (r.items || r.runs)) || [];
          ui.toast(
            `backfill ${visibleName(s.name)}: ${runs.length} slot${runs.length === 1 ? '' : 's'} decided`,
          );
        } catch (err) {
          ui.toast(`backfill failed: ${err.message}`, 'error');
        }
        done();
      },
    },
    h('label', 'From ', from),
    h('label', 'To ', to),
    h('button', { type: 'submit', class: 'small', dataset: { action: 'backfill' } }, 'Backfill'),
  );
  return h(
    'div.actions',
    h(
      'button',
      {
        type: 'button',
        class: 'small primary',
        dataset: { action: 'trigger' },
        title: "fire a run now (slot: the database clock's time), under the overlap policy",
        onclick: () => act('trigger', 'triggered'),
      },
      'Trigger now',
    ),
    h(
      'button',
      {
        type: 'button',
        class: 'small',
        dataset: { action: s.paused ? 'unpause' : 'pause' },
        title: s.paused
          ? 'slots due while paused are recorded as skipped; the next slot after now fires'
          : 'no slot fires while paused (each is recorded as skipped, reason "paused")',
        onclick: () => (s.paused ? act('unpause', 'unpaused') : act('pause', 'paused')),
      },
      s.paused ? 'Unpause' : 'Pause',
    ),
    h(
      'details.backfill-box',
      { dataset: { key: `${s.name}\u0000backfill` } },
      h('summary', 'Backfill…'),
      h(
        'p.muted',
        'Fires every cron slot in [from, to] (local time; "to" in the past) that has no record yet.',
      ),
      form,
    ),
  );
}

/** One schedule: its settings, next fire times, skipped slots and (admin) actions. */
function scheduleCard(s, { admin, ui, done, linkPipeline }) {
  const next = (
    s.nextFireTimes && s.nextFireTimes.length ? s.nextFireTimes : s.nextFireAt ? [s.nextFireAt] : []
  ).slice(0, NEXT_SHOWN);
  const skipped = s.recentSkipped || [];
  return h(
    'article.panel.schedule',
    { dataset: { schedule: s.name, pipeline: s.pipeline, paused: String(Boolean(s.paused)) } },
    h(
      'header.toolbar',
      displayName(s.name, 'h2.schedule-name'),
      s.paused
        ? h(
            'span.badge.s-paused',
            { title: s.note ? `paused: ${s.note}` : 'paused: no slot fires' },
            'paused',
          )
        : h('span.badge.s-running', 'active'),
      linkPipeline
        ? h('a.pipeline-link', { href: pipelineLink(s.pipeline) }, 'pipeline ', displayName(s.pipeline))
        : null,
      h('span.spacer'),
      admin ? scheduleActions(s, ui, done) : null,
    ),
    h(
      'dl.facts.inline',
      h('dt', 'Cron'),
      h('dd', h('code.cron', s.cron)),
      h('dt', 'Time zone'),
      h('dd.timezone', s.timezone),
      h('dt', 'Overlap'),
      h('dd', s.overlap),
      s.jitterMs ? [h('dt', 'Jitter'), h('dd', duration(s.jitterMs))] : null,
      h('dt', 'Catch-up window'),
      h('dd', duration(s.catchupWindowMs)),
      s.pauseOnFailure ? [h('dt', 'Pause on failure'), h('dd', 'yes')] : null,
      s.paused && s.note ? [h('dt', 'Paused because'), h('dd.note', s.note)] : null,
    ),
    h(
      'div.schedule-times',
      h(
        'div',
        h('h3', 'Next fire times'),
        next.length
          ? h(
              'ol.next-fires',
              next.map((t) => h('li', when(t))),
            )
          : h('p.muted', s.paused ? 'paused: nothing fires' : 'the expression never fires again'),
        s.paused && next.length ? h('p.muted', 'paused: these slots will be recorded as skipped') : null,
      ),
      h(
        'div',
        h('h3', 'Skipped slots'),
        skipped.length ? h('ul.skipped', skipped.map(skippedItem)) : h('p.muted', 'none recently'),
      ),
    ),
  );
}

/** Step columns: the newest run's steps in their order, then any only older runs had. */
function stepColumns(runs) {
  const seen = new Set();
  const out = [];
  for (const r of runs)
    for (const s of r.steps || []) {
      if (seen.has(s.name)) continue;
      seen.add(s.name);
      out.push(s.name);
    }
  return out;
}

/** What the step columns of a run without a container say. */
const NO_CONTAINER = {
  skipped: 'not run',
  buffered: 'waiting for the unfinished runs to end',
  starting: 'being created (a scheduler that defines the pipeline completes it)',
  error: 'not run (error)',
};

/** What a run's first column says: the container's status once it exists, else the decision. */
function runStatus(r) {
  const status = r.containerStatus || r.outcome;
  if (status && (r.status === 'started' || r.status === 'finished')) return badge(status);
  const title = r.reason ? `${r.status}: ${r.reason}` : r.status;
  return h(`span.badge.run-status.r-${cls(r.status)}`, { title }, r.status);
}

function changesNote(c) {
  if (!c) return null;
  const parts = [
    c.added && c.added.length ? `added ${c.added.map(visibleName).join(', ')}` : null,
    c.removed && c.removed.length ? `removed ${c.removed.map(visibleName).join(', ')}` : null,
    c.dependenciesChanged && c.dependenciesChanged.length
      ? `dependencies of ${c.dependenciesChanged.map((d) => visibleName(d.name)).join(', ')}`
      : null,
    c.settingsChanged && c.settingsChanged.length
      ? `settings of ${c.settingsChanged.map(visibleName).join(', ')}`
      : null,
  ].filter(Boolean);
  return h(
    'span.def-changed',
    {
      title: `definition changed since the run before (${c.fromHash} → ${c.toHash}): ${parts.join('; ') || 'hash only'}`,
    },
    'definition changed',
  );
}

/** The grid: one row per run (newest first), one column per step, each cell coloured by the step's state. */
export function runsGrid(runs) {
  const steps = stepColumns(runs);
  const legend = h(
    'div.grid-legend',
    TASK_STATES.map((s) => h('span.legend-item', badge(s))),
    h('span.legend-item', h('span.badge.cell.absent', '·'), ' not in this run'),
  );
  const head = h(
    'tr',
    h('th', 'Slot'),
    h('th', 'Run'),
    steps.map((s) => h('th.step', { dataset: { step: s } }, displayName(s))),
  );
  const rows = runs.map((r) => {
    const byName = new Map((r.steps || []).map((s) => [s.name, s]));
    const hasContainer = r.status === 'started' || r.status === 'finished';
    return h(
      `tr.run.r-${cls(r.status)}`,
      {
        dataset: {
          slot: new Date(r.slot).toISOString(),
          status: r.status,
          kind: r.kind,
          container: r.container,
        },
      },
      h(
        'th.slot',
        hasContainer
          ? h('a', { href: runLink(r.container), title: visibleName(r.container) }, localIso(r.slot))
          : localIso(r.slot),
        r.count > 1 ? h('span.muted', ` … ${localIso(r.lastSlot)} (${r.count} slots)`) : null,
        r.kind !== 'scheduled' ? h('span.kind', r.kind) : null,
      ),
      h(
        'td.run-cell',
        runStatus(r),
        r.reason && !hasContainer ? h('span.muted.reason', ` ${r.reason}`) : null,
        changesNote(r.changes),
      ),
      // No container (skipped, buffered, starting, error): one cell across the steps says so.
      !hasContainer && steps.length
        ? h('td.no-run', { colSpan: steps.length }, h('span.muted', NO_CONTAINER[r.status] || r.status))
        : steps.map((name) => {
            const s = byName.get(name);
            if (!s)
              return h(
                'td',
                h(
                  'span.badge.cell.absent',
                  { title: `${visibleName(name)}: not in this run's definition` },
                  '·',
                ),
              );
            if (!s.state)
              return h(
                'td',
                h('span.badge.cell.absent', { title: `${visibleName(name)}: no task in the container` }, '–'),
              );
            return h(
              'td',
              h(
                `a.badge.cell.s-${cls(s.state)}`,
                {
                  href: runLink(r.container),
                  dataset: { step: name, state: s.state },
                  title: `${visibleName(name)}: ${s.state}${s.durationMs !== null && s.durationMs !== undefined ? ` in ${duration(s.durationMs)}` : ''}`,
                },
                s.durationMs !== null && s.durationMs !== undefined ? duration(s.durationMs) : s.state,
              ),
            );
          }),
    );
  });
  return h(
    'div.runs-grid-box',
    legend,
    h(
      'div.grid-scroll',
      h(
        'table.runs-grid',
        h('thead', head),
        h(
          'tbody',
          rows.length ? rows : h('tr', h('td.muted', { colSpan: 2 + steps.length }, 'No runs yet.')),
        ),
      ),
    ),
  );
}

/** uPlot's data for `{ step: [{ slot, durationMs }] }`: x = slots (seconds, ascending), one y per step. */
export function chartData(durations) {
  const steps = Object.keys(durations || {});
  const xs = [...new Set(steps.flatMap((s) => durations[s].map((p) => new Date(p.slot).getTime())))].sort(
    (a, b) => a - b,
  );
  const index = new Map(xs.map((x, i) => [x, i]));
  const ys = steps.map((s) => {
    const y = new Array(xs.length).fill(null);
    for (const p of durations[s]) y[index.get(new Date(p.slot).getTime())] = p.durationMs;
    return y;
  });
  return { steps, data: [xs.map((x) => x / 1000), ...ys] };
}

let uPlotModule = null;
/** The charting library, imported on first use (the other pages never load it). */
function loadUPlot() {
  uPlotModule ??= import('./vendor/uplot.js').then((m) => m.default);
  return uPlotModule;
}

/** The duration-trend chart of every step (one line per step), redrawn only when the data changed. */
function durationChart() {
  const box = h('div.duration-chart');
  let plot = null;
  let last = '';
  // The chart follows the width of its panel (window resized, scrollbar appeared).
  const resize = new ResizeObserver(() => {
    const width = Math.max(320, box.clientWidth);
    if (plot && Math.abs(plot.width - width) > 1) plot.setSize({ width, height: plot.height });
  });
  resize.observe(box);
  /** `forGood`: the page is left (stop watching the size too). */
  const destroy = (forGood = false) => {
    if (plot) plot.destroy();
    plot = null;
    if (forGood) resize.disconnect();
  };
  async function update(durations) {
    const key = JSON.stringify(durations);
    if (key === last) return;
    last = key;
    const { steps, data } = chartData(durations);
    if (!steps.length || data[0].length === 0) {
      destroy();
      replace(box, h('p.muted', 'No finished steps yet: durations appear once runs have finished steps.'));
      return;
    }
    const uPlot = await loadUPlot();
    destroy();
    clear(box);
    box.dataset.steps = String(steps.length);
    box.dataset.points = String(data[0].length);
    plot = new uPlot(
      {
        width: Math.max(320, box.clientWidth || 900),
        height: 260,
        scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(max * 1.1, 1)] } },
        series: [
          { label: 'slot', value: (u, v) => (v === null ? '–' : localIso(v * 1000)) },
          ...steps.map((name, i) => ({
            label: visibleName(name),
            stroke: PALETTE[i % PALETTE.length],
            width: 2,
            spanGaps: true,
            points: { show: true, size: 6 },
            value: (u, v) => (v === null || v === undefined ? '–' : duration(v)),
          })),
        ],
        axes: [{}, { size: 70, values: (u, ticks) => ticks.map((t) => duration(t)) }],
      },
      data,
      box,
    );
  }
  return { box, update, destroy };
}

/** What an ETA rests on (`basis: { runs }`), as text; another shape is shown as its JSON. */
function basisText(b) {
  if (b === null || b === undefined) return '';
  if (typeof b.runs === 'number')
    return `median step durations of the last ${b.runs} succeeded run${b.runs === 1 ? '' : 's'}`;
  return typeof b === 'string' ? b : JSON.stringify(b);
}

/**
 * Facts of the container view for a pipeline's run: the pipeline (a link to its page) and,
 * while it runs, the ETA the API computed (`eta`: `{ at, remainingMs, basis }` or null).
 */
export function runFacts(c) {
  const eta = c.eta ?? (c.summary && c.summary.eta) ?? null;
  const pipeline = c.metadata && typeof c.metadata.pipeline === 'string' ? c.metadata.pipeline : null;
  return [
    pipeline
      ? [
          h('dt', 'Pipeline'),
          h('dd', h('a.pipeline-link', { href: pipelineLink(pipeline) }, displayName(pipeline))),
        ]
      : null,
    eta && eta.at
      ? [
          h('dt', 'ETA'),
          h(
            'dd.eta',
            {
              dataset: { at: new Date(eta.at).toISOString(), remainingMs: String(eta.remainingMs) },
              title: basisText(eta.basis),
            },
            localIso(eta.at),
            h(
              'span.muted',
              ` (about ${duration(eta.remainingMs)} left${eta.basis ? `; ${basisText(eta.basis)}` : ''})`,
            ),
          ),
        ]
      : null,
  ];
}

/**
 * Replaces `box`'s content with `content`, keeping open the `details` that were open; left as it
 * is while the focus is in one of its inputs (an admin typing a backfill range).
 */
function renderKeeping(box, content) {
  const focused = document.activeElement;
  if (focused && focused.tagName === 'INPUT' && box.contains(focused)) return;
  const open = new Set([...box.querySelectorAll('details[open]')].map((d) => d.dataset.key));
  replace(box, content);
  for (const d of box.querySelectorAll('details')) if (open.has(d.dataset.key)) d.open = true;
}

/** `#/pipelines`: every schedule, with links to its pipeline's runs. */
export function renderPipelines(ui) {
  replace(ui.crumbs, h('span', 'Pipelines'));
  const list = h('section.schedules');
  const note = h('div');
  replace(
    ui.app,
    h(
      'section.panel',
      h(
        'div.toolbar',
        h('h1', 'Pipelines'),
        h('span.spacer'),
        h('span.muted', 'schedules, newest decisions and next fire times'),
      ),
    ),
    note,
    list,
  );
  let mayAct = () => false;
  async function refresh() {
    try {
      const page = await api.listSchedules();
      clear(note);
      renderKeeping(
        list,
        page.items.length
          ? page.items.map((s) =>
              scheduleCard(s, {
                admin: mayAct(s.name) && mayAct(s.pipeline),
                ui,
                done: refresh,
                linkPipeline: true,
              }),
            )
          : h('p.muted.panel', 'No schedules. Create one with client.schedule() or pts schedule add.'),
      );
    } catch (err) {
      replace(note, ui.showError(err));
    }
  }
  const refreshSoon = throttle(refresh, 1000);
  adminCheck().then((f) => {
    mayAct = f;
    refresh();
  });
  const stop = subscribe(null, () => refreshSoon(), ui.setLive);
  const ticker = setInterval(refreshSoon, 5_000); // next fire times come due
  return () => {
    stop();
    refreshSoon.cancel();
    clearInterval(ticker);
  };
}

/** `#/pipelines/<name>`: its schedules, the grid of its last runs and the duration chart. */
export function renderPipeline(ui, pipeline) {
  replace(ui.crumbs, h('a', { href: '#/pipelines' }, 'Pipelines'), h('span.sep', '/'), displayName(pipeline));
  const schedules = h('section.schedules');
  const gridBox = h('section.panel.runs', h('h2', 'Runs'));
  const grid = h('div');
  const pager = h('div.pager');
  const chart = durationChart();
  const note = h('div');
  gridBox.append(grid, pager);
  replace(
    ui.app,
    h(
      'section.panel',
      h(
        'div.toolbar',
        displayName(pipeline, 'h1.pipeline-name'),
        h('span.spacer'),
        h('span.muted', 'pipeline'),
      ),
    ),
    note,
    schedules,
    gridBox,
    h(
      'section.panel.durations',
      h('h2', 'Step durations'),
      h('p.muted', `each step's duration over the newest ${CHART_RUNS} runs`),
      chart.box,
    ),
  );
  const state = { cursors: [null] };
  let mayAct = false;
  let canAct = () => false;
  async function refresh() {
    try {
      const [list, runs, durations] = await Promise.all([
        api.listSchedules(),
        api.listRuns(pipeline, { limit: RUNS_PAGE, cursor: state.cursors[state.cursors.length - 1] }),
        api.stepDurations(pipeline, { limit: CHART_RUNS }),
      ]);
      clear(note);
      const mine = list.items.filter((s) => s.pipeline === pipeline);
      renderKeeping(
        schedules,
        mine.length
          ? mine.map((s) =>
              scheduleCard(s, { admin: mayAct && canAct(s.name), ui, done: refresh, linkPipeline: false }),
            )
          : h('p.muted.panel', 'No schedule for this pipeline (its runs, if any, are below).'),
      );
      replace(grid, runsGrid(runs.items));
      replace(
        pager,
        h(
          'button',
          {
            type: 'button',
            disabled: state.cursors.length <= 1,
            onclick: () => (state.cursors.pop(), refresh()),
          },
          '← Newer runs',
        ),
        h('span.muted', `page ${state.cursors.length}`),
        h(
          'button',
          {
            type: 'button',
            disabled: !runs.nextCursor,
            onclick: () => (state.cursors.push(runs.nextCursor), refresh()),
          },
          'Older runs →',
        ),
      );
      await chart.update(durations);
    } catch (err) {
      replace(note, ui.showError(err));
    }
  }
  const refreshSoon = throttle(refresh, 1000);
  adminCheck().then((f) => {
    canAct = f;
    mayAct = f(pipeline);
    auth.admin = mayAct;
    ui.updateWho();
    refresh();
  });
  const stop = subscribe(null, () => refreshSoon(), ui.setLive);
  const ticker = setInterval(refreshSoon, 5_000);
  return () => {
    stop();
    refreshSoon.cancel();
    clearInterval(ticker);
    chart.destroy(true);
  };
}
