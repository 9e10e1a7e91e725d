// The dashboard: a containers list and a container view, over the HTTP API only.
// Every piece of data is inserted as text (see dom.js); nothing from the API reaches innerHTML.
import { api, auth, probe, probeAdmin } from './api.js';
import { ago, badge, clear, cls, duration, h, json, pct, progressBar, replace } from './dom.js';
import { subscribe, throttle } from './live.js';

const CONTAINER_STATUSES = ['pending', 'running', 'succeeded', 'failed', 'cancelled'];
const TASK_STATES = ['pending', 'running', 'succeeded', 'failed', 'skipped', 'cancelled'];
const PAGE = 50;
const TASK_PAGE = 100;

const $app = document.getElementById('app');
const $live = document.getElementById('live');
const $crumbs = document.getElementById('crumbs');
const $who = document.getElementById('who');
const $tokenButton = document.getElementById('token-button');

let teardown = () => {};

function setLive(text, mode) {
  $live.textContent = text;
  $live.className = `live ${cls(mode)}`;
}

function toast(text, kind = 'info') {
  const el = h(`div.toast.${cls(kind)}`, { role: 'status' }, text);
  document.body.appendChild(el);
  setTimeout(() => el.remove(), 4000);
}

function showError(err) {
  return h(
    'div.error-box',
    { role: 'alert' },
    h('strong', 'Error: '),
    err && err.message ? err.message : String(err),
  );
}

// ---------------------------------------------------------------------------------------------
// Token handling
// ---------------------------------------------------------------------------------------------

function askToken(message) {
  const dialog = document.getElementById('token-dialog');
  const input = document.getElementById('token-input');
  const error = document.getElementById('token-error');
  error.textContent = message || '';
  input.value = '';
  return new Promise((resolve) => {
    const form = document.getElementById('token-form');
    const onSubmit = (ev) => {
      ev.preventDefault();
      form.removeEventListener('submit', onSubmit);
      dialog.close();
      resolve(input.value.trim());
    };
    form.addEventListener('submit', onSubmit);
    if (!dialog.open) dialog.showModal();
    input.focus();
  });
}

async function ensureAccess() {
  let message = '';
  for (;;) {
    if (await probe()) break;
    auth.token = await askToken(message || (auth.token ? 'That token was rejected.' : ''));
    message = 'That token was rejected (missing, revoked or mistyped).';
  }
  $tokenButton.hidden = auth.mode !== 'token';
  updateWho();
}

function updateWho() {
  $who.textContent = auth.mode === 'open' ? 'auth off (loopback)' : auth.admin ? 'admin' : 'read-only';
  $who.className = `who ${auth.admin ? 'admin' : 'read'}`;
}

$tokenButton.addEventListener('click', async () => {
  auth.token = '';
  auth.admin = false;
  await ensureAccess();
  route();
});

// ---------------------------------------------------------------------------------------------
// Containers list
// ---------------------------------------------------------------------------------------------

const listState = { status: '', prefix: '', cursors: [null] };

function countsChips(counts) {
  const chips = [];
  for (const s of TASK_STATES) {
    const n = (counts && counts[s]) || 0;
    if (n > 0) chips.push(h(`span.chip.s-${s}`, { title: s }, `${n.toLocaleString()} ${s}`));
  }
  return chips.length ? chips : [h('span.muted', 'no tasks')];
}

function renderContainers() {
  replace($crumbs, h('span', 'Containers'));
  const statusSel = h(
    'select#status-filter',
    {
      'aria-label': 'Filter by status',
      onchange: () => ((listState.status = statusSel.value), (listState.cursors = [null]), refresh()),
    },
    h('option', { value: '' }, 'all statuses'),
    CONTAINER_STATUSES.map((s) => h('option', { value: s, selected: listState.status === s }, s)),
  );
  const prefix = h('input#prefix-filter', {
    type: 'search',
    placeholder: 'name prefix…',
    value: listState.prefix,
    'aria-label': 'Filter by name prefix',
  });
  prefix.addEventListener('input', () => {
    listState.prefix = prefix.value;
    listState.cursors = [null];
    refreshSoon();
  });
  const body = h('tbody');
  const pager = h('div.pager');
  const note = h('div');
  replace(
    $app,
    h('section.panel', h('div.toolbar', h('h1', 'Containers'), h('span.spacer'), statusSel, prefix)),
    note,
    h(
      'table.containers',
      h(
        'thead',
        h(
          'tr',
          ['Container', 'Status', 'Progress', 'Tasks', 'Counts', 'Age', 'Updated'].map((t) => h('th', t)),
        ),
      ),
      body,
    ),
    pager,
  );

  async function refresh() {
    const cursor = listState.cursors[listState.cursors.length - 1];
    let page;
    try {
      page = await api.listContainers({
        status: listState.status,
        prefix: listState.prefix,
        limit: PAGE,
        cursor,
      });
      clear(note);
    } catch (err) {
      replace(note, showError(err));
      return;
    }
    clear(body);
    if (page.items.length === 0)
      body.appendChild(h('tr', h('td.muted', { colSpan: 7 }, 'No containers match.')));
    for (const c of page.items) {
      const href = `#/containers/${encodeURIComponent(c.name)}`;
      body.appendChild(
        h(
          'tr',
          { dataset: { container: c.name } },
          h('td.name', h('a', { href }, c.name)),
          h('td', badge(c.status)),
          h('td.progress', progressBar(c.percentageComplete, c.status)),
          h('td.num', (c.total || 0).toLocaleString()),
          h('td.counts', countsChips(c.counts)),
          h(
            'td.muted',
            { title: new Date(c.createdAt).toLocaleString() },
            duration(Date.now() - new Date(c.createdAt).getTime()),
          ),
          h('td.muted', ago(c.updatedAt)),
        ),
      );
    }
    replace(
      pager,
      h(
        'button',
        {
          type: 'button',
          disabled: listState.cursors.length <= 1,
          onclick: () => {
            listState.cursors.pop();
            refresh();
          },
        },
        '← Newer',
      ),
      h('span.muted', `page ${listState.cursors.length}`),
      h(
        'button',
        {
          type: 'button',
          disabled: !page.nextCursor,
          onclick: () => {
            listState.cursors.push(page.nextCursor);
            refresh();
          },
        },
        'Older →',
      ),
    );
  }
  const refreshSoon = throttle(refresh, 700);
  refresh();
  const stop = subscribe(null, () => refreshSoon(), setLive);
  const ticker = setInterval(refreshSoon, 15_000); // ages tick even when nothing changes
  return () => {
    stop();
    refreshSoon.cancel();
    clearInterval(ticker);
  };
}

// ---------------------------------------------------------------------------------------------
// Container view
// ---------------------------------------------------------------------------------------------

/** Level of each task = longest path from a root; dependencies outside this page count as one level. */
export function levels(tasks) {
  const byName = new Map(tasks.map((t) => [t.name, t]));
  const memo = new Map();
  const visit = (name, stack) => {
    if (memo.has(name)) return memo.get(name);
    const t = byName.get(name);
    if (!t || stack.has(name)) return 0;
    stack.add(name);
    let level = 0;
    for (const d of t.dependsOn || []) level = Math.max(level, byName.has(d) ? visit(d, stack) + 1 : 1);
    stack.delete(name);
    memo.set(name, level);
    return level;
  };
  for (const t of tasks) visit(t.name, new Set());
  return memo;
}

function taskDuration(t) {
  if (t.durationMs !== null && t.durationMs !== undefined) return t.durationMs;
  if (!t.startedAt) return null;
  return (t.endedAt ? new Date(t.endedAt).getTime() : Date.now()) - new Date(t.startedAt).getTime();
}

function details(key, open, summary, ...content) {
  const el = h('details', { dataset: { key } }, h('summary', summary), ...content);
  if (open.has(key)) el.open = true;
  return el;
}

function failureList(t, open) {
  const failures = [...(t.failures || [])].reverse();
  const more = (t.failureCount || 0) - failures.length;
  return details(
    `${t.name}\u0000failures`,
    open,
    `Failures (${t.failureCount || failures.length})`,
    h(
      'ol.failures',
      failures.map((f) =>
        h(
          'li',
          h(
            'div.failure-head',
            h('span.attempt', `attempt ${f.attempt}`),
            h(`span.kind.${cls(f.kind)}`, f.kind === 'interrupted' ? 'interrupted' : 'error'),
            f.code ? h('code', f.code) : null,
            h('span.muted', new Date(f.at).toLocaleTimeString()),
            f.workerId ? h('span.muted', `on ${f.workerId}`) : null,
          ),
          h('div.failure-message', f.message),
          f.stack
            ? details(`${t.name}\u0000stack\u0000${f.attempt}`, open, 'Stack trace', h('pre.stack', f.stack))
            : null,
        ),
      ),
    ),
    more > 0 ? h('p.muted', `${more} older failure(s) not kept`) : null,
  );
}

function taskCard(container, t, open, onAction) {
  const attemptsText =
    `attempt ${t.attempts || 0} of ${(t.maxRetries || 0) + 1}` +
    (t.invokeCount > t.attempts ? ` (${t.invokeCount} runs in total)` : '');
  const actions = [];
  if (auth.admin) {
    const btn = (action, label, enabled, title) =>
      h(
        'button',
        {
          type: 'button',
          class: `small ${action === 'cancel' ? 'danger' : ''}`,
          dataset: { action },
          disabled: !enabled,
          title,
          onclick: () => onAction(action, t.name),
        },
        label,
      );
    actions.push(
      btn(
        'retry',
        'Retry',
        t.state === 'failed' || t.state === 'cancelled',
        'run again with a fresh retry budget',
      ),
      btn('cancel', 'Cancel', t.state === 'pending' || t.state === 'running', 'cancel this task'),
      btn(
        'reset',
        'Reset',
        t.state !== 'running' && t.state !== 'pending',
        'back to pending as if just added',
      ),
      btn(
        'skip',
        'Skip',
        t.state === 'pending' || t.state === 'failed' || t.state === 'cancelled',
        'count as done so dependents run',
      ),
    );
  }
  return h(
    `article.task.s-${cls(t.state)}`,
    { dataset: { task: t.name, state: t.state } },
    h('header', h('h3.task-name', { title: t.name }, t.name), h('span.task-state', badge(t.state))),
    progressBar(t.percentageComplete, t.state),
    h('p.status-text', t.statusText || '\u00a0'),
    h(
      'dl.facts',
      h('dt', 'Attempts'),
      h('dd', attemptsText),
      h('dt', 'Duration'),
      h('dd', duration(taskDuration(t))),
      t.dependsOn && t.dependsOn.length ? [h('dt', 'After'), h('dd', t.dependsOn.join(', '))] : null,
      t.state === 'pending' && t.waitingOn && t.waitingOn.length
        ? [h('dt', 'Waiting on'), h('dd', t.waitingOn.join(', '))]
        : null,
      t.lease ? [h('dt', 'Worker'), h('dd', t.lease.owner)] : null,
    ),
    t.processingData !== null && t.processingData !== undefined
      ? details(`${t.name}\u0000checkpoint`, open, 'Checkpoint', h('pre', json(t.processingData)))
      : null,
    t.result !== null && t.result !== undefined
      ? details(`${t.name}\u0000result`, open, 'Result', h('pre', json(t.result)))
      : null,
    t.failureCount || (t.failures && t.failures.length) ? failureList(t, open) : null,
    actions.length ? h('div.actions', actions) : null,
  );
}

function renderContainer(name) {
  const state = { stateFilter: '', cursors: [null] };
  replace($crumbs, h('a', { href: '#/' }, 'Containers'), h('span.sep', '/'), h('span', name));
  const head = h('section.panel.container-head');
  const stepsBox = h('section.steps');
  const pager = h('div.pager');
  const note = h('div');
  const stateSel = h(
    'select#state-filter',
    {
      'aria-label': 'Filter tasks by state',
      onchange: () => ((state.stateFilter = stateSel.value), (state.cursors = [null]), refresh()),
    },
    h('option', { value: '' }, 'all tasks'),
    TASK_STATES.map((s) => h('option', { value: s }, s)),
  );
  replace(
    $app,
    head,
    note,
    h('div.toolbar', h('h2', 'Steps'), h('span.muted#steps-note'), h('span.spacer'), stateSel),
    stepsBox,
    pager,
  );

  async function act(action, task) {
    try {
      const r = action === 'skip' ? await api.skip(name, task) : await api.action(name, action, task);
      const n = r && typeof r.affected === 'number' ? r.affected : 1;
      toast(`${action}: ${n} task${n === 1 ? '' : 's'}${task ? ` (${task})` : ''}`);
    } catch (err) {
      toast(`${action} failed: ${err.message}`, 'error');
    }
    refresh();
  }

  function renderHead(c) {
    const started = c.startedAt ? new Date(c.startedAt).getTime() : null;
    const ended = c.endedAt ? new Date(c.endedAt).getTime() : null;
    const buttons = auth.admin
      ? h(
          'div.actions',
          h(
            'button',
            {
              type: 'button',
              dataset: { action: 'retry-all' },
              disabled: !(c.counts.failed || c.counts.cancelled),
              onclick: () => act('retry'),
            },
            'Retry failed',
          ),
          h(
            'button',
            {
              type: 'button',
              dataset: { action: 'resume' },
              title: 'take back tasks whose worker died (expired leases) so they can run again',
              disabled: !c.counts.running,
              onclick: () => act('resume'),
            },
            'Resume',
          ),
          h(
            'button',
            {
              type: 'button',
              class: 'danger',
              dataset: { action: 'cancel-all' },
              disabled: !(c.counts.pending || c.counts.running),
              onclick: () => confirm(`Cancel every pending and running task of ${name}?`) && act('cancel'),
            },
            'Cancel all',
          ),
        )
      : h('p.muted', 'read-only token: actions hidden');
    replace(
      head,
      h('div.toolbar', h('h1.container-name', c.name), badge(c.status), h('span.spacer'), buttons),
      h('div.big-progress', progressBar(c.percentageComplete, c.status)),
      h('div.counts', countsChips(c.counts)),
      h(
        'dl.facts.inline',
        h('dt', 'Tasks'),
        h('dd', (c.total || 0).toLocaleString()),
        h('dt', 'Created'),
        h('dd', ago(c.createdAt)),
        h('dt', 'Running for'),
        h('dd', started ? duration((ended || Date.now()) - started) : '–'),
        h('dt', 'Failure policy'),
        h('dd', c.failurePolicy || 'continue'),
        c.metadata && Object.keys(c.metadata).length
          ? [h('dt', 'Metadata'), h('dd', h('code', JSON.stringify(c.metadata)))]
          : null,
      ),
    );
  }

  function renderSteps(tasks, nextCursor) {
    const open = new Set([...stepsBox.querySelectorAll('details[open]')].map((d) => d.dataset.key));
    const lv = levels(tasks);
    const byLevel = new Map();
    for (const t of tasks) {
      const l = lv.get(t.name) || 0;
      if (!byLevel.has(l)) byLevel.set(l, []);
      byLevel.get(l).push(t);
    }
    const paged = state.cursors.length > 1 || nextCursor;
    document.getElementById('steps-note').textContent = paged
      ? `page ${state.cursors.length}, ${tasks.length} tasks (stages computed within this page)`
      : `${tasks.length} task${tasks.length === 1 ? '' : 's'}, grouped by dependency depth`;
    clear(stepsBox);
    if (!tasks.length) stepsBox.appendChild(h('p.muted', 'No tasks.'));
    for (const l of [...byLevel.keys()].sort((a, b) => a - b)) {
      const group = byLevel.get(l);
      stepsBox.appendChild(
        h(
          'div.stage',
          { dataset: { level: String(l) } },
          h(
            'div.stage-label',
            h('span', `Stage ${l + 1}`),
            group.length > 1 ? h('span.muted', `${group.length} in parallel`) : null,
          ),
          h(
            'div.stage-tasks',
            group.map((t) => taskCard(name, t, open, act)),
          ),
        ),
      );
    }
    replace(
      pager,
      h(
        'button',
        {
          type: 'button',
          disabled: state.cursors.length <= 1,
          onclick: () => (state.cursors.pop(), refresh()),
        },
        '← Previous',
      ),
      h('span.muted', `page ${state.cursors.length}`),
      h(
        'button',
        { type: 'button', disabled: !nextCursor, onclick: () => (state.cursors.push(nextCursor), refresh()) },
        'Next →',
      ),
    );
  }

  async function refresh() {
    try {
      const [c, page] = await Promise.all([
        api.container(name),
        api.listTasks(name, {
          state: state.stateFilter,
          limit: TASK_PAGE,
          cursor: state.cursors[state.cursors.length - 1],
        }),
      ]);
      clear(note);
      renderHead(c);
      renderSteps(page.items, page.nextCursor);
    } catch (err) {
      replace(note, showError(err));
    }
  }
  const refreshSoon = throttle(refresh, 300);
  probeAdmin(name).then(() => {
    updateWho();
    refresh();
  });
  const stop = subscribe(name, () => refreshSoon(), setLive);
  const ticker = setInterval(refreshSoon, 5_000); // running durations tick
  return () => {
    stop();
    refreshSoon.cancel();
    clearInterval(ticker);
  };
}

// ---------------------------------------------------------------------------------------------
// Router
// ---------------------------------------------------------------------------------------------

function route() {
  teardown();
  const m = /^#\/containers\/(.+)$/.exec(location.hash);
  if (m) {
    let name;
    try {
      name = decodeURIComponent(m[1]);
    } catch {
      name = m[1];
    }
    document.title = `${name} · persistent-task-status`;
    teardown = renderContainer(name);
  } else {
    document.title = 'Containers · persistent-task-status';
    teardown = renderContainers();
  }
}

async function boot() {
  try {
    await ensureAccess();
  } catch (err) {
    replace($app, showError(err));
    return;
  }
  window.addEventListener('hashchange', route);
  route();
}

boot();
// Exposed for tests and debugging only.
window.__pts = { pct };
