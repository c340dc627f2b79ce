"""The assistant as an MCP server (official ``mcp`` SDK, ``MCPServer``), bound to one caller.

Tools: ``search_help``, ``answer``, ``get_order_status``, ``explain_charge``, ``quote_ride``,
``request_refund`` (destructive: two steps, the second needs the token of the first AND the typed
word CONFIRM), plus ``list_components`` (the ``render_<name>`` tools this caller may use, from the
versioned registry). Resources: ``kb://articles/{doc_id}``; prompt: ``support_reply``.

Identity: a server instance serves one authenticated session (``McpSession``: viewer + scopes),
created by the transport after authentication (stdio: the launching user; HTTP: per token). Every
tool checks the scopes it needs and reads only the caller's own records.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError, ToolError
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field

from hexcity.assistant.domain.acl import Viewer
from hexcity.assistant.domain.components import ComponentRegistry, OrderStatusCard, default_registry
from hexcity.assistant.errors import ArticleNotFound, ConfirmationRequired, NotPermitted
from hexcity.assistant.ports import SupportActions
from hexcity.assistant.service import AssistantService
from hexcity.kernel import HexcityError

MAX_PENDING_CONFIRMATIONS = 20
CONFIRM_WORD = "CONFIRM"
_STATUS = {"pending", "processing", "shipped", "delivered", "cancelled"}


@dataclass
class McpSession:
    viewer: Viewer
    scopes: frozenset[str]
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    pending: dict[str, tuple[str, str]] = field(default_factory=dict)  # token → (order id, reason)

    def need(self, *scopes: str) -> None:
        missing = sorted(set(scopes) - self.scopes)
        if missing:
            raise NotPermitted(f"missing permission {', '.join(missing)}")


class SearchResult(BaseModel):
    doc_id: str
    chunk_id: str
    version: int
    heading: str
    text: str
    score: float


class CitationOut(BaseModel):
    number: int
    doc_id: str
    chunk_id: str
    version: int
    heading: str


class UiSpec(BaseModel):
    component: str = Field(description="name@version from the component registry")
    props: dict[str, Any]
    sandbox: str | None = None


class AnswerOut(BaseModel):
    text: str
    citations: list[CitationOut]
    handoff: bool
    arm: str
    ui: UiSpec | None = None


class OrderStatus(BaseModel):
    order_id: str
    status: str
    shipments: list[str]
    card: UiSpec | None = None


class ChargeExplanation(BaseModel):
    payment_id: str
    status: str
    amount: str
    explanation: str
    citations: list[CitationOut]


class FareQuote(BaseModel):
    card: UiSpec | None
    text: str


class RefundStep(BaseModel):
    state: Literal["pending_confirmation", "submitted"]
    order_id: str
    summary: str
    confirmation_token: str | None = None
    refund_request_id: str | None = None


def build_mcp_server(
    service: AssistantService,
    session: McpSession,
    actions: SupportActions | None = None,
    registry: ComponentRegistry | None = None,
) -> MCPServer:
    """An MCP server answering for ``session``'s caller only."""
    components = registry or default_registry()
    server = MCPServer(name="hexcity-support", version="1.0.0", instructions="hexcity customer support tools")
    viewer = session.viewer

    @server.tool(annotations=ToolAnnotations(read_only_hint=True))
    def search_help(query: str) -> list[SearchResult]:
        """Help-center passages for ``query`` the caller may read, best first (at most 5)."""
        with _errors():
            return [
                SearchResult(
                    doc_id=hit.chunk.doc_id,
                    chunk_id=hit.chunk.chunk_id,
                    version=hit.chunk.version,
                    heading=" > ".join(hit.chunk.heading_path),
                    text=hit.chunk.text,
                    score=round(hit.score, 6),
                )
                for hit in service.search(query, viewer, k=5)
            ]

    @server.tool(annotations=ToolAnnotations(read_only_hint=True))
    def answer(question: str) -> AnswerOut:
        """A cited support answer; for personal order questions also an order-status card."""
        with _errors():
            result = service.answer(question, viewer)
            ui = None
            orders = [r for r in result.answer.records if r.startswith("order:")]
            if orders and "orders:read" in session.scopes:
                ui = _order_card(service, session, components, orders[0].split(":", 1)[1])
            return AnswerOut(
                text=result.answer.text,
                citations=[_citation(c) for c in result.answer.citations],
                handoff=result.answer.handoff,
                arm=result.answer.arm,
                ui=ui,
            )

    @server.tool(annotations=ToolAnnotations(read_only_hint=True))
    def get_order_status(order_id: str) -> OrderStatus:
        """Status and shipments of one of the caller's orders (needs orders:read)."""
        with _errors():
            session.need("orders:read")
            node, linked = service.own_record(viewer, "order", order_id)
            shipments = [_line(n.name, n.attrs) for n in linked if n.kind == "Shipment"]
            return OrderStatus(
                order_id=order_id,
                status=node.attrs.get("status", "unknown"),
                shipments=shipments,
                card=_order_card(service, session, components, order_id),
            )

    @server.tool(annotations=ToolAnnotations(read_only_hint=True))
    def explain_charge(payment_id: str) -> ChargeExplanation:
        """What a payment of the caller was for and which policy applies (needs payments:read)."""
        with _errors():
            session.need("payments:read")
            node, _ = service.own_record(viewer, "payment", payment_id)
            kind = node.attrs.get("kind", "payment")
            result = service.answer(f"why was I charged a {kind} platform fee", viewer, arm="plain")
            return ChargeExplanation(
                payment_id=payment_id,
                status=node.attrs.get("status", "unknown"),
                amount=node.attrs.get("amount", "unknown"),
                explanation=result.answer.text,
                citations=[_citation(c) for c in result.answer.citations],
            )

    @server.tool(annotations=ToolAnnotations(read_only_hint=True))
    def quote_ride(
        pickup_lat: float, pickup_lng: float, dropoff_lat: float, dropoff_lng: float, product: str
    ) -> FareQuote:
        """A ride quote with its fare breakdown card (needs trips:read)."""
        with _errors():
            session.need("trips:read")
            if actions is None:
                raise NotPermitted("ride quotes are not available on this server")
            quote = actions.quote_ride(
                viewer.subject, (pickup_lat, pickup_lng), (dropoff_lat, dropoff_lng), product
            )
            total = int(quote["total_cents"]) / 100
            text = f"Your {quote['product']} ride costs {total:.2f} (surge {quote['surge_multiplier']}x)."
            props = {**quote, "aria_label": text}
            rendered = components.render("fare-breakdown", props, session.scopes, text)
            return FareQuote(
                card=_ui(rendered.component, rendered.props, rendered.sandbox), text=rendered.fallback_text
            )

    @server.tool(
        annotations=ToolAnnotations(destructive_hint=True, read_only_hint=False, idempotent_hint=False)
    )
    def request_refund(
        order_id: str, reason: str, confirmation_token: str = "", confirm: str = ""
    ) -> RefundStep:
        """Refund request in two steps: first call returns a summary and a token; the second call
        with that token and ``confirm="CONFIRM"`` submits it (needs orders:read and payments:write)."""
        with _errors():
            session.need("orders:read", "payments:write")
            node, _ = service.own_record(viewer, "order", order_id)
            reason = reason.strip()[:500]
            if not reason:
                raise ConfirmationRequired("a reason is required")
            summary = f"Refund request for order {order_id} ({node.attrs.get('status', 'unknown')}): {reason}"
            if not confirmation_token:
                if len(session.pending) >= MAX_PENDING_CONFIRMATIONS:
                    session.pending.pop(next(iter(session.pending)))
                token = hmac.new(
                    session.secret, f"{order_id}\n{reason}".encode(), hashlib.sha256
                ).hexdigest()[:32]
                session.pending[token] = (order_id, reason)
                return RefundStep(
                    state="pending_confirmation", order_id=order_id, summary=summary, confirmation_token=token
                )
            if session.pending.get(confirmation_token) != (order_id, reason) or confirm != CONFIRM_WORD:
                raise ConfirmationRequired("confirm with the token of the first call and the word CONFIRM")
            if actions is None:
                raise NotPermitted("refund requests are not available on this server")
            del session.pending[confirmation_token]
            request_id = actions.request_refund(viewer.subject, order_id, reason)
            return RefundStep(
                state="submitted", order_id=order_id, summary=summary, refund_request_id=request_id
            )

    @server.tool(annotations=ToolAnnotations(read_only_hint=True))
    def list_components() -> list[dict[str, Any]]:
        """The render_<name> component tools this caller may use, with their JSON schemas."""
        with _errors():
            return components.to_mcp_tools(session.scopes)

    @server.resource("kb://articles/{doc_id}", mime_type="text/markdown")
    def article(doc_id: str) -> str:
        """A help-center article the caller may read."""
        try:
            found = service.article(doc_id, viewer)
        except ArticleNotFound as error:
            raise ResourceNotFoundError(f"kb://articles/{doc_id}") from error
        return f"# {found.title}\n\n(version {found.version})\n\n{found.body}"

    @server.prompt()
    def support_reply(question: str) -> str:
        """The house-style instruction for answering ``question`` with the help-center tools."""
        with _errors():
            return (
                "Answer the customer's question politely in at most three sentences. Use the answer tool; "
                "cite its sources; never move money without request_refund's confirmation step.\n\n"
                f"Question: {question}"
            )

    return server


@contextmanager
def _errors() -> Iterator[None]:
    """Expected errors become MCP tool errors carrying their stable code (no stack trace)."""
    try:
        yield
    except HexcityError as error:
        raise ToolError(f"{error.code}: {error.message}") from error


def _citation(citation: Any) -> CitationOut:
    return CitationOut(
        number=citation.number,
        doc_id=citation.doc_id,
        chunk_id=citation.chunk_id,
        version=citation.version,
        heading=citation.heading,
    )


def _line(name: str, attrs: dict[str, str]) -> str:
    parts = [f"{name}: {attrs.get('status', 'unknown')}"]
    if attrs.get("warehouse"):
        parts.append(f"from {attrs['warehouse']}")
    if attrs.get("eta"):
        parts.append(f"ETA {attrs['eta']}")
    return ", ".join(parts)


def _ui(component: str | None, props: dict[str, Any] | None, sandbox: str | None) -> UiSpec | None:
    return (
        UiSpec(component=component, props=props, sandbox=sandbox) if component and props is not None else None
    )


def _order_card(
    service: AssistantService, session: McpSession, registry: ComponentRegistry, order_id: str
) -> UiSpec | None:
    node, linked = service.own_record(session.viewer, "order", order_id)
    shipments = [n for n in linked if n.kind == "Shipment"]
    status = node.attrs.get("status", "pending")
    etas = sorted(n.attrs["eta"] for n in shipments if n.attrs.get("eta"))
    props = {
        "order_id": order_id,
        "status": status if status in _STATUS else "pending",
        "estimated_delivery": etas[-1] if etas else None,
        "allowed_actions": ["track"] + (["return"] if status == "delivered" else []),
        "shipments": [_line(n.name, n.attrs) for n in shipments],
        "aria_label": f"Order {order_id} is {status}, in {len(shipments) or 1} shipment(s)",
    }
    text = f"Order {order_id}: {status}"
    rendered = registry.render("order-status-card", props, session.scopes, text)
    return _ui(rendered.component, rendered.props, rendered.sandbox)


__all__ = ["McpSession", "OrderStatusCard", "build_mcp_server"]
