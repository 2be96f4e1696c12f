// Token consumption over time: per consumer and per model, from each
// consumer's daily totals.
import {h, num, day, days, card, notice} from '../dom.js';
import {get, settleEach, enc} from '../api.js';
import {errorBox, refresh} from '../ui.js';
import {stackedBars, seriesBy} from '../chart.js';

let range = 30;

async function consumerNames() {
  try {
    return (await get('/v1/consumers')).consumers.map((c) => c.name);
  } catch (e) {
    if (!e.missing) throw e;
    return (await get('/v1/quota')).quotas.map((q) => q.consumer);
  }
}

export async function usageView() {
  const view = h('div', {class: 'view'});
  const tabs = h('div', {class: 'tabs'}, [7, 30, 90].map((n) => h('button', {type: 'button', class: `tab ${n === range ? 'active' : ''}`,
    onclick: () => { range = n; refresh(); }}, `${n}d`)));
  view.append(h('div', {class: 'view-head'}, h('h1', {}, `Usage, last ${range} days`), tabs));
  let names;
  try {
    names = await consumerNames();
  } catch (e) {
    view.append(errorBox('Consumers', e));
    return view;
  }
  const reps = await settleEach(names, (n) => get(`/v1/usage?consumer=${enc(n)}&from=${day(range - 1)}&to=${day(0)}`));
  const rows = [];
  const failed = [];
  reps.forEach((r, i) => {
    if (r.error) failed.push(`${names[i]}: ${r.error.message}`);
    else for (const d of r.value.days) rows.push({...d, consumer: names[i]});
  });
  if (failed.length) view.append(notice('error', `Cannot read the usage of ${failed.join('; ')}`));
  const total = rows.reduce((a, r) => a + r.total_tokens, 0);
  const requests = rows.reduce((a, r) => a + r.requests, 0);
  const span = days(range);
  view.append(
    h('p', {class: 'muted'}, `${num(total)} tokens in ${num(requests)} requests across ${num(names.length)} consumers (UTC days).`),
    card('Per consumer', stackedBars({days: span, series: seriesBy(rows, (r) => r.consumer), title: 'tokens per day by consumer'})),
    card('Per model', stackedBars({days: span, series: seriesBy(rows, (r) => r.model), title: 'tokens per day by model'})));
  return view;
}
