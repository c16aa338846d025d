"""The OpenAPI 3.1 document of the REST API, served at ``/api/openapi.json``.

Paths come from the application's own router, so a route cannot be missing
from the document; request bodies and query parameters are described below,
next to nothing else, so that adding a route means adding one entry here.
The test suite fuzzes the API from this document (schemathesis).
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

_TEXT = {"type": "string", "minLength": 1, "maxLength": 100}

BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/auth/login"): {
        "properties": {"login": {"type": "string"}, "password": {"type": "string"}},
        "required": ["login", "password"],
    },
    ("POST", "/api/agents/{agent}/login"): {"properties": {"endpoint": _TEXT}},
    ("POST", "/api/agents/{agent}/pause"): {
        "properties": {"reason": _TEXT},
        "required": ["reason"],
    },
    ("POST", "/api/agents/{agent}/transfer"): {
        "properties": {"queue": _TEXT, "agent": _TEXT, "number": _TEXT}
    },
    ("POST", "/api/agents/{agent}/consult"): {
        "properties": {"number": _TEXT},
        "required": ["number"],
    },
    ("POST", "/api/agents/{agent}/conference"): {"properties": {"number": _TEXT, "agent": _TEXT}},
    ("POST", "/api/agents/{agent}/callbacks"): {
        "properties": {"interaction": _TEXT, "number": _TEXT, "at": _TEXT, "until": _TEXT},
        "required": ["interaction", "number"],
    },
    ("POST", "/api/agents/{agent}/dial"): {
        "properties": {"number": _TEXT, "queue": _TEXT},
        "required": ["number"],
    },
    ("POST", "/api/agents/{agent}/message"): {
        "properties": {"text": _TEXT},
        "required": ["text"],
    },
    ("POST", "/api/interactions/{interaction}/disposition"): {
        "properties": {
            "agent": _TEXT,
            "code": _TEXT,
            "notes": {"type": "string", "maxLength": 4000},
        },
        "required": ["agent", "code"],
    },
    ("POST", "/api/supervisors/{supervisor}/coach"): {
        "properties": {"agent": _TEXT, "mode": {"enum": ["listen", "whisper", "barge"]}},
        "required": ["agent", "mode"],
    },
}

_REPORT_QUERY: list[dict[str, Any]] = [
    {"name": "from", "in": "query", "required": True, "schema": {"type": "string"}},
    {"name": "to", "in": "query", "required": True, "schema": {"type": "string"}},
    {"name": "tz", "in": "query", "schema": {"type": "string"}},
    {"name": "by", "in": "query", "schema": {"type": "string"}},
    {"name": "queue", "in": "query", "schema": {"type": "string"}},
    {"name": "format", "in": "query", "schema": {"enum": ["json", "csv"]}},
]

QUERIES: dict[tuple[str, str], list[dict[str, Any]]] = {
    ("GET", "/api/reports/daily"): _REPORT_QUERY,
    ("GET", "/api/reports/intervals"): _REPORT_QUERY,
    ("GET", "/api/reports/agents"): [
        *_REPORT_QUERY,
        {"name": "agent", "in": "query", "schema": {"type": "string"}},
    ],
}

_ERROR = {
    "description": "error",
    "content": {
        "application/json": {
            "schema": {"type": "object", "properties": {"error": {"type": "string"}}}
        }
    },
}


def openapi_document(
    app: web.Application,
    *,
    examples: dict[str, list[str]] | None = None,
    title: str = "callcenter",
) -> dict[str, Any]:
    """``examples``: path parameter -> ids that exist (agents, supervisors), so
    that tools such as schemathesis reach past the 404s."""
    examples = examples or {}
    paths: dict[str, dict[str, Any]] = {}
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        method = route.method
        if not path or not path.startswith("/api/") or method not in ("GET", "POST"):
            continue
        operation: dict[str, Any] = {
            "operationId": f"{method.lower()}{re.sub(r'[^A-Za-z0-9]+', '_', path)}",
            "responses": {"200": {"description": "done"}, "default": _ERROR},
        }
        parameters: list[dict[str, Any]] = []
        for name in re.findall(r"{(\w+)}", path):
            parameter: dict[str, Any] = {"name": name, "in": "path", "required": True}
            parameter["schema"] = (
                dict(_TEXT, examples=examples[name]) if name in examples else _TEXT
            )
            parameters.append(parameter)
        parameters += QUERIES.get((method, path), [])
        if parameters:
            operation["parameters"] = parameters
        body = BODIES.get((method, path))
        if body is not None:
            schema = {"type": "object", "additionalProperties": False, **body}
            operation["requestBody"] = {
                "required": "required" in body,
                "content": {"application/json": {"schema": schema}},
            }
        if path not in ("/api/auth/login", "/api/openapi.json"):
            operation["security"] = [{"bearer": []}]
        paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1"},
        "paths": dict(sorted(paths.items())),
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


def openapi_routes(examples: dict[str, list[str]] | None = None) -> list[web.RouteDef]:
    async def document(request: web.Request) -> web.Response:
        return web.json_response(openapi_document(request.app, examples=examples))

    return [web.get("/api/openapi.json", document)]
