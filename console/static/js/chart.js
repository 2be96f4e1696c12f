// Stacked daily bar charts drawn as inline SVG.
import {h, s, num, short} from './dom.js';

const W = 960;
const PAD = {top: 10, right: 8, bottom: 24, left: 52};
export const COLORS = 8;

// niceStep rounds v up to 1, 2 or 5 times a power of ten, so that the
// axis ticks are round numbers.
function niceStep(v) {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5]) if (m * p >= v) return m * p;
  return 10 * p;
}

const label = (d) => {
  const [, m, dd] = d.split('-');
  return `${Number(dd)} ${['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'][Number(m) - 1]}`;
};

// stackedBars draws one bar per day, stacked by series.
//   days:   ['2026-01-01', ...]
//   series: [{name, values: {day: tokens}}], drawn bottom-up in order
export function stackedBars({days, series, height = 220, title = 'tokens per day'}) {
  const H = height;
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const totals = days.map((d) => series.reduce((a, sr) => a + (sr.values[d] || 0), 0));
  const tick = niceStep(Math.max(0, ...totals) / 4);
  const ticks = Math.max(1, Math.ceil(Math.max(0, ...totals) / tick));
  const max = tick * ticks;
  const y = (v) => PAD.top + plotH - (v / max) * plotH;
  const step = plotW / Math.max(1, days.length);
  const bw = Math.max(1, Math.min(28, step * 0.72));

  const svg = s('svg', {viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': title});
  for (let i = 0; i <= ticks; i++) {
    const v = tick * i;
    svg.append(
      s('line', {x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v), class: i ? 'grid' : 'axis'}),
      s('text', {x: PAD.left - 6, y: y(v) + 4, class: 'tick', 'text-anchor': 'end'}, short(v)));
  }
  const every = Math.ceil(days.length / 10);
  days.forEach((d, i) => {
    const x = PAD.left + i * step + (step - bw) / 2;
    let base = 0;
    const g = s('g', {class: 'bar', 'data-day': d});
    series.forEach((sr, k) => {
      const v = sr.values[d] || 0;
      if (v <= 0) return;
      g.append(s('rect', {x: x.toFixed(1), y: y(base + v).toFixed(1), width: bw.toFixed(1),
        height: Math.max(0.5, y(base) - y(base + v)).toFixed(1), class: `c${k % COLORS}`},
      s('title', {}, `${d} · ${sr.name}: ${num(v)} tokens`)));
      base += v;
    });
    if (totals[i] > 0) g.append(s('title', {}, `${d}: ${num(totals[i])} tokens`));
    svg.append(g);
    if ((days.length - 1 - i) % every === 0) {
      svg.append(s('text', {x: (x + bw / 2).toFixed(1), y: H - 6, class: 'tick', 'text-anchor': 'middle'}, label(d)));
    }
  });
  if (!totals.some((t) => t > 0)) {
    svg.append(s('text', {x: PAD.left + plotW / 2, y: PAD.top + plotH / 2, class: 'empty-chart', 'text-anchor': 'middle'}, 'No usage in this range'));
  }
  const sum = (sr) => days.reduce((a, d) => a + (sr.values[d] || 0), 0);
  const legend = h('ul', {class: 'legend'}, series.map((sr, k) =>
    h('li', {}, h('span', {class: `swatch c${k % COLORS}`}), sr.name, ' ', h('span', {class: 'muted'}, short(sum(sr))))));
  return h('figure', {class: 'chart-box'}, svg, series.length ? legend : null);
}

// seriesBy groups usage rows ({day, model, total_tokens, ...}) into one
// series per key(row), largest first; past `limit` the rest become "other".
export function seriesBy(rows, key, limit = COLORS - 1) {
  const by = new Map();
  for (const r of rows) {
    const k = key(r) || '(none)';
    if (!by.has(k)) by.set(k, {name: k, values: {}, sum: 0});
    const sr = by.get(k);
    sr.values[r.day] = (sr.values[r.day] || 0) + r.total_tokens;
    sr.sum += r.total_tokens;
  }
  const all = [...by.values()].sort((a, b) => b.sum - a.sum || a.name.localeCompare(b.name));
  if (all.length <= limit + 1) return all;
  const other = {name: 'other', values: {}, sum: 0};
  for (const sr of all.slice(limit)) {
    for (const [d, v] of Object.entries(sr.values)) other.values[d] = (other.values[d] || 0) + v;
    other.sum += sr.sum;
  }
  return [...all.slice(0, limit), other];
}
