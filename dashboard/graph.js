// The dependency graph of the loaded page of tasks: one column per stage (dependency depth), one
// box per task coloured by state, one arrow per `dependsOn` edge whose two ends are on the page.
// Plain SVG built with DOM calls (no library, no innerHTML): names go in as text nodes.
import { cls, visibleName } from './dom.js';

const SVG = 'http://www.w3.org/2000/svg';
const NODE_W = 180;
const NODE_H = 28;
const COL_GAP = 56;
const ROW_GAP = 10;
const PAD = 8;
/** Characters of a name drawn in a box (the full name is the box's tooltip). */
const LABEL_MAX = 22;

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs))
    if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  for (const c of children) el.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
  return el;
}

function label(name) {
  const v = visibleName(name);
  const chars = [...v];
  return chars.length > LABEL_MAX ? `${chars.slice(0, LABEL_MAX - 1).join('')}…` : v;
}

/**
 * `tasks` in page order, `levels` a Map name → stage index (from app.js `levels`), `onPick(name)`
 * called when a box is clicked, `matches(task)` (optional) dims the boxes it refuses (the name
 * filter). Returns an `<svg class="dag">`.
 */
export function dependencyGraph(tasks, levels, onPick, matches = null) {
  const columns = new Map();
  for (const t of tasks) {
    const l = levels.get(t.name) || 0;
    if (!columns.has(l)) columns.set(l, []);
    columns.get(l).push(t);
  }
  const order = [...columns.keys()].sort((a, b) => a - b);
  const pos = new Map();
  let rows = 0;
  order.forEach((l, col) => {
    const group = columns.get(l);
    rows = Math.max(rows, group.length);
    group.forEach((t, row) =>
      pos.set(t.name, { x: PAD + col * (NODE_W + COL_GAP), y: PAD + row * (NODE_H + ROW_GAP) }),
    );
  });
  const width = PAD * 2 + Math.max(1, order.length) * NODE_W + Math.max(0, order.length - 1) * COL_GAP;
  const height = PAD * 2 + Math.max(1, rows) * NODE_H + Math.max(0, rows - 1) * ROW_GAP;
  const svg = s('svg', {
    class: 'dag',
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    role: 'img',
    'aria-label': `dependency graph of ${tasks.length} task${tasks.length === 1 ? '' : 's'}`,
  });
  svg.appendChild(
    s(
      'defs',
      {},
      s(
        'marker',
        {
          id: 'dag-arrow',
          viewBox: '0 0 8 8',
          refX: 8,
          refY: 4,
          markerWidth: 7,
          markerHeight: 7,
          orient: 'auto',
        },
        s('path', { d: 'M0,0 L8,4 L0,8 z', class: 'arrow-head' }),
      ),
    ),
  );
  const edges = s('g', { class: 'edges' });
  const nodes = s('g', { class: 'nodes' });
  svg.append(edges, nodes);
  for (const t of tasks) {
    const to = pos.get(t.name);
    for (const dep of t.dependsOn || []) {
      const from = pos.get(dep);
      if (!from) continue; // the dependency is on another page
      const x1 = from.x + NODE_W;
      const y1 = from.y + NODE_H / 2;
      const x2 = to.x;
      const y2 = to.y + NODE_H / 2;
      const mid = (x1 + x2) / 2;
      const waiting = (t.waitingOn || []).includes(dep);
      edges.appendChild(
        s(
          'path',
          {
            class: `edge${waiting ? ' waiting' : ''}`,
            d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`,
            'marker-end': 'url(#dag-arrow)',
            'data-from': dep,
            'data-to': t.name,
          },
          s('title', {}, `${visibleName(dep)} → ${visibleName(t.name)}${waiting ? ' (waiting)' : ''}`),
        ),
      );
    }
    const g = s(
      'g',
      {
        class: `node s-${cls(t.state)}${matches && !matches(t) ? ' dim' : ''}`,
        'data-node': t.name,
        transform: `translate(${to.x},${to.y})`,
        tabindex: 0,
      },
      s('title', {}, `${visibleName(t.name)} — ${t.state}`),
      s('rect', { width: NODE_W, height: NODE_H, rx: 6 }),
      s('text', { x: 10, y: NODE_H / 2 + 4 }, label(t.name)),
    );
    g.addEventListener('click', () => onPick(t.name));
    g.addEventListener('keydown', (ev) => ev.key === 'Enter' && onPick(t.name));
    nodes.appendChild(g);
  }
  return svg;
}
