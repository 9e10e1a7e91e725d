/** Hand-written SVG line charts for docs/performance.md (no dependencies). */

export interface Series {
  name: string;
  points: Array<{ x: number; y: number; lo?: number; hi?: number }>;
}

export interface ChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  logX?: boolean;
  logY?: boolean;
  width?: number;
  height?: number;
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function niceTicks(lo: number, hi: number, log: boolean): number[] {
  if (log) {
    const out: number[] = [];
    for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) out.push(10 ** e);
    return out;
  }
  const span = hi - lo || 1;
  const step = 10 ** Math.floor(Math.log10(span / 5));
  const mult = [1, 2, 5, 10].find((m) => span / (m * step) <= 6) ?? 10;
  const s = mult * step;
  const out: number[] = [];
  for (let v = Math.floor(lo / s) * s; v <= hi + 1e-9; v += s) out.push(Number(v.toPrecision(12)));
  return out;
}

function label(v: number): string {
  if (v >= 1e6) return `${v / 1e6}M`;
  if (v >= 1e3) return `${v / 1e3}k`;
  return String(Number(v.toPrecision(3)));
}

export function lineChart(series: Series[], o: ChartOptions): string {
  const W = o.width ?? 640;
  const H = o.height ?? 360;
  // Room for the legend: the longest series name at ~7 px per character.
  const m = { l: 70, r: Math.max(170, 50 + 7 * Math.max(0, ...series.map((x) => x.name.length))), t: 40, b: 50 };
  const pts = series.flatMap((s) => s.points).filter((p) => Number.isFinite(p.y));
  const xs = pts.map((p) => p.x);
  const ys = pts
    .flatMap((p) => [p.y, p.lo ?? p.y, p.hi ?? p.y])
    .filter((v) => Number.isFinite(v) && (!o.logY || v > 0));
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  let [y0, y1] = [o.logY ? Math.min(...ys) : 0, Math.max(...ys)];
  if (o.logX) [x0, x1] = [10 ** Math.floor(Math.log10(x0)), 10 ** Math.ceil(Math.log10(x1))];
  if (o.logY) [y0, y1] = [10 ** Math.floor(Math.log10(y0)), 10 ** Math.ceil(Math.log10(y1))];
  else y1 = y1 * 1.1 || 1;
  if (x0 === x1) x1 = x0 + 1;
  const fx = (x: number): number =>
    m.l +
    ((o.logX ? Math.log10(x) - Math.log10(x0) : x - x0) /
      (o.logX ? Math.log10(x1) - Math.log10(x0) : x1 - x0)) *
      (W - m.l - m.r);
  const fy = (y: number): number =>
    H -
    m.b -
    ((o.logY ? Math.log10(y) - Math.log10(y0) : y - y0) /
      (o.logY ? Math.log10(y1) - Math.log10(y0) : y1 - y0)) *
      (H - m.t - m.b);
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
  );
  out.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  out.push(
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${esc(o.title)}</text>`,
  );
  for (const t of niceTicks(y0, y1, !!o.logY)) {
    if (t < y0 || t > y1) continue;
    const y = fy(t);
    out.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${y}" y2="${y}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${m.l - 6}" y="${y + 4}" text-anchor="end">${label(t)}</text>`);
  }
  const xt = o.logX ? niceTicks(x0, x1, true) : [...new Set(xs)].sort((a, b) => a - b);
  for (const t of xt) {
    const x = fx(t);
    out.push(`<line x1="${x}" x2="${x}" y1="${m.t}" y2="${H - m.b}" stroke="#f0f0f0"/>`);
    out.push(`<text x="${x}" y="${H - m.b + 16}" text-anchor="middle">${label(t)}</text>`);
  }
  out.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${H - m.b}" y2="${H - m.b}" stroke="#333"/>`);
  out.push(`<line x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${H - m.b}" stroke="#333"/>`);
  out.push(`<text x="${(m.l + W - m.r) / 2}" y="${H - 12}" text-anchor="middle">${esc(o.xLabel)}</text>`);
  out.push(
    `<text x="16" y="${(m.t + H - m.b) / 2}" text-anchor="middle" transform="rotate(-90 16 ${(m.t + H - m.b) / 2})">${esc(o.yLabel)}</text>`,
  );
  series.forEach((s, i) => {
    const c = COLORS[i % COLORS.length];
    const p = s.points.filter((q) => Number.isFinite(q.y) && (!o.logY || q.y > 0));
    for (const q of p) {
      if (q.lo !== undefined && q.hi !== undefined && (!o.logY || q.lo > 0)) {
        out.push(
          `<line x1="${fx(q.x)}" x2="${fx(q.x)}" y1="${fy(q.lo)}" y2="${fy(q.hi)}" stroke="${c}" stroke-width="1.5" opacity="0.6"/>`,
        );
      }
    }
    if (p.length > 1)
      out.push(
        `<polyline fill="none" stroke="${c}" stroke-width="2" points="${p.map((q) => `${fx(q.x)},${fy(q.y)}`).join(' ')}"/>`,
      );
    for (const q of p) out.push(`<circle cx="${fx(q.x)}" cy="${fy(q.y)}" r="3.5" fill="${c}"/>`);
    const ly = m.t + 10 + i * 18;
    out.push(
      `<line x1="${W - m.r + 12}" x2="${W - m.r + 32}" y1="${ly}" y2="${ly}" stroke="${c}" stroke-width="2"/>`,
    );
    out.push(`<text x="${W - m.r + 38}" y="${ly + 4}">${esc(s.name)}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
