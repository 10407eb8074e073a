// The signed-in session: tokens from /api/auth/login, kept in sessionStorage (this tab only,
// never in a URL or a cookie), rotated through /api/auth/refresh, ended by /api/auth/logout.
const KEY = "sendmill.session";
const listeners = new Set();
let current = read();

function read() {
  try {
    return JSON.parse(sessionStorage.getItem(KEY)) || null;
  } catch {
    return null;
  }
}

function store(value) {
  current = value;
  if (value) sessionStorage.setItem(KEY, JSON.stringify(value));
  else sessionStorage.removeItem(KEY);
  listeners.forEach((listener) => listener(current));
}

export function session() {
  return current;
}

export function onSessionChange(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

async function post(path, body, token) {
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(path, { method: "POST", headers, body: JSON.stringify(body) });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null, response };
}

// Logs in; resolves to {ok: true} or {ok: false, totpRequired, error}.
export async function login(email, password, totpCode) {
  const body = { email, password };
  if (totpCode) body.totp_code = totpCode;
  const { status, body: answer, response } = await post("/api/auth/login", body);
  if (status === 200) {
    const me = await fetchMe(answer.access_token);
    store({ ...tokens(answer), me });
    return { ok: true };
  }
  const retry = response.headers.get("Retry-After");
  return {
    ok: false,
    totpRequired: answer?.error_code === "totp_required",
    error:
      status === 429
        ? `Too many failed attempts. Try again in ${retry || "a few"} seconds.`
        : answer?.message || `Login failed (${status})`,
  };
}

function tokens(answer) {
  return {
    access: answer.access_token,
    refresh: answer.refresh_token,
    expiresAt: Date.now() + answer.expires_in * 1000,
  };
}

async function fetchMe(token) {
  const response = await fetch("/api/auth/me", { headers: { Authorization: `Bearer ${token}` } });
  if (!response.ok) throw new Error(`could not read the signed-in user (${response.status})`);
  return response.json();
}

let refreshing = null;

// Exchanges the refresh token for a new pair, once even if many requests ask at the same time.
export function refresh() {
  if (!current) return Promise.resolve(false);
  if (!refreshing) {
    const spent = current.refresh;
    refreshing = post("/api/auth/refresh", { refresh_token: spent })
      .then(({ status, body }) => {
        if (status !== 200) {
          store(null);
          return false;
        }
        store({ ...current, ...tokens(body) });
        return true;
      })
      .catch(() => false)
      .finally(() => {
        refreshing = null;
      });
  }
  return refreshing;
}

export async function logout() {
  const ending = current;
  store(null);
  if (ending) {
    try {
      await post("/api/auth/logout", {}, ending.access);
    } catch {
      // The tokens are gone from this tab either way; the session expires on the server.
    }
  }
}

export function can(permission) {
  return Boolean(current?.me?.permissions?.includes(permission));
}

// Takes an answer from /api/auth/me (after a TOTP set-up, say).
export function updateMe(me) {
  if (current) store({ ...current, me });
}
