"""Identity and access: JWTs for people, API keys for services, scopes per role, tenancy checks.

The app calls :func:`install_auth` once; endpoints take ``Depends(require("scope"))``; business
modules call :func:`authorize_owner`. See ``docs/auth.md``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from fastapi import FastAPI, Request
from fastapi.responses import Response

from hexcity.infra.auth.api_keys import ApiKeyStore, digest, generate_api_key, parse_api_key
from hexcity.infra.auth.demo import mint_demo_token
from hexcity.infra.auth.dependencies import (
    STATE_KEY,
    Authenticator,
    AuthMiddleware,
    check_scopes,
    error_body,
    require,
)
from hexcity.infra.auth.errors import AuthError, Forbidden, Unauthenticated
from hexcity.infra.auth.openapi import install_openapi_security, secure_openapi_schema
from hexcity.infra.auth.principal import (
    ALL_SCOPES,
    LOCATIONS_WRITE,
    ROLE_SCOPES,
    ROUTING_READ,
    WEBHOOKS_WRITE,
    OwnerKind,
    Principal,
    Role,
    authorize_owner,
)
from hexcity.infra.auth.settings import AuthSettings
from hexcity.infra.auth.tokens import TokenService
from hexcity.infra.logging import get_logger

log = get_logger(__name__)

# scopes of the OSRM-compatible routing routes, by path prefix: pass to install_auth
ROUTING_ROUTE_SCOPES: dict[str, set[str]] = {
    prefix: {ROUTING_READ} for prefix in ("/route/v1/", "/table/v1/", "/nearest/v1/", "/isochrone/v1/")
}


async def _auth_error(_: Request, exc: Exception) -> Response:
    """Answer an :class:`AuthError` raised in an endpoint like the middleware would."""
    if not isinstance(exc, AuthError):  # pragma: no cover - registered for AuthError only
        raise exc
    status, body, headers = error_body(exc)
    extra = {k.decode(): v.decode() for k, v in headers if k == b"www-authenticate"}
    return Response(body, status, headers=extra, media_type="application/json")


def install_auth(
    app: FastAPI,
    settings: AuthSettings,
    *,
    route_scopes: Mapping[str, Iterable[str]] | None = None,
) -> Authenticator:
    """Protect ``app``: middleware on every non-public request, error handlers, OpenAPI security.

    ``route_scopes`` maps path prefixes to the scopes they need (e.g. :data:`ROUTING_ROUTE_SCOPES`);
    FastAPI endpoints declare theirs with ``Depends(require(...))``. Call before the app starts.
    """
    authenticator = Authenticator.from_settings(settings)
    setattr(app.state, STATE_KEY, authenticator)
    app.add_exception_handler(AuthError, _auth_error)
    if not settings.enabled:
        log.warning("auth_disabled", message="AUTH DISABLED: every caller is treated as admin")
        return authenticator
    scopes = {prefix: set(s) for prefix, s in (route_scopes or {}).items()}
    app.add_middleware(AuthMiddleware, authenticator=authenticator, route_scopes=scopes)
    install_openapi_security(app, settings.public_paths, scopes)
    log.info(
        "auth_enabled",
        api_keys=len(authenticator.api_keys.records),
        jwt_keys=sorted(authenticator.tokens.keys),
        demo_mode=settings.demo_mode,
    )
    return authenticator


__all__ = [
    "ALL_SCOPES",
    "LOCATIONS_WRITE",
    "ROLE_SCOPES",
    "ROUTING_READ",
    "ROUTING_ROUTE_SCOPES",
    "WEBHOOKS_WRITE",
    "ApiKeyStore",
    "AuthError",
    "AuthMiddleware",
    "AuthSettings",
    "Authenticator",
    "Forbidden",
    "OwnerKind",
    "Principal",
    "Role",
    "TokenService",
    "Unauthenticated",
    "authorize_owner",
    "check_scopes",
    "digest",
    "generate_api_key",
    "install_auth",
    "install_openapi_security",
    "mint_demo_token",
    "parse_api_key",
    "require",
    "secure_openapi_schema",
]
