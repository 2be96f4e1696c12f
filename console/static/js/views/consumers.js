// The consumers list: tier, keys, remaining quota, usage today and this
// period, and a form to create one.
import {h, num, short, table, meter, notice, card, field} from '../dom.js';
import {get, post, settle, settleEach, enc} from '../api.js';
import {errorBox, act} from '../ui.js';

export async function consumersView() {
  const [cons, quotas, tiers] = await settle([get('/v1/consumers'), get('/v1/quota'), get('/v1/tiers')]);
  const view = h('div', {class: 'view'}, h('div', {class: 'view-head'}, h('h1', {}, 'Consumers')));

  const quotaOf = new Map();
  if (quotas.value) for (const q of quotas.value.quotas) quotaOf.set(q.consumer, q);

  let list;
  if (cons.value) {
    list = cons.value.consumers;
  } else {
    view.append(errorBox('Consumer management', cons.error));
    if (quotas.error) {
      view.append(errorBox('The quota API', quotas.error));
      return view;
    }
    view.append(notice('info', 'Showing the consumers that have a quota, from ', h('code', {}, '/v1/quota'), '.'));
    list = [...quotaOf.keys()].map((name) => ({name}));
  }
  if (cons.value && quotas.error) view.append(errorBox('The quota API', quotas.error));

  const today = await settleEach(list, (c) => get(`/v1/usage?consumer=${enc(c.name)}`));
  const rows = list.map((c, i) => {
    const q = quotaOf.get(c.name);
    const t = today[i].value;
    return h('tr', {dataset: {consumer: c.name}},
      h('td', {}, h('a', {href: `#/consumers/${enc(c.name)}`}, c.name),
        c.disabled ? h('span', {class: 'badge off'}, 'disabled') : null,
        c.source === 'config' ? h('span', {class: 'badge'}, 'config') : null),
      h('td', {}, c.tier || h('span', {class: 'muted'}, '—')),
      h('td', {class: 'num'}, c.keys ?? '—'),
      h('td', {}, q ? meter(q.remaining, q.allotment) : h('span', {class: 'muted'}, 'no quota')),
      h('td', {class: 'num', title: t ? `${num(t.total.total_tokens)} tokens in ${num(t.total.requests)} requests` : ''}, t ? short(t.total.total_tokens) : '—'),
      h('td', {class: 'num'}, q ? short(q.period_usage_tokens) : '—'));
  });
  view.append(card(null, table(['Consumer', 'Tier', '#Keys', 'Quota left', '#Today', '#This period'], rows, 'No consumers yet.')));

  if (cons.value) view.append(createForm(tiers.value ? tiers.value.tiers : []));
  return view;
}

function createForm(tiers) {
  const name = h('input', {name: 'name', id: 'new-consumer-name', required: true, pattern: '[A-Za-z0-9._\\-]+', placeholder: 'team-x'});
  const tier = h('select', {name: 'tier', id: 'new-consumer-tier'}, h('option', {value: ''}, '(no tier)'), tiers.map((t) => h('option', {value: t.name}, t.name)));
  const tokens = h('input', {name: 'quota', id: 'new-consumer-quota', type: 'number', min: 0, step: 1, placeholder: 'tier’s'});
  const period = h('select', {name: 'period'}, ['none', 'day', 'week', 'month'].map((p) => h('option', {value: p, selected: p === 'month'}, p)));
  const submit = h('button', {type: 'submit', id: 'create-consumer'}, 'Create consumer');
  return card('New consumer', h('form', {class: 'row-form', onsubmit: async (ev) => {
    ev.preventDefault();
    const body = {name: name.value.trim()};
    if (tier.value) body.tier = tier.value;
    if (tokens.value !== '') body.quota = {tokens: Number(tokens.value), period: period.value};
    const c = await act(submit, `Consumer ${body.name} created.`, () => post('/v1/consumers', body));
    if (c) location.hash = `#/consumers/${enc(c.name)}`;
  }},
  field('Name', name), field('Tier', tier), field('Quota (tokens)', tokens, 'empty: the tier’s'), field('Period', period), submit));
}
