"""The OpenAPI 3 document, generated from the endpoint declarations (control/routing.py),
and a self-contained interactive docs page at /api/docs that reads it."""

from __future__ import annotations

import re
from importlib import resources
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
        # PUT and PATCH share a handler: the partial form gets its own id.
        "operationId": e.handler.__name__ + ("_partial" if e.method == "PATCH" else ""),
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
    responses["429"] = _error("rate limit (or login throttle) exceeded; see Retry-After")
    if _PARAM.search(e.path):
        responses["404"] = _error("not found (or another company's)")
    if e.write:
        responses["409"] = _error("conflict with the current state")
        responses["413"] = _error("body too large")
        responses["415"] = _error("unsupported content type")
    responses["422"] = _error("validation failed; details.fields names each problem")
    for status, description in e.errors:
        responses[str(status)] = _error(description)
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


DOCS_PAGE = (resources.files("control") / "docs.html").read_text()
