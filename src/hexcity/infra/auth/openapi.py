"""OpenAPI: declare the security schemes and mark every protected operation with ``security``.

The plain Starlette routes (the OSRM-compatible routing API) are invisible to FastAPI's schema
generator; they are added here as documented ``GET`` paths so clients see them and their
security requirement too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from starlette.routing import Route

BEARER = "bearerAuth"
API_KEY = "apiKeyAuth"
SECURITY_SCHEMES: dict[str, Any] = {
    BEARER: {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "Signed token of a rider, driver, merchant or admin (see docs/auth.md)",
    },
    API_KEY: {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "Service API key 'hx_<id>_<secret>'",
    },
}
# either scheme satisfies an operation (OpenAPI: the list is OR, each object is AND)
SECURITY: list[dict[str, list[str]]] = [{BEARER: []}, {API_KEY: []}]
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
_CONVERTER = re.compile(r"\{([^}:]+):[^}]+\}")
_ERROR = {"$ref": "#/components/schemas/HexcityErrorBody"}
ERROR_SCHEMA = {
    "type": "object",
    "required": ["code", "message"],
    "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
}


def _plain_operation(route: Route, scopes: Iterable[str]) -> dict[str, Any]:
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in route.param_convertors
    ]
    needed = sorted(scopes)
    description = (route.endpoint.__doc__ or "").strip()
    if needed:
        description = f"{description}\n\nRequires scopes: {', '.join(needed)}".strip()
    return {
        "summary": route.name.replace("_", " ").capitalize(),
        "description": description,
        "operationId": f"{route.name}_{'_'.join(sorted(route.methods or {'GET'})).lower()}",
        "parameters": params,
        "responses": {
            "200": {"description": "OSRM-compatible JSON", "content": {"application/json": {}}},
            "400": {"description": "Invalid request", "content": {"application/json": {"schema": _ERROR}}},
        },
    }


def _responses(operation: dict[str, Any]) -> None:
    responses = operation.setdefault("responses", {})
    body = {"content": {"application/json": {"schema": _ERROR}}}
    responses.setdefault("401", {"description": "Unauthenticated", **body})
    responses.setdefault("403", {"description": "Forbidden", **body})


def _scopes_for(path: str, route_scopes: Mapping[str, Iterable[str]]) -> set[str]:
    for prefix in sorted(route_scopes, key=len, reverse=True):
        if path.startswith(prefix):
            return set(route_scopes[prefix])
    return set()


def secure_openapi_schema(
    app: FastAPI, public_paths: Iterable[str], route_scopes: Mapping[str, Iterable[str]]
) -> dict[str, Any]:
    """The app's OpenAPI document with security schemes, plain routes and per-operation security."""
    schema = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        description=app.description,
        routes=app.routes,
    )
    paths: dict[str, Any] = schema.setdefault("paths", {})
    for route in app.routes:
        if isinstance(route, APIRoute) or not isinstance(route, Route) or not route.include_in_schema:
            continue
        path = _CONVERTER.sub(r"{\1}", route.path)
        for method in sorted(m.lower() for m in (route.methods or {"GET"}) if m != "HEAD"):
            paths.setdefault(path, {}).setdefault(
                method, _plain_operation(route, _scopes_for(route.path, route_scopes))
            )
    public = set(public_paths)
    for path, item in paths.items():
        if path in public:
            continue
        for method, operation in item.items():
            if method in HTTP_METHODS:
                operation["security"] = SECURITY
                _responses(operation)
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
    components.setdefault("schemas", {})["HexcityErrorBody"] = ERROR_SCHEMA
    return schema


def install_openapi_security(
    app: FastAPI, public_paths: Iterable[str], route_scopes: Mapping[str, Iterable[str]]
) -> None:
    """Replace ``app.openapi`` so ``/openapi.json`` (and ``/docs``) show the security model."""
    public = tuple(public_paths)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = secure_openapi_schema(app, public, route_scopes)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
