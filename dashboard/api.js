// HTTP API client of the dashboard. The token lives in sessionStorage (this tab only) and goes
// out in the Authorization header; only EventSource (which cannot set headers) uses ?access_token=.

const KEY = 'pts.token';
const BASE = '/api/v1';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export const auth = {
  get token() {
    return sessionStorage.getItem(KEY) || '';
  },
  set token(value) {
    if (value) sessionStorage.setItem(KEY, value);
    else sessionStorage.removeItem(KEY);
  },
  /** 'open' (server has auth disabled), 'token', or 'unknown' before the first call. */
  mode: 'unknown',
  /** True when the caller may act on tasks (auth disabled, or an admin token). */
  admin: false,
};

export async function request(method, path, body) {
  const headers = { accept: 'application/json' };
  if (auth.token) headers.authorization = `Bearer ${auth.token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res;
  try {
    res = await fetch(BASE + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch (err) {
    throw new ApiError(0, 'NETWORK', `server unreachable (${err.message})`);
  }
  if (res.status === 204) return null;
  let data = null;
  try {
    data = await res.json();
  } catch {
    data = null;
  }
  if (!res.ok) {
    const e = (data && data.error) || {};
    throw new ApiError(
      res.status,
      e.code || `HTTP_${res.status}`,
      e.message || res.statusText || `HTTP ${res.status}`,
    );
  }
  return data;
}

const enc = encodeURIComponent;

function qs(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params))
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

export const api = {
  listContainers: (p = {}) => request('GET', `/containers${qs(p)}`),
  container: (name) => request('GET', `/containers/${enc(name)}`),
  listTasks: (name, p = {}) => request('GET', `/containers/${enc(name)}/tasks${qs(p)}`),
  task: (name, task) => request('GET', `/containers/${enc(name)}/tasks/${enc(task)}`),
  /** Counts per state of the children `task` spawned (`{ parent, counts, total, done }`). */
  children: (name, task) => request('GET', `/containers/${enc(name)}/tasks/${enc(task)}/children`),
  /** A page of the task's step logs (`{ lines, nextCursor, hasMore, total, dropped, attempts }`). */
  logs: (name, task, p = {}) => request('GET', `/containers/${enc(name)}/tasks/${enc(task)}/logs${qs(p)}`),
  action: (name, action, task) =>
    request('POST', `/containers/${enc(name)}/actions/${action}`, task === undefined ? {} : { task }),
  /** One of TASK_ACTIONS on one task: skip, delete and markSucceeded (`extra`: the result) have routes of their own, the others take `{ task }`. */
  taskAction: (name, action, task, extra) => {
    if (action === 'skip') return request('POST', `/containers/${enc(name)}/tasks/${enc(task)}/skip`, {});
    if (action === 'delete') return request('DELETE', `/containers/${enc(name)}/tasks/${enc(task)}`);
    if (action === 'markSucceeded')
      return request('POST', `/containers/${enc(name)}/tasks/${enc(task)}/mark-succeeded`, { result: extra ?? null });
    return request('POST', `/containers/${enc(name)}/actions/${enc(action)}`, { task });
  },
  /** Re-run from `task`: `{ dryRun: true }` answers the plan only. */
  rerun: (name, task, opts = {}) => request('POST', `/containers/${enc(name)}/actions/rerun`, { task, ...opts }),
  // Pipelines and schedules (docs/schedules.md): `name` is the schedule's name, `pipeline` the pipeline's.
  /** `{ items }`: each schedule with `nextFireTimes` and `recentSkipped`. */
  listSchedules: (p = {}) => request('GET', `/schedules${qs(p)}`),
  schedule: (name) => request('GET', `/schedules/${enc(name)}`),
  /** A page of the pipeline's runs, newest slot first: `{ items, nextCursor }`. */
  listRuns: (pipeline, p = {}) => request('GET', `/pipelines/${enc(pipeline)}/runs${qs(p)}`),
  /** Per step, `[{ slot, durationMs }]` over the newest runs. */
  stepDurations: (pipeline, p = {}) => request('GET', `/pipelines/${enc(pipeline)}/durations${qs(p)}`),
  /** `pause`, `unpause` or `trigger`. */
  scheduleAction: (name, action) => request('POST', `/schedules/${enc(name)}/actions/${enc(action)}`, {}),
  /** Fires the schedule's slots in `[from, to]` (ISO strings). */
  backfill: (name, from, to) => request('POST', `/schedules/${enc(name)}/actions/backfill`, { from, to }),
  /** URL of an SSE stream (token in the query string: EventSource cannot send headers). */
  eventsUrl: (name) =>
    `${BASE}${name ? `/containers/${enc(name)}/events` : '/events'}${qs({ access_token: auth.token })}`,
};

/**
 * Figures out whether the server needs a token and whether we may act. Resolves to true when
 * the API answered, false when a (new) token is needed.
 */
export async function probe() {
  try {
    await api.listContainers({ limit: 1 });
  } catch (err) {
    if (err.status === 401) return false;
    throw err;
  }
  auth.mode = auth.token ? 'token' : 'open';
  if (auth.mode === 'open') auth.admin = true;
  return true;
}

/**
 * Whether the current token may use admin actions on `container`: asks the server who we are
 * (scope and container-name prefix of the token).
 */
export async function probeAdmin(container) {
  if (auth.mode === 'open') return (auth.admin = true);
  try {
    const me = await request('GET', '/whoami');
    auth.admin = me.scope === 'admin' && String(container).startsWith(me.prefix || '');
  } catch {
    auth.admin = false;
  }
  return auth.admin;
}
