// A small history router for paths under /ui: navigate(), a hook that re-renders on change,
// and route matching with :params.
import { useEffect, useState } from "preact/hooks";

export const BASE = "/ui";
const listeners = new Set();

function notify() {
  listeners.forEach((listener) => listener());
}

window.addEventListener("popstate", notify);

export function ui(path) {
  return BASE + path;
}

export function navigate(path, { replace = false } = {}) {
  if (path === location.pathname + location.search) return;
  history[replace ? "replaceState" : "pushState"](null, "", path);
  notify();
}

export function useLocation() {
  const [where, setWhere] = useState(location.pathname + location.search);
  useEffect(() => {
    const listener = () => setWhere(location.pathname + location.search);
    listeners.add(listener);
    return () => listeners.delete(listener);
  }, []);
  return where;
}

// match("/campaigns/:id", "/campaigns/7") -> {id: "7"}; null when it does not match.
export function match(pattern, path) {
  const want = pattern.split("/");
  const have = path.split("/");
  if (want.length !== have.length) return null;
  const params = {};
  for (let i = 0; i < want.length; i += 1) {
    if (want[i].startsWith(":")) params[want[i].slice(1)] = decodeURIComponent(have[i]);
    else if (want[i] !== have[i]) return null;
  }
  return params;
}

export function searchParams() {
  return new URLSearchParams(location.search);
}
