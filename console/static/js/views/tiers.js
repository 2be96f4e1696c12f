// Tiers: list, create, edit, delete.
import {h, num, table, field, card} from '../dom.js';
import {get, post, put, del, enc} from '../api.js';
import {act, errorBox, refresh} from '../ui.js';

const LIMITS = [
  ['token_per_second', 'tokens / s'], ['token_per_minute', 'tokens / min'], ['token_per_hour', 'tokens / h'], ['token_per_day', 'tokens / day'],
  ['query_per_second', 'requests / s'], ['query_per_minute', 'requests / min'], ['query_per_hour', 'requests / h'], ['query_per_day', 'requests / day'],
];

function limitsText(l) {
  if (!l) return '—';
  const parts = LIMITS.filter(([k]) => l[k] != null).map(([k, label]) => `${num(l[k])} ${label}`);
  if (parts.length && l.token_type && l.token_type !== 'total') parts.push(`(${l.token_type} tokens)`);
  return parts.length ? parts.join(', ') : '—';
}

function quotaText(q) {
  if (!q) return '—';
  return `${num(q.tokens)} / ${q.period || 'none'}${q.per_model ? ' per model' : ''}${q.timezone ? ` (${q.timezone})` : ''}`;
}

export async function tiersView() {
  const view = h('div', {class: 'view'}, h('div', {class: 'view-head'}, h('h1', {}, 'Tiers')));
  let tiers;
  try {
    ({tiers} = await get('/v1/tiers'));
  } catch (e) {
    view.append(errorBox('Tier management', e));
    return view;
  }
  const editor = h('div', {});
  const edit = (t) => {
    editor.replaceChildren(tierForm(t));
    editor.scrollIntoView({behavior: 'smooth', block: 'start'});
  };
  const rows = tiers.map((t) => {
    const actions = [];
    if (t.source !== 'config') {
      actions.push(h('button', {type: 'button', class: 'ghost small', onclick: () => edit(t)}, 'Edit'));
      const d = h('button', {type: 'button', class: 'danger ghost small'}, 'Delete');
      d.addEventListener('click', async () => {
        if (!confirm(`Delete tier ${t.name}?`)) return;
        if (await act(d, `Tier ${t.name} deleted.`, () => del(`/v1/tiers/${enc(t.name)}`).then(() => true))) refresh();
      });
      actions.push(d);
    } else {
      actions.push(h('span', {class: 'badge', title: 'declared in the config file: edit it there'}, 'config'));
    }
    return h('tr', {dataset: {tier: t.name}}, h('td', {}, h('strong', {}, t.name)),
      h('td', {}, t.models?.length ? t.models.join(', ') : h('span', {class: 'muted'}, 'any')),
      h('td', {}, limitsText(t.limits)), h('td', {}, quotaText(t.quota)), h('td', {class: 'actions'}, actions));
  });
  editor.append(tierForm(null));
  view.append(card(null, table(['Tier', 'Models', 'Limits', 'Quota', ''], rows, 'No tiers yet.')), editor);
  return view;
}

function tierForm(t) {
  const editing = Boolean(t);
  const name = h('input', {name: 'name', id: 'tier-name', required: true, value: t?.name ?? '', readonly: editing, pattern: '[A-Za-z0-9._\\-]+'});
  const models = h('input', {name: 'models', id: 'tier-models', value: (t?.models || []).join(', '), placeholder: 'gpt-4o*, claude-*'});
  const limitInputs = LIMITS.map(([k, label]) => [k, label, h('input', {type: 'number', min: 1, step: 1, name: k, value: t?.limits?.[k] ?? ''})]);
  const tokenType = h('select', {name: 'token_type'}, ['total', 'input', 'output'].map((v) =>
    h('option', {value: v, selected: (t?.limits?.token_type || 'total') === v}, v)));
  const qTokens = h('input', {type: 'number', min: 0, step: 1, name: 'quota_tokens', id: 'tier-quota', value: t?.quota?.tokens ?? ''});
  const qPeriod = h('select', {name: 'period'}, ['none', 'day', 'week', 'month'].map((v) =>
    h('option', {value: v, selected: (t?.quota?.period || 'month') === v}, v)));
  const qZone = h('input', {name: 'timezone', value: t?.quota?.timezone ?? '', placeholder: 'UTC'});
  const qPerModel = h('input', {type: 'checkbox', name: 'per_model', checked: Boolean(t?.quota?.per_model)});
  const submit = h('button', {type: 'submit', id: 'save-tier'}, editing ? 'Save tier' : 'Create tier');

  const f = h('form', {class: 'stack-form', onsubmit: async (ev) => {
    ev.preventDefault();
    const body = {name: name.value.trim()};
    const ms = models.value.split(',').map((m) => m.trim()).filter(Boolean);
    if (ms.length) body.models = ms;
    const limits = {};
    for (const [k, , input] of limitInputs) if (input.value !== '') limits[k] = Number(input.value);
    if (Object.keys(limits).length) {
      if (tokenType.value !== 'total') limits.token_type = tokenType.value;
      body.limits = limits;
    }
    if (qTokens.value !== '') {
      body.quota = {tokens: Number(qTokens.value), period: qPeriod.value};
      if (qZone.value.trim()) body.quota.timezone = qZone.value.trim();
      if (qPerModel.checked) body.quota.per_model = true;
    }
    const ok = await act(submit, `Tier ${body.name} ${editing ? 'saved' : 'created'}.`,
      () => (editing ? put(`/v1/tiers/${enc(body.name)}`, body) : post('/v1/tiers', body)));
    if (ok) refresh();
  }},
  h('div', {class: 'row-form'}, field('Name', name), field('Models', models, 'comma-separated globs; empty: any model')),
  h('fieldset', {}, h('legend', {}, 'Rate limits (per consumer)'),
    h('div', {class: 'limits'}, limitInputs.map(([, label, input]) => field(label, input))),
    field('Token windows count', tokenType)),
  h('fieldset', {}, h('legend', {}, 'Quota'),
    h('div', {class: 'row-form'}, field('Tokens', qTokens, 'empty: no quota'), field('Period', qPeriod), field('Time zone', qZone),
      h('label', {class: 'check'}, qPerModel, ' a balance per model'))),
  h('div', {class: 'actions'}, submit, editing ? h('button', {type: 'button', class: 'ghost', onclick: () => refresh()}, 'Cancel') : null));
  return card(editing ? `Edit tier ${t.name}` : 'New tier', f);
}
