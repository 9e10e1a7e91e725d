// Live updates: the SSE changes stream when available, polling otherwise.
import { api } from './api.js';

const POLL_MS = 2000;

/**
 * Calls `onChange(change|null)` whenever something in `container` (or anywhere, when null)
 * changes. Returns a function that stops listening. `setStatus(text, mode)` shows the mode.
 */
export function subscribe(container, onChange, setStatus) {
  let es = null;
  let poll = null;
  let stopped = false;
  let retryTimer = null;

  const startPolling = (why) => {
    if (poll || stopped) return;
    setStatus(`◌ polling${why ? ` (${why})` : ''}`, 'poll');
    poll = setInterval(() => onChange(null), POLL_MS);
    // Try the stream again later.
    retryTimer = setTimeout(() => {
      retryTimer = null;
      if (!stopped) connect();
    }, 30_000);
  };

  const stopPolling = () => {
    if (poll) clearInterval(poll);
    poll = null;
  };

  function connect() {
    if (typeof EventSource === 'undefined') return startPolling('no EventSource');
    try {
      es = new EventSource(api.eventsUrl(container));
    } catch {
      return startPolling('stream unavailable');
    }
    const handler = (ev) => {
      let change = null;
      try {
        change = JSON.parse(ev.data);
      } catch {
        change = null;
      }
      onChange(change);
    };
    es.addEventListener('open', () => {
      stopPolling();
      setStatus('● live', 'live');
      onChange(null); // catch up on anything missed while connecting
    });
    es.addEventListener('task', handler);
    es.addEventListener('container', handler);
    es.addEventListener('message', handler);
    es.addEventListener('error', () => {
      if (!es || es.readyState === EventSource.CLOSED) {
        es = null;
        startPolling('stream closed');
      } else {
        // The browser reconnects by itself (with Last-Event-ID); poll meanwhile.
        startPolling('reconnecting');
      }
    });
  }

  connect();
  return () => {
    stopped = true;
    stopPolling();
    if (retryTimer) clearTimeout(retryTimer);
    if (es) es.close();
    es = null;
  };
}

/** Runs `fn` at most once per `ms`, and always once after the last call. */
export function throttle(fn, ms) {
  let last = 0;
  let timer = null;
  let running = false;
  let again = false;
  const run = async () => {
    timer = null;
    if (running) {
      again = true;
      return;
    }
    running = true;
    last = Date.now();
    try {
      await fn();
    } finally {
      running = false;
      if (again) {
        again = false;
        schedule();
      }
    }
  };
  const schedule = () => {
    if (timer) return;
    timer = setTimeout(run, Math.max(0, last + ms - Date.now()));
  };
  schedule.cancel = () => {
    if (timer) clearTimeout(timer);
    timer = null;
  };
  return schedule;
}
