// Providers: upstreams with their keys (never their material) and recent
// health as this replica saw it.
import {h, num, table, when, field, card} from '../dom.js';
import {get, post, del, settle, enc} from '../api.js';
import {act, errorBox, refresh} from '../ui.js';

const CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx', 'no_response'];

function statusBar(classes) {
  const total = CLASSES.reduce((a, c) => a + (classes[c] || 0), 0);
  if (!total) return h('span', {class: 'muted'}, 'no requests');
  const bar = h('span', {class: 'statusbar', title: CLASSES.filter((c) => classes[c]).map((c) => `${c.replace('_', ' ')}: ${num(classes[c])}`).join(', ')});
  for (const c of CLASSES) {
    const n = classes[c] || 0;
    if (!n) continue;
    const seg = h('span', {class: `s${c}`});
    seg.style.width = `${((n / total) * 100).toFixed(1)}%`;
    bar.append(seg);
  }
  return bar;
}

const stateBadge = (st) => h('span', {class: `badge ${st === 'closed' ? 'ok' : st === 'open' ? 'off' : 'warn'}`,
  title: st === 'open' ? 'calls fail fast until the cool-down ends' : st === 'half-open' ? 'probing whether the provider recovered' : 'calls go through'}, st || '—');

function healthCard(providers) {
  const win = providers.find((p) => p.window_seconds)?.window_seconds;
  const rows = providers.map((p) => h('tr', {dataset: {health: p.name, requests: p.requests}},
    h('td', {}, h('strong', {}, p.name)), h('td', {}, stateBadge(p.state)), h('td', {class: 'num'}, num(p.requests)),
    h('td', {}, statusBar(p.status_classes || {})), h('td', {class: 'num'}, `${((p.error_rate || 0) * 100).toFixed(1)}%`),
    h('td', {class: 'num'}, num(p.rejected || 0)),
    h('td', {class: 'num'}, `${num(Math.round(p.latency_ms_p50 || 0))} ms`), h('td', {class: 'num'}, `${num(Math.round(p.latency_ms_p99 || 0))} ms`),
    h('td', {class: 'nowrap'}, when(p.since))));
  const title = `Health (${win ? `last ${num(Math.round(win))} s, ` : ''}this replica)`;
  return card(title, table(['Provider', 'Breaker', '#Requests', 'Status classes', '#Errors', '#Failed fast', '#p50', '#p99', 'State since'], rows, 'No provider traffic yet.'),
    providers.length ? h('ul', {class: 'legend'}, [['2xx', 's2xx'], ['4xx', 's4xx'], ['5xx', 's5xx'], ['no response', 'sno_response']].map(([l, c]) =>
      h('li', {}, h('span', {class: `swatch ${c}`}), l))) : null);
}

export async function providersView() {
  const [list, health] = await settle([get('/v1/providers'), get('/v1/providers/health')]);
  const view = h('div', {class: 'view'}, h('div', {class: 'view-head'}, h('h1', {}, 'Providers')));

  if (health.value) {
    view.append(healthCard(health.value.providers));
  } else {
    view.append(card('Health', errorBox('Provider health', health.error)));
  }

  if (!list.value) {
    view.append(card('Upstreams', errorBox('Provider management', list.error)));
    return view;
  }
  const rows = list.value.providers.map((p) => {
    const keys = (p.keys || []).map((k) => {
      const rest = k.resting_until && new Date(k.resting_until) > new Date();
      const remove = p.source === 'config' ? null : h('button', {type: 'button', class: 'danger ghost small', title: 'remove this key'}, '×');
      remove?.addEventListener('click', async () => {
        if (!confirm(`Remove key ${k.prefix} from ${p.name}?`)) return;
        if (await act(remove, 'Key removed.', () => del(`/v1/providers/${enc(p.name)}/keys/${enc(k.id)}`).then(() => true))) refresh();
      });
      return h('span', {class: `keychip ${rest ? 'resting' : ''}`, title: rest ? `resting until ${when(k.resting_until)}` : `added ${when(k.created_at)}`},
        h('code', {}, k.prefix), rest ? ' resting' : '', remove);
    });
    const actions = [];
    if (p.source !== 'config') {
      const addKey = h('button', {type: 'button', class: 'ghost small'}, 'Add key');
      addKey.addEventListener('click', async () => {
        const key = prompt(`New API key for ${p.name} (it cannot be read back):`);
        if (!key) return;
        if (await act(addKey, 'Key added.', () => post(`/v1/providers/${enc(p.name)}/keys`, {key}))) refresh();
      });
      const remove = h('button', {type: 'button', class: 'danger ghost small'}, 'Delete');
      remove.addEventListener('click', async () => {
        if (!confirm(`Delete provider ${p.name}?`)) return;
        if (await act(remove, `Provider ${p.name} deleted.`, () => del(`/v1/providers/${enc(p.name)}`).then(() => true))) refresh();
      });
      actions.push(addKey, remove);
    } else {
      actions.push(h('span', {class: 'badge'}, 'config'));
    }
    return h('tr', {dataset: {provider: p.name}}, h('td', {}, h('strong', {}, p.name)), h('td', {}, h('code', {}, p.path_prefix || '/')),
      h('td', {}, p.host || '*'), h('td', {}, p.header), h('td', {}, p.rest_seconds ? `${p.rest_seconds} s` : '—'),
      h('td', {}, h('div', {class: 'chips'}, keys.length ? keys : h('span', {class: 'muted'}, 'none'))), h('td', {}, h('div', {class: 'actions'}, actions)));
  });
  view.append(card('Upstreams', table(['Provider', 'Path prefix', 'Host', 'Key header', 'Rest after 401/429', 'Keys', ''], rows, 'No providers: requests go upstream with the client’s own credentials removed.')),
    providerForm());
  return view;
}

function providerForm() {
  const name = h('input', {name: 'name', id: 'provider-name', required: true, placeholder: 'openai'});
  const prefix = h('input', {name: 'path_prefix', id: 'provider-prefix', placeholder: '/v1/'});
  const host = h('input', {name: 'host', placeholder: 'any'});
  const header = h('select', {name: 'header'}, ['authorization', 'x-api-key', 'api-key', 'x-goog-api-key'].map((v) => h('option', {value: v}, v)));
  const rest = h('input', {type: 'number', min: 0, step: 1, name: 'rest_seconds', placeholder: '60'});
  const keys = h('textarea', {name: 'keys', id: 'provider-keys', rows: 2, placeholder: 'one key per line', autocomplete: 'off', spellcheck: 'false'});
  const submit = h('button', {type: 'submit', id: 'create-provider'}, 'Add provider');
  return card('New provider', h('form', {class: 'stack-form', onsubmit: async (ev) => {
    ev.preventDefault();
    const body = {name: name.value.trim(), path_prefix: prefix.value.trim(), host: host.value.trim(), header: header.value,
      keys: keys.value.split('\n').map((k) => k.trim()).filter(Boolean)};
    if (rest.value !== '') body.rest_seconds = Number(rest.value);
    if (await act(submit, `Provider ${body.name} added.`, () => post('/v1/providers', body))) refresh();
  }},
  h('div', {class: 'row-form'}, field('Name', name), field('Path prefix', prefix), field('Host', host), field('Key header', header), field('Rest (s)', rest)),
  field('API keys', keys, 'stored encrypted, never shown again'), h('div', {class: 'actions'}, submit)));
}
