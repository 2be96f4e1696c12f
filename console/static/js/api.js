// The admin API as the console calls it: same-origin, with the session
// cookie, and the session's CSRF token on every request that changes state.

let csrf = '';
let onUnauthorized = () => {};

export function setCSRF(token) { csrf = token; }
export function whenUnauthorized(f) { onUnauthorized = f; }

// ApiError is a failed call. missing is true when the endpoint itself does
// not exist on this tollgate (its mux answered 404/405 without a JSON
// error), as opposed to an unknown name.
export class ApiError extends Error {
  constructor(status, message, missing = false) {
    super(message);
    this.status = status;
    this.missing = missing;
  }
}

// url resolves an admin path against the console's own location, so the
// console also works behind a proxy that mounts the admin port elsewhere.
export const url = (path) => new URL(`..${path}`, document.baseURI).toString();

async function call(method, path, body, headers = {}) {
  const opts = {method, credentials: 'same-origin', headers: {Accept: 'application/json', ...headers}};
  if (body instanceof URLSearchParams) {
    opts.body = body;
  } else if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  if (method !== 'GET' && method !== 'HEAD') opts.headers['X-Tollgate-CSRF'] = csrf || 'login';
  let res;
  try {
    res = await fetch(url(path), opts);
  } catch (e) {
    throw new ApiError(0, `cannot reach tollgate: ${e.message}`);
  }
  const json = (res.headers.get('Content-Type') || '').includes('application/json');
  const data = json ? await res.json().catch(() => null) : null;
  if (res.ok) return data;
  if (res.status === 401 && !path.startsWith('/console/')) onUnauthorized();
  // A mux without the route answers in plain text; the accounts API says
  // "no such endpoint" in JSON.
  const missing = (res.status === 404 || res.status === 405) &&
    (!data?.error || /^no such endpoint/.test(data.error.message || ''));
  const message = missing ? `${method} ${path} is not available on this tollgate` : data?.error?.message || `${res.status} ${res.statusText}`;
  throw new ApiError(res.status, message, missing);
}

export const get = (path) => call('GET', path);
export const post = (path, body) => call('POST', path, body === undefined ? {} : body);
export const put = (path, body) => call('PUT', path, body);
export const patch = (path, body) => call('PATCH', path, body);
export const del = (path) => call('DELETE', path);
export const form = (path, fields) => call('POST', path, new URLSearchParams(fields));

// settle runs the calls at once and returns, for each, {value} or {error}.
export async function settle(calls) {
  const rs = await Promise.allSettled(calls);
  return rs.map((r) => (r.status === 'fulfilled' ? {value: r.value} : {error: r.reason}));
}

// settleEach calls f on every item, at most `limit` calls at a time (a
// console over many consumers must not fire hundreds of requests at once),
// and returns, for each, {value} or {error}.
export async function settleEach(items, f, limit = 6) {
  const out = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      try {
        out[i] = {value: await f(items[i])};
      } catch (error) {
        out[i] = {error};
      }
    }
  };
  await Promise.all(Array.from({length: Math.min(limit, items.length)}, worker));
  return out;
}

// enc escapes a name for a path segment.
export const enc = encodeURIComponent;
