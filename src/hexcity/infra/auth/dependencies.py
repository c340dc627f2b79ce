"""Authentication at the edge: an ASGI middleware for every request, and ``require`` for FastAPI.

Credentials are ``Authorization: Bearer <jwt>`` (people) or ``X-API-Key: hx_<id>_<secret>``
(services). The middleware authenticates every non-public request, including the plain
Starlette routing routes, checks the scopes configured per path prefix, and stores the
:class:`Principal` in ``request.state.principal``; ``require(*scopes)`` then reads it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping

import orjson
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from hexcity.infra.auth.api_keys import ApiKeyStore
from hexcity.infra.auth.errors import AuthError, Forbidden, Unauthenticated
from hexcity.infra.auth.principal import ALL_SCOPES, Principal, Role
from hexcity.infra.auth.settings import AuthSettings
from hexcity.infra.auth.tokens import TokenService

API_KEY_HEADER = "x-api-key"
STATE_KEY = "hexcity_auth"
MAX_CREDENTIAL_LENGTH = 8192
DISABLED_PRINCIPAL = Principal(subject="anonymous", role=Role.ADMIN, scopes=ALL_SCOPES, method="disabled")


class Authenticator:
    """Turns request headers into a :class:`Principal`, and knows the public paths."""

    def __init__(
        self,
        tokens: TokenService,
        api_keys: ApiKeyStore,
        *,
        public_paths: Iterable[str] = (),
        enabled: bool = True,
    ) -> None:
        self.tokens, self.api_keys, self.enabled = tokens, api_keys, enabled
        self.public_paths = frozenset(public_paths)

    @classmethod
    def from_settings(cls, settings: AuthSettings) -> Authenticator:
        """Build the token service and key store that ``settings`` configure."""
        pepper = settings.api_key_pepper.get_secret_value() if settings.api_key_pepper else None
        return cls(
            TokenService.from_settings(settings),
            ApiKeyStore.from_entries(settings.api_keys, pepper),
            public_paths=settings.public_paths,
            enabled=settings.enabled,
        )

    def is_public(self, path: str) -> bool:
        """Exact match against the configured public paths."""
        return path in self.public_paths

    def authenticate(self, authorization: str | None, api_key: str | None) -> Principal:
        """The caller; raises :class:`Unauthenticated` if credentials are missing or bad."""
        if not self.enabled:
            return DISABLED_PRINCIPAL
        if authorization is not None and api_key is not None:
            raise Unauthenticated("send either a bearer token or an API key, not both")
        if api_key is not None:
            if len(api_key) > MAX_CREDENTIAL_LENGTH:
                raise Unauthenticated("malformed API key")
            return self.api_keys.verify(api_key.strip())
        if authorization is None:
            raise Unauthenticated("authentication required")
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or len(token) > MAX_CREDENTIAL_LENGTH:
            raise Unauthenticated("expected 'Authorization: Bearer <token>'")
        return self.tokens.verify(token)


def check_scopes(principal: Principal, scopes: Iterable[str]) -> None:
    """Raise :class:`Forbidden` unless ``principal`` has every one of ``scopes``."""
    missing = set(scopes) - principal.scopes
    if missing:
        raise Forbidden(f"missing scope {' '.join(sorted(missing))}")


def error_body(exc: AuthError) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """Status, JSON body and headers of an access refusal (401 adds ``WWW-Authenticate``)."""
    body = orjson.dumps({"code": exc.code, "message": exc.message})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if exc.status == 401:
        challenge = 'Bearer realm="hexcity"'
        if exc.message != "authentication required":
            challenge += ', error="invalid_token"'
        headers.append((b"www-authenticate", challenge.encode()))
    return exc.status, body, headers


class AuthMiddleware:
    """Pure ASGI middleware: authenticate every non-public HTTP/WebSocket request before routing.

    ``route_scopes`` maps a path prefix (``"/route/v1/"``) to the scopes it needs; the longest
    matching prefix wins; paths matching none only need a valid caller.
    """

    def __init__(
        self,
        app: ASGIApp,
        authenticator: Authenticator,
        route_scopes: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        self.app, self.authenticator = app, authenticator
        self.route_scopes = sorted(
            ((prefix, frozenset(s)) for prefix, s in (route_scopes or {}).items()),
            key=lambda item: -len(item[0]),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse with 401/403 JSON, or pass on with ``scope["state"]["principal"]`` set."""
        if scope["type"] not in {"http", "websocket"} or self.authenticator.is_public(scope["path"]):
            await self.app(scope, receive, send)
            return
        authorization = api_key = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == API_KEY_HEADER.encode():
                api_key = value.decode("latin-1")
        try:
            principal = self.authenticator.authenticate(authorization, api_key)
            for prefix, needed in self.route_scopes:
                if scope["path"].startswith(prefix):
                    check_scopes(principal, needed)
                    break
        except AuthError as exc:
            if scope["type"] == "websocket":  # closing before accept makes the server answer 403
                await send({"type": "websocket.close", "code": 1008, "reason": exc.code})
            else:
                await _refuse(exc, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


async def _refuse(exc: AuthError, send: Send) -> None:
    status, body, headers = error_body(exc)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def require(*scopes: str) -> Callable[[Request], Awaitable[Principal]]:
    """A FastAPI dependency: the authenticated :class:`Principal`, which must hold ``scopes``.

    Use as ``principal: Principal = Depends(require("trips:read"))``. Reads the principal the
    middleware stored; authenticates itself if the middleware did not run (e.g. public path).
    """
    unknown = set(scopes) - ALL_SCOPES
    if unknown:
        raise ValueError(f"unknown scopes {sorted(unknown)}")

    async def dependency(request: Request) -> Principal:
        principal = getattr(request.state, "principal", None)
        if not isinstance(principal, Principal):
            authenticator = getattr(request.app.state, STATE_KEY, None)
            if not isinstance(authenticator, Authenticator):
                raise Unauthenticated("authentication is not configured")
            principal = authenticator.authenticate(
                request.headers.get("authorization"), request.headers.get(API_KEY_HEADER)
            )
            request.state.principal = principal
        check_scopes(principal, scopes)
        return principal

    dependency.__name__ = f"require_{'_'.join(s.replace(':', '_') for s in scopes) or 'auth'}"
    return dependency
