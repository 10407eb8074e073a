// The control API client: JSON in and out, the bearer token from the session, one refresh and
// retry on 401, and the API's error body as an ApiError.
import { logout, refresh, session } from "./session.js";

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message || `The server answered ${status}`);
    this.status = status;
    this.code = body?.error_code || null;
    this.details = body?.details || {};
  }

  // Field name -> message, from a 422's details.fields.
  get fields() {
    return this.details.fields || {};
  }
}

export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") search.set(name, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

async function send(method, path, options, token) {
  const headers = { Accept: "application/json" };
  let body;
  if (options.csv !== undefined) {
    headers["Content-Type"] = "text/csv";
    body = options.csv;
  } else if (options.body !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(options.body);
  }
  if (token) headers.Authorization = `Bearer ${token}`;
  return fetch(path + query(options.query), { method, headers, body, signal: options.signal });
}

// api("GET", "/api/email-templates/", {query: {page: 2}}) -> parsed JSON (null for 204).
export async function api(method, path, options = {}) {
  let response = await send(method, path, options, session()?.access);
  if (response.status === 401 && session() && options.csv === undefined) {
    if (await refresh()) response = await send(method, path, options, session()?.access);
    else await logout();
  }
  if (options.raw) return response;
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}
