// Tiny DOM helpers. Text is ALWAYS inserted with textContent / text nodes: data never reaches innerHTML.

/**
 * h('div.card', { onclick, title, dataset: {...} }, child, 'text', [more])
 * Children: strings/numbers become text nodes; null/false are skipped; arrays are flattened.
 */
export function h(spec, attrs, ...children) {
  const [head, ...classes] = spec.split('.');
  const [tag, id] = head.split('#');
  const idFromClass =
    classes.length && classes[classes.length - 1].includes('#')
      ? classes[classes.length - 1].split('#')
      : null;
  if (idFromClass) classes[classes.length - 1] = idFromClass[0];
  const el = document.createElement(tag || 'div');
  if (classes.length) el.className = classes.join(' ');
  if (id || idFromClass) el.id = id || idFromClass[1];
  if (attrs && (typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'class') el.className += ` ${v}`;
    else if (k === 'style') Object.assign(el.style, v);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function replace(el, ...children) {
  clear(el);
  append(el, children);
  return el;
}

/** `1h 02m`, `3m 05s`, `4.2s`, `120ms`. */
export function duration(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '–';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  const hrs = Math.floor(m / 60);
  if (hrs < 48) return `${hrs}h ${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(hrs / 24)}d ${hrs % 24}h`;
}

export function ago(date) {
  if (!date) return '–';
  return `${duration(Date.now() - new Date(date).getTime())} ago`;
}

export function pct(n) {
  const v = Math.max(0, Math.min(100, Number(n) || 0));
  return v >= 99.95 || v === 0 ? `${v.toFixed(0)}%` : `${v.toFixed(1)}%`;
}

/** A progress bar element; `state` colours it. */
export function progressBar(value, state) {
  const v = Math.max(0, Math.min(100, Number(value) || 0));
  const fill = h('span.fill', { style: { width: `${v}%` } });
  return h(
    `div.bar.s-${cls(state)}`,
    {
      role: 'progressbar',
      'aria-valuemin': '0',
      'aria-valuemax': '100',
      'aria-valuenow': String(Math.round(v)),
    },
    fill,
    h('span.label', pct(v)),
  );
}

export function badge(state) {
  return h(`span.badge.s-${cls(state)}`, String(state));
}

/** Pretty JSON for checkpoints/results (as text). */
export function json(value) {
  try {
    return JSON.stringify(value, null, 2);
  } catch {
    return String(value);
  }
}

/** A value safe to use as a class-name suffix. */
export function cls(value) {
  return String(value ?? '').replace(/[^a-z-]/gi, '') || 'unknown';
}

// ---------------------------------------------------------------------------------------------
// Names: one rule for every name the dashboard shows (containers, tasks, dependencies, workers).
// ---------------------------------------------------------------------------------------------

/**
 * Characters that are invisible or change how the text around them is drawn: controls (C0, C1,
 * DEL), format characters (bidi overrides and isolates such as U+202E, zero-width joiners and
 * spaces, U+FEFF, soft hyphen, tag characters), line/paragraph separators and every space but
 * U+0020. They are shown escaped (`\u202E`) so a name can neither spoof its neighbours nor hide.
 */
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Zs}\p{Co}\p{Cn}]/u;

/** `\u202E` (4 hex digits) or `\u{E0041}` beyond the BMP. */
export function escapeChar(ch) {
  const cp = ch.codePointAt(0);
  const hex = cp.toString(16).toUpperCase();
  return cp > 0xffff ? `\\u{${hex}}` : `\\u${hex.padStart(4, '0')}`;
}

/** Splits a name into `{ text }` and `{ escaped }` runs (U+0020 stays a plain space). */
function nameRuns(name) {
  const runs = [];
  let text = '';
  for (const ch of String(name ?? '')) {
    if (ch !== ' ' && INVISIBLE.test(ch)) {
      if (text) runs.push({ text });
      text = '';
      runs.push({ escaped: escapeChar(ch) });
    } else text += ch;
  }
  if (text) runs.push({ text });
  return runs;
}

/** The name as plain text with its invisible characters escaped: for titles, toasts, confirmations. */
export function visibleName(name) {
  return nameRuns(name)
    .map((r) => r.text ?? r.escaped)
    .join('');
}

/**
 * A name as an element: invisible characters shown as `span.esc` (`\u202E`), one line, cut with
 * an ellipsis by CSS (`.dname`) when too long, the full (escaped) name in the `title` tooltip.
 * `dataset.name` keeps the raw name for lookups.
 */
export function displayName(name, tag = 'span') {
  return h(
    `${tag}.dname`,
    { title: visibleName(name), dir: 'ltr' },
    nameRuns(name).map((r) => (r.text !== undefined ? r.text : h('span.esc', r.escaped))),
  );
}

/** Names joined with `, `, each shown with displayName. */
export function displayNames(names) {
  const out = [];
  names.forEach((n, i) => {
    if (i) out.push(', ');
    out.push(displayName(n));
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Dates and payloads
// ---------------------------------------------------------------------------------------------

/** ISO 8601 in the browser's local zone, with the date and the offset: `2026-12-01T22:03:04.120+01:00`. */
export function localIso(date) {
  if (date === null || date === undefined) return '–';
  const d = new Date(date);
  if (Number.isNaN(d.getTime())) return String(date);
  const p = (n, w = 2) => String(Math.abs(n)).padStart(w, '0');
  const off = -d.getTimezoneOffset();
  return (
    `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:` +
    `${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}${off < 0 ? '-' : '+'}${p(Math.floor(Math.abs(off) / 60))}:${p(Math.abs(off) % 60)}`
  );
}

/** Characters of pretty JSON shown before a payload is cut (the API has the rest). */
export const JSON_CAP = 20_000;

/** Pretty JSON capped at `cap` characters: `{ text, truncated, length }`. */
export function cappedJson(value, cap = JSON_CAP) {
  const full = json(value);
  return full.length > cap
    ? { text: full.slice(0, cap), truncated: true, length: full.length }
    : { text: full, truncated: false, length: full.length };
}
