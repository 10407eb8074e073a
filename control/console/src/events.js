// The company's live events (/api/ws). The token travels in the first message under the
// `sendmill.auth-message` subprotocol, never in the URL. Reconnects with backoff while the
// session lasts; closed for good at logout.
import { onSessionChange, refresh, session } from "./session.js";

const SUBPROTOCOL = "sendmill.auth-message";
const UNAUTHORIZED = 4401;
const FORBIDDEN = 4403;
const listeners = new Set();
let socket = null;
let retryDelay = 1000;
let retryTimer = null;

function connect() {
  clearTimeout(retryTimer);
  const current = session();
  if (!current || socket || !current.me?.permissions?.includes("campaigns:read")) return;
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${location.host}/api/ws`, [SUBPROTOCOL]);
  socket = ws;
  ws.addEventListener("open", () => {
    ws.send(JSON.stringify({ type: "auth", access_token: session()?.access }));
  });
  ws.addEventListener("message", (message) => {
    const event = JSON.parse(message.data);
    if (event.event === "ready") retryDelay = 1000;
    listeners.forEach((listener) => listener(event));
  });
  ws.addEventListener("close", async (closed) => {
    if (socket === ws) socket = null;
    if (!session() || closed.code === FORBIDDEN) return;
    if (closed.code === UNAUTHORIZED && !(await refresh())) return;
    retryTimer = setTimeout(connect, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 30000);
  });
}

function disconnect() {
  clearTimeout(retryTimer);
  const ws = socket;
  socket = null;
  if (ws) ws.close(1000, "logged out");
}

onSessionChange((current) => (current ? connect() : disconnect()));

// Calls `listener(event)` for every event ({event, data}) until the returned function is called.
export function subscribe(listener) {
  listeners.add(listener);
  connect();
  return () => listeners.delete(listener);
}
