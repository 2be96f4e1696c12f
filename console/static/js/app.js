// The console's shell: login, navigation between views, messages.
import {h, notice} from './dom.js';
import {get, form, post, setCSRF, whenUnauthorized} from './api.js';
import {errorBox, onRefresh} from './ui.js';
import {consumersView} from './views/consumers.js';
import {consumerView} from './views/consumer.js';
import {tiersView} from './views/tiers.js';
import {providersView} from './views/providers.js';
import {usageView} from './views/usage.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const logoutButton = document.getElementById('logout');

const routes = [
  [/^#\/consumers\/(.+)$/, (m) => consumerView(decodeURIComponent(m[1])), 'consumers'],
  [/^#\/consumers$/, () => consumersView(), 'consumers'],
  [/^#\/tiers$/, () => tiersView(), 'tiers'],
  [/^#\/providers$/, () => providersView(), 'providers'],
  [/^#\/usage$/, () => usageView(), 'usage'],
];

let renderSeq = 0;

async function render() {
  const hash = location.hash || '#/consumers';
  const seq = ++renderSeq;
  let view = null;
  let name = '';
  for (const [re, f, n] of routes) {
    const m = hash.match(re);
    if (m) { view = () => f(m); name = n; break; }
  }
  if (!view) { location.hash = '#/consumers'; return; }
  for (const a of nav.querySelectorAll('a')) a.classList.toggle('active', a.dataset.view === name);
  main.setAttribute('aria-busy', 'true');
  let node;
  try {
    node = await view();
  } catch (e) {
    node = errorBox('This view', e);
  }
  if (seq !== renderSeq) return; // a newer navigation won
  main.replaceChildren(node);
  main.removeAttribute('aria-busy');
}

onRefresh(render);

function showLogin(message) {
  nav.hidden = true;
  logoutButton.hidden = true;
  const input = h('input', {type: 'password', name: 'token', id: 'token', autocomplete: 'current-password', required: true, autofocus: true});
  const err = h('p', {class: 'login-error', role: 'alert'}, message || '');
  const submit = h('button', {type: 'submit', id: 'login'}, 'Log in');
  const f = h('form', {class: 'login card', onsubmit: async (ev) => {
    ev.preventDefault();
    submit.disabled = true;
    err.textContent = '';
    try {
      const s = await form('/console/login', {token: input.value});
      start(s);
    } catch (e) {
      err.textContent = e.status === 401 ? 'That is not the admin token.' : e.message;
      submit.disabled = false;
      input.select();
    }
  }},
  h('h1', {}, 'tollgate console'),
  h('p', {class: 'muted'}, 'Log in with the admin token (admin.token in tollgate’s config).'),
  h('label', {class: 'field'}, h('span', {}, 'Admin token'), input),
  submit, err);
  main.replaceChildren(f);
  input.focus();
}

let started = false;

function start(session) {
  setCSRF(session.csrf);
  nav.hidden = false;
  logoutButton.hidden = false;
  if (!started) {
    started = true;
    window.addEventListener('hashchange', render);
  }
  render();
}

logoutButton.addEventListener('click', async () => {
  try { await post('/console/logout'); } catch { /* the cookie is cleared or already gone */ }
  setCSRF('');
  showLogin('Logged out.');
});

whenUnauthorized(() => showLogin('Your session has ended: log in again.'));

(async () => {
  try {
    start(await get('/console/session'));
  } catch (e) {
    if (e.status === 401) showLogin();
    else if (e.status === 403) main.replaceChildren(notice('error', e.message));
    else main.replaceChildren(notice('error', `Cannot reach tollgate: ${e.message}`));
  }
})();
