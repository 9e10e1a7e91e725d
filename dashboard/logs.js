// The Logs block of a step: its step-log lines (GET …/tasks/:task/logs), oldest first, one attempt
// or all (the attempt selector lists the attempts that logged anything), paged by cursor. While the
// block is open and the task is running it follows the log (polling by cursor every 2 s).
import { api } from './api.js';
/* global setInterval, clearInterval */
import { h, localIso, replace } from './dom.js';

const PAGE = 200;
const FOLLOW_MS = 2000;
/** The attempt chosen per step ('' = all), kept across re-renders of the view. */
const chosen = new Map();

export function logsBlock(container, t, open, details) {
  const key = `${t.name}\u0000logs`;
  const select = h('select.logs-attempt', { dataset: { logs: 'attempt' }, 'aria-label': 'attempt' });
  const list = h('ol.log-lines');
  const note = h('div.logs-note.muted');
  const more = h('div.logs-more');
  let cursor = null;
  let timer = null;
  let loading = false;
  const fillAttempts = (attempts) => {
    const want = chosen.get(key) || '';
    const options = [h('option', { value: '' }, 'All attempts'), ...attempts.map((a) => h('option', { value: String(a) }, `Attempt ${a}`))];
    replace(select, options);
    select.value = attempts.map(String).includes(want) ? want : '';
  };
  const load = async () => {
    if (loading) return;
    loading = true;
    try {
      const attempt = chosen.get(key) || undefined;
      const page = await api.logs(container, t.name, { attempt, cursor, limit: PAGE });
      if (cursor === null) fillAttempts(page.attempts);
      for (const l of page.lines)
        list.appendChild(
          h(
            `li.log-line.l-${l.level}`,
            { dataset: { seq: String(l.seq), level: l.level, attempt: String(l.attempt) } },
            h('span.log-time.muted', localIso(l.time)),
            h('span.log-level', l.level.toUpperCase()),
            h('span.log-attempt.muted', `#${l.attempt}`),
            h('span.log-message', l.message),
            l.fields ? h('code.log-fields', JSON.stringify(l.fields)) : null,
          ),
        );
      cursor = page.nextCursor;
      replace(
        note,
        list.children.length === 0 ? 'No log lines.' : null,
        page.dropped ? ` ${page.dropped.toLocaleString()} earlier line(s) not kept.` : null,
      );
      replace(
        more,
        page.hasMore
          ? h('button', { type: 'button', class: 'small', dataset: { more: 'logs' }, onclick: () => load() }, 'More lines')
          : null,
      );
    } catch (err) {
      replace(note, h('span.error', `could not load the logs: ${err.message}`));
    } finally {
      loading = false;
    }
  };
  const follow = () => {
    clearInterval(timer);
    timer = null;
    if (box.open && t.state === 'running')
      timer = setInterval(() => {
        if (!box.isConnected || !box.open) return void clearInterval(timer);
        if (more.children.length === 0) load();
      }, FOLLOW_MS);
  };
  select.addEventListener('change', () => {
    chosen.set(key, select.value);
    cursor = null;
    replace(list);
    load();
  });
  const box = details(key, open, 'Logs', h('div.logs-bar', select), list, note, more);
  box.classList.add('logs-details');
  // Also fires (asynchronously) when details() opened it again after a refresh: one first page.
  let started = false;
  box.addEventListener('toggle', () => {
    if (box.open && !started) {
      started = true;
      load();
    }
    follow();
  });
  return box;
}
