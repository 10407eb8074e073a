"""The OpenAPI 3 document, generated from the endpoint declarations (control/routing.py),
and a self-contained interactive docs page at /api/docs that reads it."""

from __future__ import annotations

import re
from typing import Any

from control.routing import PAGE, PAGE_SIZE, Endpoint

ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error_code": {"type": "string"},
        "message": {"type": "string"},
        "details": {"type": "object"},
    },
    "required": ["error_code", "message", "details"],
}
_PARAM = re.compile(r"{(\w+)}")


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _operation(e: Endpoint, schemas: dict[str, Any]) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
        }
        for name in _PARAM.findall(e.path)
    ]
    query = e.query + ((PAGE, PAGE_SIZE) if e.paginated else ())
    for f in query:
        spec = f.openapi()
        spec.pop("nullable", None)
        params.append({"name": f.name, "in": "query", "required": False, "schema": spec})
    op: dict[str, Any] = {
        "operationId": e.handler.__name__,
        "summary": e.summary,
        "tags": [e.tag],
        "parameters": params,
        "responses": {},
    }
    if e.permission:
        op["x-permission"] = e.permission
        op["description"] = f"Requires permission `{e.permission}`."
    if not e.public:
        op["security"] = [{"bearerAuth": []}]
    if e.body is not None:
        name = e.body.name + ("Update" if e.partial else "Input")
        schemas[name] = e.body.openapi(for_input=True, partial=e.partial)
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}},
        }
    elif e.raw_body:
        op["requestBody"] = {
            "required": True,
            "content": {e.raw_body: {"schema": {"type": "string"}}},
        }
    ok: dict[str, Any] = {"description": "success"}
    if e.response is not None:
        schemas[e.response.name] = e.response.openapi()
        ref: dict[str, Any] = {"$ref": f"#/components/schemas/{e.response.name}"}
        if e.paginated:
            ref = {
                "type": "object",
                "properties": {
                    "results": {"type": "array", "items": ref},
                    "total": {"type": "integer"},
                    "page": {"type": "integer"},
                    "page_size": {"type": "integer"},
                },
                "required": ["results", "total", "page", "page_size"],
            }
        ok["content"] = {"application/json": {"schema": ref}}
    elif e.produces != "application/json":
        ok["content"] = {e.produces: {"schema": {"type": "string"}}}
    elif e.status != 204:
        ok["content"] = {"application/json": {"schema": {"type": "object"}}}
    op["responses"][str(e.status)] = ok
    responses = op["responses"]
    responses["400"] = _error("malformed request")
    if not e.public:
        responses["401"] = _error("missing, invalid or expired credentials")
        responses["403"] = _error("permission denied")
        responses["429"] = _error("rate limit exceeded; see Retry-After")
    if _PARAM.search(e.path):
        responses["404"] = _error("not found (or another company's)")
    if e.write:
        responses["409"] = _error("conflict with the current state")
        responses["413"] = _error("body too large")
        responses["415"] = _error("unsupported content type")
    responses["422"] = _error("validation failed; details.fields names each problem")
    return op


def document(endpoints: list[Endpoint]) -> dict[str, Any]:
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}
    paths: dict[str, dict[str, Any]] = {}
    for e in endpoints:
        paths.setdefault(e.path, {})[e.method.lower()] = _operation(e, schemas)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Sendmill control API",
            "version": "1.0.0",
            "description": (
                "Multi-tenant email marketing API: campaigns, templates, lists and contacts, "
                "workflows, sender profiles, users and API keys. Dates are ISO 8601 UTC; "
                "errors are {error_code, message, details}; lists are paginated with page "
                "and page_size. Events stream on the WebSocket /api/ws."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An access token from POST /api/auth/login, or an API key",
                }
            },
        },
    }


DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sendmill control API</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d2330}
header{background:#1d2330;color:#fff;padding:12px 20px;display:flex;gap:12px;align-items:center}
header input{flex:1;padding:6px;font:inherit}
main{max-width:1100px;margin:0 auto;padding:12px 20px}
details{border:1px solid #d6dae3;border-radius:6px;margin:6px 0;padding:6px 10px}
summary{cursor:pointer}
.m{display:inline-block;width:64px;font-weight:700}
.GET{color:#1a7f37}.POST{color:#0969da}.PUT,.PATCH{color:#9a6700}.DELETE{color:#cf222e}
textarea{width:100%;font:12px monospace;min-height:90px}
pre{background:#f4f6fa;padding:8px;overflow:auto;max-height:400px}
label{display:block;margin:4px 0}
</style></head><body>
<header><b>Sendmill control API</b>
<input id="token" placeholder="Bearer token (access token or API key)"></header>
<main id="ops">Loading /api/openapi.json...</main>
<script>
const esc = s => String(s).replace(/[&<>"]/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;"}[c]));
fetch("/api/openapi.json").then(r => r.json()).then(doc => {
  const ops = document.getElementById("ops"); ops.innerHTML = "";
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const M = method.toUpperCase(), d = document.createElement("details");
      const params = (op.parameters || []).map(p =>
        `<label>${esc(p.name)} (${p.in}) <input data-in="${p.in}" name="${esc(p.name)}"></label>`).join("");
      const body = op.requestBody ? `<label>body <textarea>{}</textarea></label>` : "";
      d.innerHTML = `<summary><span class="m ${M}">${M}</span> ${esc(path)} — ${esc(op.summary || "")}</summary>
        <p>${esc(op.description || "")}</p>${params}${body}<button>Send</button><pre></pre>`;
      d.querySelector("button").onclick = async () => {
        let url = path; const q = new URLSearchParams();
        d.querySelectorAll("input[data-in]").forEach(i => {
          if (!i.value) return;
          if (i.dataset.in === "path") url = url.replace("{" + i.name + "}", encodeURIComponent(i.value));
          else q.set(i.name, i.value);
        });
        const headers = {"Content-Type": "application/json"};
        const t = document.getElementById("token").value.trim();
        if (t) headers.Authorization = "Bearer " + t;
        const ta = d.querySelector("textarea");
        const r = await fetch(url + (q.toString() ? "?" + q : ""), {method: M, headers,
          body: ta ? ta.value : undefined});
        d.querySelector("pre").textContent = r.status + "\\n" + await r.text();
      };
      ops.appendChild(d);
    }
  }
});
</script></body></html>
"""
