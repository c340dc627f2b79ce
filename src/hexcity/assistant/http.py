"""HTTP API of the assistant (``/assistant/v1``): answers, search, articles, user actions and MCP.

Any authenticated person may ask (riders as customers, drivers, merchants, admins as staff);
service principals may not. Every error is ``{"code": ..., "message": ...}`` with its status.

``/assistant/v1/mcp`` serves the MCP server over streamable HTTP (stateless, JSON responses).
Every request carries ``Authorization: Bearer <JWT>``, verified by the platform's auth exactly like
the REST API (the app's auth middleware, and again here if it did not run): a missing or invalid
token is answered 401 before any MCP message is read; the tools then run as that principal with its
scopes (the session of the request, through a context variable).
"""

from __future__ import annotations

import contextvars
import re
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from hexcity.assistant.domain.acl import CUSTOMER, DRIVER, MERCHANT, STAFF, Viewer
from hexcity.assistant.domain.components import ComponentRegistry, default_registry
from hexcity.assistant.errors import NotPermitted
from hexcity.assistant.mcp_server import McpSession, build_mcp_server
from hexcity.assistant.ports import SupportActions
from hexcity.assistant.service import AssistantService
from hexcity.assistant.ui import REFUND_REASONS, answer_components, component_catalog
from hexcity.infra.auth import Authenticator, AuthError, Forbidden, Principal, Role, Unauthenticated, require
from hexcity.infra.auth.dependencies import API_KEY_HEADER, STATE_KEY, error_body
from hexcity.kernel import HexcityError, InvalidInput, Unavailable

_AUTHENTICATED = Depends(require())
_AUDIENCE = {Role.RIDER: CUSTOMER, Role.DRIVER: DRIVER, Role.MERCHANT: MERCHANT, Role.ADMIN: STAFF}
MAX_MCP_SUBJECTS = 10_000  # callers whose pending refund confirmations are kept (LRU)
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{8,255}")


def viewer_of(principal: Principal) -> Viewer:
    """The assistant's view of an authenticated principal; services are refused (403)."""
    audience = _AUDIENCE.get(principal.role)
    if audience is None:
        raise Forbidden("the assistant answers people, not services")
    return Viewer(principal.subject, audience)


class RideContext(BaseModel):
    """The ride a fare question is about (the chat knows the rider's chosen points)."""

    model_config = ConfigDict(extra="forbid")

    pickup: tuple[Annotated[float, Field(ge=-90, le=90)], Annotated[float, Field(ge=-180, le=180)]]
    dropoff: tuple[Annotated[float, Field(ge=-90, le=90)], Annotated[float, Field(ge=-180, le=180)]]
    product: Literal["standard", "comfort", "xl"] = "standard"


class AnswerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=1000)
    arm: Literal["plain", "graph", "routed"] = "routed"
    ride: RideContext | None = None


class RefundAction(BaseModel):
    """The refund form's submission (the form's reasons only; the box must be ticked)."""

    model_config = ConfigDict(extra="forbid")

    order_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
    reason: Literal[REFUND_REASONS]  # type: ignore[valid-type]
    confirmed: Literal[True]
    amount_cents: int = Field(default=0, ge=0, le=10**12, description="0 = everything left to refund")


def build_assistant_router(
    service: AssistantService,
    registry: ComponentRegistry | None = None,
    *,
    actions: SupportActions | None = None,
    mcp: bool = True,
) -> APIRouter:
    """``POST /answers``, ``POST /actions/refund``, ``GET /search``, ``GET /articles``,
    ``GET /articles/{doc_id}``, ``GET /status``, ``GET /components``, and ``/mcp`` (MCP over
    streamable HTTP, when ``mcp``; its session manager runs in the router's lifespan).

    An answer carries ``ui``: the registry components (validated props) the caller may see: the
    tracking card of the asker's own order the answer used, the refund form when they ask for a
    refund of it, the fare breakdown of a real quote for a fare question about a ``ride``.
    ``actions`` (quotes, refunds) come from the business modules; without them the fare card is
    never shown and ``/actions/refund`` answers 503 ``ActionUnavailable``.
    """
    components = registry or default_registry()
    lifespan = None
    endpoint: McpHttpEndpoint | None = None
    if mcp:
        endpoint = McpHttpEndpoint(service, actions, components)
        lifespan = endpoint.lifespan
    router = APIRouter(prefix="/assistant/v1", tags=["assistant"], lifespan=lifespan)
    if endpoint is not None:
        # an ASGI endpoint (not a FastAPI route): the SDK's transport reads and answers the request
        router.routes.append(
            Route(
                f"{router.prefix}/mcp", endpoint, methods=["GET", "POST", "DELETE"], include_in_schema=False
            )
        )

    @router.post("/answers")
    async def answer(body: AnswerRequest, principal: Annotated[Principal, _AUTHENTICATED]) -> Any:
        viewer = viewer_of(principal)
        ride = body.ride.model_dump() if body.ride is not None else None
        try:
            result = await run_in_threadpool(service.answer, body.question, viewer, arm=body.arm)
            ui = await answer_components(
                service,
                viewer,
                principal.scopes,
                components,
                body.question,
                result,
                actions=actions,
                ride=ride,
            )
        except HexcityError as error:
            return _error(error)
        return {
            "text": result.answer.text,
            "handoff": result.answer.handoff,
            "arm": result.answer.arm,
            "route_reason": result.route.reason,
            "facts": list(result.answer.facts),
            "citations": [
                {
                    "number": c.number,
                    "doc_id": c.doc_id,
                    "chunk_id": c.chunk_id,
                    "version": c.version,
                    "heading": c.heading,
                }
                for c in result.answer.citations
            ],
            "index_version": result.index_version,
            "ui": ui,
        }

    @router.post("/actions/refund", status_code=201)
    async def refund(
        body: RefundAction,
        principal: Annotated[Principal, _AUTHENTICATED],
        idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
    ) -> Any:
        """The refund form's submit: a real refund through payments for the caller's own order.

        Needs ``orders:read`` and ``payments:write`` and an ``Idempotency-Key`` (8-255 printable
        ASCII): the same key gives back the same refund (200, ``replayed``), never a second one.
        Another customer's order is 404 ``RecordNotFound``, exactly like a missing one.
        """
        try:
            viewer = viewer_of(principal)
            missing = sorted({"orders:read", "payments:write"} - principal.scopes)
            if missing:
                raise NotPermitted(f"missing permission {', '.join(missing)}")
            if idempotency_key is None or not _IDEMPOTENCY_KEY.fullmatch(idempotency_key):
                raise InvalidInput(
                    "send an Idempotency-Key header (8-255 printable ASCII characters)",
                    code="IdempotencyKeyRequired",
                )
            if actions is None:
                raise Unavailable("refunds are not available on this server", code="ActionUnavailable")
            done = await actions.request_refund(
                viewer.subject,
                body.order_id,
                body.reason,
                amount_cents=body.amount_cents,
                idempotency_key=idempotency_key,
            )
        except HexcityError as error:
            return _error(error)
        amount = f"{done.amount_cents / 100:.2f} {done.currency}"
        text = f"Your refund {done.refund_id} of {amount} for order {done.order_id} is {done.status}."
        return JSONResponse(
            {
                "refund_id": done.refund_id,
                "order_id": done.order_id,
                "payment_id": done.payment_id,
                "amount_cents": done.amount_cents,
                "currency": done.currency,
                "status": done.status,
                "replayed": done.replayed,
                "text": text,
            },
            status_code=200 if done.replayed else 201,
        )

    @router.get("/components")
    async def component_list(principal: Annotated[Principal, _AUTHENTICATED]) -> Any:
        viewer_of(principal)
        return {"items": component_catalog(components, principal.scopes)}

    @router.get("/search")
    async def search(
        principal: Annotated[Principal, _AUTHENTICATED],
        q: Annotated[str, Query(min_length=1, max_length=1000)],
        k: Annotated[int, Query(ge=1, le=20)] = 5,
    ) -> Any:
        viewer = viewer_of(principal)
        try:
            hits = await run_in_threadpool(service.search, q, viewer, k=k)
        except HexcityError as error:
            return _error(error)
        return {
            "items": [
                {
                    "chunk_id": h.chunk.chunk_id,
                    "doc_id": h.chunk.doc_id,
                    "version": h.chunk.version,
                    "heading": " > ".join(h.chunk.heading_path),
                    "text": h.chunk.text,
                    "score": round(h.score, 6),
                }
                for h in hits
            ]
        }

    @router.get("/articles")
    async def articles(principal: Annotated[Principal, _AUTHENTICATED]) -> Any:
        viewer = viewer_of(principal)
        return {
            "items": [
                {"id": a.doc_id, "title": a.title, "version": a.version}
                for a in service.list_articles(viewer)
            ]
        }

    @router.get("/articles/{doc_id}")
    async def article(doc_id: str, principal: Annotated[Principal, _AUTHENTICATED]) -> Any:
        try:
            found = service.article(doc_id, viewer_of(principal))
        except HexcityError as error:
            return _error(error)
        return {"id": found.doc_id, "title": found.title, "version": found.version, "body": found.body}

    @router.get("/status")
    async def status(principal: Annotated[Principal, _AUTHENTICATED]) -> Any:
        viewer_of(principal)
        return {
            "index_version": service.index_version,
            "last_event_ts": service.last_event_ts,
            "articles": len(service.articles),
            "chunks": len(service.index.chunks),
            "graph_nodes": len(service.graph.nodes),
            "graph_edges": len(service.graph.edges),
            "embedder": service.index.embedder.name,
        }

    return router


_CURRENT_SESSION: contextvars.ContextVar[McpSession] = contextvars.ContextVar("hexcity_mcp_session")


class McpHttpEndpoint:
    """ASGI endpoint of the MCP server: authenticate, bind the caller's session, then hand the
    request to the SDK's streamable HTTP session manager (stateless, JSON responses).

    One ``MCPServer`` serves every caller; its tools read the caller's session from a context
    variable set here for the request. Refund confirmation tokens survive between requests: each
    subject keeps its HMAC secret and pending confirmations (LRU of :data:`MAX_MCP_SUBJECTS`).
    """

    def __init__(
        self, service: AssistantService, actions: SupportActions | None, registry: ComponentRegistry
    ) -> None:
        self.server = build_mcp_server(service, _CURRENT_SESSION.get, actions, registry)
        # the bearer token is the only credential (no cookies): DNS rebinding cannot borrow it, so
        # the SDK's Host/Origin allow-list (made for unauthenticated local servers) stays off
        self.server.streamable_http_app(
            stateless_http=True,
            json_response=True,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        self.manager = self.server.session_manager
        self._subjects: OrderedDict[str, McpSession] = OrderedDict()

    @asynccontextmanager
    async def lifespan(self, _app: Any) -> AsyncIterator[None]:
        async with self.manager.run():
            yield

    def session_for(self, principal: Principal) -> McpSession:
        """The caller's session: their viewer and this token's scopes, with their confirmations."""
        viewer = viewer_of(principal)
        known = self._subjects.pop(principal.subject, None)
        if known is None:
            known = McpSession(viewer, frozenset())
        self._subjects[principal.subject] = known
        while len(self._subjects) > MAX_MCP_SUBJECTS:
            self._subjects.popitem(last=False)
        return McpSession(viewer, principal.scopes, secret=known.secret, pending=known.pending)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            principal = _principal(scope)
            session = self.session_for(principal)
        except AuthError as error:
            status, body, headers = error_body(error)
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        token = _CURRENT_SESSION.set(session)
        try:
            await self.manager.handle_request(scope, receive, send)
        finally:
            _CURRENT_SESSION.reset(token)


def _principal(scope: Scope) -> Principal:
    """The principal the app's auth middleware stored, else authenticate the headers here (the
    app's :class:`Authenticator`); raises ``Unauthenticated`` (401) / ``Forbidden`` (403)."""
    found = scope.get("state", {}).get("principal")
    if isinstance(found, Principal):
        return found
    app = scope.get("app")
    authenticator = getattr(getattr(app, "state", None), STATE_KEY, None)
    headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
    if not isinstance(authenticator, Authenticator):
        raise Unauthenticated("authentication is not configured")
    return authenticator.authenticate(headers.get("authorization"), headers.get(API_KEY_HEADER))


def _error(error: HexcityError) -> JSONResponse:
    return JSONResponse({"code": error.code, "message": error.message}, status_code=error.status)
