// The retention page (docs/api.md#retention, docs/http.md#retention): the retention policies the
// token may see (admin scope; a token limited to a prefix sees the policies under it), a
// **Preview** that asks the API for a dry run of one retention pass (what it would delete, and
// why), and **Apply now**, which runs that pass after a confirmation. Over the HTTP API only;
// every piece of data is inserted as text (see dom.js).
import { request } from './api.js';
import { ago, clear, displayName, h, localIso, replace } from './dom.js';

/** Containers one Preview / Apply now covers (the API's default pass size is 100). */
export const RETENTION_PREVIEW_LIMIT = 100;

function days(v) {
  if (v === null || v === undefined) return '–';
  return `${v} ${v === 1 ? 'day' : 'days'}`;
}

function policiesTable(policies) {
  if (!policies.length)
    return h(
      'p.muted',
      'No retention policies: finished containers are kept until deleted. Add one with ' +
        'client.setRetentionPolicy(), pts retention set, or PUT /api/v1/retention/policies.',
    );
  return h(
    'table.retention-policies',
    h(
      'thead',
      h('tr', ...['Prefix', 'Succeeded after', 'Failed after', 'Cancelled after', 'Keep last runs', 'Updated'].map((t) => h('th', t))),
    ),
    h(
      'tbody',
      ...policies.map((p) =>
        h(
          'tr',
          { 'data-prefix': p.prefix },
          h('td', p.prefix === '' ? '*' : displayName(p.prefix)),
          h('td', { 'data-rule': 'succeededDays' }, days(p.succeededDays)),
          h('td', { 'data-rule': 'failedDays' }, days(p.failedDays)),
          // null: cancelled containers follow failedDays.
          h('td', { 'data-rule': 'cancelledDays' }, p.cancelledDays === null ? `as failed (${days(p.failedDays)})` : days(p.cancelledDays)),
          h('td', { 'data-rule': 'keepLastRuns' }, p.keepLastRuns === null ? '–' : String(p.keepLastRuns)),
          h('td', { title: localIso(p.updatedAt) }, `${ago(p.updatedAt)} ago`),
        ),
      ),
    ),
  );
}

function reportView(report) {
  const verb = report.dryRun ? 'would delete' : 'deleted';
  const n = report.containers.length;
  const head = h(
    'p.retention-summary',
    n === 0
      ? report.dryRun
        ? 'A retention pass now would delete nothing.'
        : 'The retention pass deleted nothing.'
      : `A retention pass ${report.dryRun ? 'now ' : ''}${verb} ${n} container${n === 1 ? '' : 's'}` +
          (report.dryRun ? '' : ` and ${report.tasks} task${report.tasks === 1 ? '' : 's'}`) +
          (n === RETENTION_PREVIEW_LIMIT ? ` (the first ${RETENTION_PREVIEW_LIMIT}; there may be more)` : '') +
          ':',
  );
  const kept = report.kept.length
    ? h('p.muted', `Kept, because they changed before the delete: ${report.kept.map(displayName).join(', ')}`)
    : null;
  if (n === 0) return h('div', head, kept);
  return h(
    'div',
    head,
    h(
      'table.retention-report',
      { 'data-dry-run': String(report.dryRun) },
      h('thead', h('tr', ...['Container', 'Status', 'Finished', 'Policy', 'Reason'].map((t) => h('th', t)))),
      h(
        'tbody',
        ...report.containers.map((c) =>
          h(
            'tr',
            { 'data-container': c.container },
            h('td', displayName(c.container)),
            h('td', c.status),
            h('td', c.endedAt ? { title: localIso(c.endedAt) } : {}, c.endedAt ? `${ago(c.endedAt)} ago` : '–'),
            h('td', c.policy === '' ? '*' : displayName(c.policy)),
            h('td', c.reason === 'age' ? 'age' : 'older than the newest runs kept'),
          ),
        ),
      ),
    ),
    kept,
  );
}

/** `#/retention`: the policies, a dry-run preview and (after a confirmation) one pass now. */
export function renderRetention(ui) {
  replace(ui.crumbs, h('span', 'Retention'));
  const note = h('div');
  const policies = h('div');
  const report = h('div.retention-result');
  let busy = false;
  const pass = async (dryRun) => {
    if (busy) return;
    if (
      !dryRun &&
      !confirm(
        `Delete now the finished containers (up to ${RETENTION_PREVIEW_LIMIT}) that the retention policies let go, with their tasks and logs? This cannot be undone.`,
      )
    )
      return;
    busy = true;
    try {
      replace(report, h('p.muted', dryRun ? 'Previewing…' : 'Applying…'));
      replace(report, reportView(await request('POST', '/retention/apply', { dryRun, limit: RETENTION_PREVIEW_LIMIT })));
      if (!dryRun) ui.toast('Retention pass done');
    } catch (err) {
      replace(report, ui.showError(err));
    } finally {
      busy = false;
    }
  };
  const actions = h(
    'div.toolbar.retention-actions',
    h('button', { type: 'button', 'data-action': 'retention-preview', onclick: () => pass(true) }, 'Preview'),
    h('button.danger', { type: 'button', 'data-action': 'retention-apply', onclick: () => pass(false) }, 'Apply now'),
  );
  // Shown once the policies could be read (a toolbar's display would override `hidden`).
  const actionsSlot = h('div');
  replace(
    ui.app,
    h(
      'section.panel',
      h('div.toolbar', h('h1', 'Retention'), h('span.spacer'), h('span.muted', 'what the recovery sweep deletes, and when')),
    ),
    note,
    h('section.panel.retention-policies-panel', h('h2', 'Policies'), policies, actionsSlot),
    h('section.panel.retention-result-panel', h('h2', 'Preview'), report),
  );
  replace(report, h('p.muted', 'Preview lists what one retention pass would delete now; nothing is deleted.'));
  (async () => {
    try {
      const r = await request('GET', '/retention/policies');
      clear(note);
      replace(policies, policiesTable(r.items));
      // Every retention route needs the admin scope, so a token that can read the policies may
      // preview and apply them.
      if (r.items.length) replace(actionsSlot, actions);
    } catch (err) {
      if (err.status === 403) replace(policies, h('p.muted', 'Retention policies are shown to admin tokens only.'));
      else replace(note, ui.showError(err));
    }
  })();
  return () => {};
}
