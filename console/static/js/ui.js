// What every view shares: messages, error boxes, re-rendering.
import {h, notice} from './dom.js';
import {ApiError} from './api.js';

// flash shows a short message above the view.
export function flash(message, kind = 'info') {
  const box = document.getElementById('flash');
  const n = notice(kind, message);
  box.replaceChildren(n);
  setTimeout(() => n.remove(), kind === 'error' ? 8000 : 4000);
}

// errorBox explains a failed call in a view, saying plainly when the
// endpoint is not part of this tollgate.
export function errorBox(what, err) {
  if (err instanceof ApiError && err.missing) {
    return notice('warn', h('strong', {}, `${what} is not available on this tollgate. `),
      'Its admin endpoint is not served by this build or configuration: ', h('code', {}, err.message.replace(/ is not available.*/, '')), '.');
  }
  return notice('error', h('strong', {}, `${what}: `), err?.message || String(err));
}

let rerender = () => {};

// refresh renders the current view again (after a change).
export const refresh = () => rerender();
export const onRefresh = (f) => { rerender = f; };

// act runs a change, reports it, and renders the view again on success.
export async function act(button, what, f) {
  if (button) button.disabled = true;
  try {
    const out = await f();
    flash(what);
    return out;
  } catch (e) {
    flash(`${e.message}`, 'error');
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

// live is a card whose body build() fills, asynchronously, and fills again
// when the function it is given is called (after a change in that card).
// A failed build shows its error in the card only.
export function live(title, what, build, attrs = {}) {
  const body = h('div', {class: 'card-body'}, h('p', {class: 'muted'}, 'Loading…'));
  const el = h('section', {class: 'card', ...attrs}, title ? h('h2', {}, title) : null, body);
  const load = async () => {
    try {
      body.replaceChildren(...[await build(load)].flat());
    } catch (e) {
      body.replaceChildren(errorBox(what, e));
    }
  };
  el.reload = load;
  load();
  return el;
}
