// Small DOM helpers. Text always goes in as text nodes, never as HTML, so
// names and labels from the API cannot inject markup.

const SVG = 'http://www.w3.org/2000/svg';

function build(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// h('td', {class: 'num'}, '12') builds an HTML element.
export const h = (tag, attrs, ...children) => build(document.createElement(tag), attrs, children);

// s('rect', {x: 0}) builds an SVG element.
export const s = (tag, attrs, ...children) => build(document.createElementNS(SVG, tag), attrs, children);

const compact = new Intl.NumberFormat('en', {notation: 'compact', maximumFractionDigits: 1});
const whole = new Intl.NumberFormat('en');

// num formats a count in full (1,234,567); short formats it compactly (1.2M).
export const num = (n) => (n === undefined || n === null ? '—' : whole.format(n));
export const short = (n) => (n === undefined || n === null ? '—' : compact.format(n));

// when formats an RFC 3339 time as local date and time, '—' when absent.
export function when(t) {
  if (!t || t.startsWith('0001-')) return '—';
  const d = new Date(t);
  if (isNaN(d)) return t;
  const opts = {day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit'};
  if (d.getFullYear() !== new Date().getFullYear()) opts.year = 'numeric';
  return d.toLocaleString('en-GB', opts);
}

// day returns the UTC date n days before today as YYYY-MM-DD.
export function day(n = 0) {
  const d = new Date();
  d.setUTCDate(d.getUTCDate() - n);
  return d.toISOString().slice(0, 10);
}

// days lists the UTC dates from n-1 days ago to today.
export function days(n) {
  const out = [];
  for (let i = n - 1; i >= 0; i--) out.push(day(i));
  return out;
}

// notice is a message box of kind info, warn or error.
export const notice = (kind, ...children) => h('div', {class: `notice ${kind}`, role: kind === 'error' ? 'alert' : null}, ...children);

// card is a titled section.
export const card = (title, ...children) => h('section', {class: 'card'}, title ? h('h2', {}, title) : null, ...children);

// field is a labelled form control.
export const field = (label, control, hint) => h('label', {class: 'field'}, h('span', {}, label), control, hint ? h('small', {class: 'muted'}, hint) : null);

// table builds a table from column headings and rows of cells; a heading
// starting with '#' is a numeric (right-aligned) column.
export function table(headings, rows, empty = 'Nothing yet.') {
  const cls = headings.map((c) => (c.startsWith('#') ? 'num' : null));
  return h('div', {class: 'table-wrap'}, h('table', {},
    h('thead', {}, h('tr', {}, headings.map((c, i) => h('th', {class: cls[i]}, c.replace(/^#/, ''))))),
    h('tbody', {}, rows.length ? rows.map((r) => (r instanceof Node ? r : h('tr', {}, r.map((c, i) => h('td', {class: cls[i]}, c)))))
      : h('tr', {}, h('td', {colspan: headings.length, class: 'muted empty'}, empty)))));
}

// meter is a bar showing used of total (remaining = total - used).
export function meter(remaining, total) {
  if (!total) return h('span', {class: 'muted'}, '—');
  const frac = Math.max(0, Math.min(1, remaining / total));
  const level = frac < 0.1 ? 'low' : frac < 0.3 ? 'mid' : 'ok';
  const bar = h('span', {class: `meter ${level}`, title: `${num(remaining)} of ${num(total)} left`}, h('span', {}));
  bar.firstChild.setAttribute('data-frac', frac.toFixed(3));
  bar.firstChild.style.width = `${(frac * 100).toFixed(1)}%`;
  return h('span', {class: 'meter-wrap'}, bar, h('span', {class: 'num'}, short(remaining)));
}
