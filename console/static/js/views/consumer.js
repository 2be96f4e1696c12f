// One consumer: its state, quota and top-up, keys (issue, revoke) and
// usage per model.
import {h, num, table, meter, when, field, day, days, notice} from '../dom.js';
import {get, post, put, patch, del, enc} from '../api.js';
import {live, act, errorBox, flash} from '../ui.js';
import {stackedBars, seriesBy} from '../chart.js';

export async function consumerView(name) {
  const base = `/v1/consumers/${enc(name)}`;
  const cards = [
    live(null, 'Consumer management', (reload) => headCard(name, base, reload), {id: 'consumer-head'}),
    live('Quota', 'The quota', (reload) => quotaCard(name, reload), {id: 'quota'}),
    live('Keys', 'Key management', (reload) => keysCard(name, base, () => { reload(); cards[0].reload(); }), {id: 'keys'}),
    usageCard(name),
  ];
  const again = h('button', {type: 'button', class: 'ghost small', id: 'refresh', title: 'read quota, keys and usage again',
    onclick: () => cards.forEach((c) => c.reload())}, 'Refresh');
  return h('div', {class: 'view'},
    h('div', {class: 'view-head'}, h('p', {class: 'crumbs'}, h('a', {href: '#/consumers'}, 'Consumers'), ' / ', name), again),
    cards[0], h('div', {class: 'grid2'}, cards[1], cards[2]), cards[3]);
}

async function headCard(name, base, reload) {
  let c;
  try {
    c = await get(base);
  } catch (e) {
    if (e.missing) return [h('h1', {}, name), errorBox('Consumer management', e)];
    throw e;
  }
  const toggle = h('button', {type: 'button', id: 'toggle-disabled', class: c.disabled ? '' : 'danger ghost'}, c.disabled ? 'Enable' : 'Disable');
  toggle.addEventListener('click', async () => {
    const ok = await act(toggle, c.disabled ? `${name} enabled.` : `${name} disabled: its keys are refused.`,
      () => patch(base, {disabled: !c.disabled}));
    if (ok) reload();
  });
  const remove = c.source === 'config' ? null : h('button', {type: 'button', class: 'danger ghost', onclick: async (ev) => {
    if (!confirm(`Delete consumer ${name} and its keys?`)) return;
    if (await act(ev.target, `${name} deleted.`, () => del(base).then(() => true))) location.hash = '#/consumers';
  }}, 'Delete');
  const facts = [
    ['Tier', c.tier || '—'],
    ['Models', c.models?.length ? c.models.join(', ') : 'tier’s or any'],
    ['Usable keys', c.keys ?? 0],
    ['Source', c.source || '—'],
  ];
  return [
    h('div', {class: 'view-head'},
      h('h1', {}, name, c.disabled ? h('span', {class: 'badge off', id: 'disabled-badge'}, 'disabled') : null),
      h('div', {class: 'actions'}, toggle, remove)),
    h('dl', {class: 'facts'}, facts.map(([k, v]) => [h('dt', {}, k), h('dd', {}, String(v))])),
  ];
}

async function quotaCard(name, reload) {
  let q;
  try {
    q = await get(`/v1/quota/${enc(name)}`);
  } catch (e) {
    if (e.status === 404 && !e.missing) return h('p', {class: 'muted'}, 'No quota: this consumer is limited by rate limits only.');
    throw e;
  }
  const amount = h('input', {type: 'number', step: 1, id: 'topup-amount', required: true, placeholder: '100000', class: 'narrow'});
  const topup = h('button', {type: 'submit', id: 'topup'}, 'Top up');
  const set = h('button', {type: 'button', class: 'ghost', id: 'set-balance'}, 'Set balance');
  set.addEventListener('click', async () => {
    if (amount.value === '') return amount.reportValidity();
    if (await act(set, `Balance of ${name} set to ${num(Number(amount.value))}.`, () => put(`/v1/quota/${enc(name)}`, {quota: Number(amount.value)}))) reload();
  });
  return [
    h('div', {class: 'big'}, h('span', {class: 'big-num', id: 'quota-remaining', dataset: {value: q.remaining}}, num(q.remaining)),
      h('span', {class: 'muted'}, `tokens left; ${num(q.allotment)} each ${q.period === 'none' ? 'start' : q.period}`)),
    meter(q.remaining, q.allotment),
    h('dl', {class: 'facts'},
      h('dt', {}, 'Period'), h('dd', {}, q.period + (q.per_model ? ' (per model)' : '')),
      h('dt', {}, 'Used this period'), h('dd', {id: 'period-usage'}, num(q.period_usage_tokens)),
      h('dt', {}, 'Resets'), h('dd', {}, when(q.resets_at))),
    h('form', {class: 'row-form', onsubmit: async (ev) => {
      ev.preventDefault();
      const v = Number(amount.value);
      if (await act(topup, `${v >= 0 ? 'Added' : 'Removed'} ${num(Math.abs(v))} tokens.`, () => post(`/v1/quota/${enc(name)}/delta`, {value: v}))) reload();
    }}, field('Tokens (negative takes back)', amount), topup, set),
  ];
}

function keyState(k) {
  if (k.revoked_at) return h('span', {class: 'badge off'}, 'revoked');
  if (k.expires_at && new Date(k.expires_at) <= new Date()) return h('span', {class: 'badge off'}, 'expired');
  return h('span', {class: 'badge ok'}, 'active');
}

let revealed = null; // {consumer, key}: the key just issued, shown once

async function keysCard(name, base, reload) {
  const {keys} = await get(`${base}/keys`);
  const rows = keys.map((k) => {
    const revoke = k.revoked_at ? null : h('button', {type: 'button', class: 'danger ghost small', dataset: {revoke: k.id}}, 'Revoke');
    revoke?.addEventListener('click', async () => {
      if (!confirm(`Revoke key ${k.prefix}…? Requests with it are refused from the next one on.`)) return;
      if (await act(revoke, `Key ${k.prefix}… revoked.`, () => del(`${base}/keys/${enc(k.id)}`).then(() => true))) reload();
    });
    return h('tr', {dataset: {key: k.id, label: k.label || ''}},
      h('td', {class: 'nowrap'}, h('code', {}, `${k.prefix}…`)), h('td', {}, k.label || ''), h('td', {class: 'nowrap'}, when(k.created_at)),
      h('td', {class: 'nowrap'}, when(k.expires_at)), h('td', {}, keyState(k)), h('td', {}, revoke));
  });
  const out = [];
  if (revealed && revealed.consumer === name) {
    const key = revealed.key;
    revealed = null;
    const copy = h('button', {type: 'button', class: 'small', id: 'copy-key'}, 'Copy');
    copy.addEventListener('click', async () => {
      try {
        await navigator.clipboard.writeText(key);
        copy.textContent = 'Copied';
      } catch {
        getSelection().selectAllChildren(code);
        flash('Select and copy the key by hand.', 'warn');
      }
    });
    const code = h('code', {id: 'new-key', class: 'secret'}, key);
    out.push(notice('ok', h('strong', {}, 'New key — shown only now, copy it: '), h('div', {class: 'reveal'}, code, copy)));
  }
  const label = h('input', {name: 'label', id: 'key-label', placeholder: 'e.g. ci'});
  const ttl = h('select', {name: 'expires', id: 'key-expires'},
    [['', 'never'], [String(86400), '1 day'], [String(7 * 86400), '7 days'], [String(30 * 86400), '30 days'], [String(90 * 86400), '90 days']]
      .map(([v, t]) => h('option', {value: v}, t)));
  const issue = h('button', {type: 'submit', id: 'issue-key'}, 'Issue key');
  out.push(
    table(['Key', 'Label', 'Created', 'Expires', 'State', ''], rows, 'No keys issued at runtime.'),
    h('form', {class: 'row-form', onsubmit: async (ev) => {
      ev.preventDefault();
      const body = {label: label.value.trim()};
      if (ttl.value) body.expires_in_seconds = Number(ttl.value);
      const k = await act(issue, 'Key issued.', () => post(`${base}/keys`, body));
      if (k) {
        revealed = {consumer: name, key: k.key};
        reload();
      }
    }}, field('Label', label), field('Expires', ttl), issue));
  return out;
}

function usageCard(name) {
  let range = 30;
  const tabs = h('div', {class: 'tabs', role: 'tablist'});
  const el = live(null, 'Usage', async () => {
    const rep = await get(`/v1/usage?consumer=${enc(name)}&from=${day(range - 1)}&to=${day(0)}`);
    const byModel = new Map();
    for (const r of rep.days) {
      const m = byModel.get(r.model) || {requests: 0, input_tokens: 0, output_tokens: 0, cached_input_tokens: 0, reasoning_tokens: 0, total_tokens: 0};
      for (const k of Object.keys(m)) m[k] += r[k] || 0;
      byModel.set(r.model, m);
    }
    const rows = [...byModel.entries()].sort((a, b) => b[1].total_tokens - a[1].total_tokens)
      .map(([m, t]) => [m || '(none)', num(t.requests), num(t.input_tokens), num(t.output_tokens), num(t.cached_input_tokens), num(t.reasoning_tokens), num(t.total_tokens)]);
    const t = rep.total;
    return [
      h('div', {class: 'view-head'}, h('h2', {}, `Usage, last ${range} days`), tabs),
      h('p', {class: 'muted', id: 'usage-total', dataset: {tokens: t.total_tokens, requests: t.requests}},
        `${num(t.total_tokens)} tokens in ${num(t.requests)} requests`, t.estimated_requests ? ` (${num(t.estimated_requests)} estimated)` : ''),
      stackedBars({days: days(range), series: seriesBy(rep.days, (r) => r.model), title: `${name}: tokens per day by model`}),
      table(['Model', '#Requests', '#Input', '#Output', '#Cached', '#Reasoning', '#Total'], rows, 'No usage in this range.'),
    ];
  }, {id: 'usage'});
  for (const n of [7, 30, 90]) {
    tabs.append(h('button', {type: 'button', class: `tab ${n === range ? 'active' : ''}`, onclick: () => {
      range = n;
      for (const b of tabs.children) b.classList.toggle('active', b.textContent === `${n}d`);
      el.reload();
    }}, `${n}d`));
  }
  return el;
}
