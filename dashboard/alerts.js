// The alerts page (docs/api.md#alerts): the alert rules (admin tokens: the API gives rules to
// admins only, never their secrets) and the newest deliveries with every attempt — status code
// or error, when, by which process — so a receiver outage is visible as it happens. Over the HTTP
// API only; every piece of data is inserted as text (see dom.js).
import { request } from './api.js';
import { ago, badge, clear, displayName, h, localIso, replace } from './dom.js';
import { throttle } from './live.js';

/** Deliveries shown (newest first). */
export const DELIVERIES_SHOWN = 50;

// Delivery statuses reuse the task badge colours: pending like a pending task, delivered like a
// succeeded one, failed like a failed one.
const STATUS_BADGE = { pending: 'pending', delivered: 'succeeded', failed: 'failed' };

function statusBadge(status) {
  const b = badge(STATUS_BADGE[status] || status);
  b.textContent = status;
  return b;
}

function attemptText(a) {
  // An answer shows its status; no answer (refused, timed out) shows why.
  return a.statusCode === null ? a.error : `HTTP ${a.statusCode}`;
}

function rulesTable(rules) {
  if (!rules.length) return h('p.muted', 'No alert rules. Add one with client.addAlertRule() or pts alerts add.');
  return h(
    'table.alert-rules',
    h('thead', h('tr', ...['Rule', 'Events', 'Prefix', 'Template', 'Enabled', 'Webhook'].map((t) => h('th', t)))),
    h(
      'tbody',
      ...rules.map((r) =>
        h(
          'tr',
          { 'data-rule': r.name },
          h('td', displayName(r.name)),
          h('td', r.events.join(', ')),
          h('td', r.prefix === '' ? '*' : displayName(r.prefix)),
          h('td', r.template),
          h('td', r.enabled ? 'yes' : 'no'),
          h('td.url', r.url),
        ),
      ),
    ),
  );
}

function deliveriesTable(items) {
  if (!items.length) return h('p.muted', 'No deliveries yet.');
  return h(
    'table.alert-deliveries',
    h('thead', h('tr', ...['Created', 'Rule', 'Event', 'Subject', 'Status', 'Attempts', 'Key'].map((t) => h('th', t)))),
    h(
      'tbody',
      ...items.map((d) =>
        h(
          'tr',
          { 'data-key': d.key, 'data-status': d.status },
          h('td', { title: localIso(d.createdAt) }, `${ago(d.createdAt)} ago`),
          h('td', displayName(d.rule)),
          h('td', d.event),
          h('td', displayName(d.task === null ? d.container : `${d.container} / ${d.task}`)),
          h(
            'td',
            statusBadge(d.status),
            d.status === 'pending' && d.nextAttemptAt ? h('span.muted', ` next ${localIso(d.nextAttemptAt)}`) : null,
          ),
          h(
            'td',
            h(
              'ol.attempts',
              ...d.attempts.map((a) =>
                h(
                  'li',
                  { 'data-status-code': a.statusCode === null ? '' : String(a.statusCode), title: `${localIso(a.at)} by ${a.by}, ${a.durationMs} ms` },
                  `#${a.n} ${attemptText(a)}`,
                ),
              ),
            ),
          ),
          h('td.key', { title: d.key }, d.key.slice(0, 12)),
        ),
      ),
    ),
  );
}

/** `#/alerts`: rules and the newest deliveries, refreshed every few seconds. */
export function renderAlerts(ui) {
  replace(ui.crumbs, h('span', 'Alerts'));
  const rulesBox = h('section.panel.alert-rules-panel', h('h2', 'Rules'));
  const rules = h('div');
  rulesBox.append(rules);
  const deliveriesBox = h('section.panel.alert-deliveries-panel', h('h2', 'Deliveries'));
  const deliveries = h('div');
  deliveriesBox.append(deliveries);
  const note = h('div');
  replace(
    ui.app,
    h('section.panel', h('div.toolbar', h('h1', 'Alerts'), h('span.spacer'), h('span.muted', 'webhook rules and every delivery attempt'))),
    note,
    rulesBox,
    deliveriesBox,
  );
  async function refresh() {
    try {
      const page = await request('GET', `/alerts/deliveries?limit=${DELIVERIES_SHOWN}`);
      clear(note);
      replace(deliveries, deliveriesTable(page.items));
    } catch (err) {
      replace(note, ui.showError(err));
    }
    try {
      const r = await request('GET', '/alerts/rules');
      replace(rules, rulesTable(r.items));
    } catch (err) {
      // Rules are for admin tokens (a prefixed one gets the rules inside its prefix); a read token sees the deliveries only.
      if (err.status === 403) replace(rules, h('p.muted', 'Rules are shown to admin tokens only.'));
      else replace(rules, ui.showError(err));
    }
  }
  const refreshSoon = throttle(refresh, 1000);
  refresh();
  const ticker = setInterval(refreshSoon, 3_000);
  return () => {
    refreshSoon.cancel();
    clearInterval(ticker);
  };
}
