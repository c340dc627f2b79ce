"""The assistant as an MCP server (official ``mcp`` SDK, ``MCPServer``), bound to one caller.

Tools: ``search_help``, ``answer``, ``get_order_status``, ``explain_charge``, ``quote_ride``,
``request_refund`` (destructive: two steps, the second needs the token of the first AND the typed
word CONFIRM), plus ``list_components`` (the ``render_<name>`` tools this caller may use, from the
versioned registry). Resources: ``kb://articles/{doc_id}`` and, per the MCP Apps extension, one
``ui://hexcity/<component>/<version>`` HTML app per registry component (``text/html;profile=mcp-app``);
tools that render a component name it in their definition's ``_meta.ui.resourceUri`` and in their
result's ``_meta`` (``ui/resourceUri`` and ``ui.resourceUri``). Prompt: ``support_reply``.

Identity: the caller's ``McpSession`` (viewer + scopes). stdio / in-process: one fixed session
(the launching user). HTTP: ``session`` is a resolver returning the session of the request being
served (set by the transport after it verified the request's bearer token, see
``hexcity.assistant.http``). Every tool checks the scopes it needs and reads only the caller's own
records.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from mcp.server import MCPServer
from mcp.server.apps import APP_MIME_TYPE
from mcp.server.mcpserver.exceptions import ResourceNotFoundError, ToolError
from mcp.server.mcpserver.resources import TextResource
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from hexcity.assistant.domain.acl import Viewer
from hexcity.assistant.domain.components import (
    ComponentRegistry,
    ComponentSpec,
    OrderStatusCard,
    default_registry,
)
from hexcity.assistant.errors import ArticleNotFound, ConfirmationRequired, NotPermitted
from hexcity.assistant.ports import SupportActions
from hexcity.assistant.service import AssistantService
from hexcity.assistant.ui import fare_props, fare_text
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


def ui_resource_uri(spec: ComponentSpec) -> str:
    """The MCP Apps resource of a registry component: ``ui://hexcity/<name>/<version>``."""
    return f"ui://hexcity/{spec.name}/{spec.version}"


def build_mcp_server(
    service: AssistantService,
    session: McpSession | Callable[[], McpSession],
    actions: SupportActions | None = None,
    registry: ComponentRegistry | None = None,
) -> MCPServer:
    """An MCP server answering for the caller of ``session`` (a fixed session, or a resolver called
    on every request: the HTTP transport's per-request identity)."""
    components = registry or default_registry()
    server = MCPServer(name="hexcity-support", version="1.0.0", instructions="hexcity customer support tools")
    current: Callable[[], McpSession] = session if callable(session) else (lambda: session)
    card_uri = {
        spec.name: ui_resource_uri(spec) for spec in components.permitted(_all_permissions(components))
    }

    def tool_ui(name: str) -> dict[str, Any]:
        uri = card_uri[name]
        return {"ui": {"resourceUri": uri}, "ui/resourceUri": uri}

    for spec in components.specs():
        server.add_resource(
            TextResource(
                uri=ui_resource_uri(spec),
                name=f"{spec.name}@{spec.version}",
                title=spec.description,
                description=f"MCP App of the {spec.key} component (props: its JSON schema)",
                mime_type=APP_MIME_TYPE,
                meta={"ui": {"csp": {}, "prefersBorder": True}},
                text=app_html(spec),
            )
        )

    @server.tool(annotations=ToolAnnotations(read_only_hint=True))
    def search_help(query: str) -> list[SearchResult]:
        """Help-center passages for ``query`` the caller may read, best first (at most 5)."""
        with _errors():
            viewer = current().viewer
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
    def answer(question: str) -> Annotated[CallToolResult, AnswerOut]:
        """A cited support answer; for personal order questions also an order-status card."""
        with _errors():
            caller = current()
            result = service.answer(question, caller.viewer)
            ui = None
            orders = [r for r in result.answer.records if r.startswith("order:")]
            if orders and "orders:read" in caller.scopes:
                ui = _order_card(service, caller, components, orders[0].split(":", 1)[1])
            out = AnswerOut(
                text=result.answer.text,
                citations=[_citation(c) for c in result.answer.citations],
                handoff=result.answer.handoff,
                arm=result.answer.arm,
                ui=ui,
            )
            return _result(out, card_uri.get(ui.component.split("@")[0]) if ui else None)

    @server.tool(annotations=ToolAnnotations(read_only_hint=True), meta=tool_ui("order-status-card"))
    def get_order_status(order_id: str) -> Annotated[CallToolResult, OrderStatus]:
        """Status and shipments of one of the caller's orders (needs orders:read)."""
        with _errors():
            caller = current()
            caller.need("orders:read")
            node, linked = service.own_record(caller.viewer, "order", order_id)
            shipments = [_line(n.name, n.attrs) for n in linked if n.kind == "Shipment"]
            card = _order_card(service, caller, components, order_id)
            out = OrderStatus(
                order_id=order_id,
                status=node.attrs.get("status", "unknown"),
                shipments=shipments,
                card=card,
            )
            return _result(out, card_uri["order-status-card"] if card else None)

    @server.tool(annotations=ToolAnnotations(read_only_hint=True))
    def explain_charge(payment_id: str) -> ChargeExplanation:
        """What a payment of the caller was for and which policy applies (needs payments:read)."""
        with _errors():
            session_ = current()
            viewer = session_.viewer
            session_.need("payments:read")
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

    @server.tool(annotations=ToolAnnotations(read_only_hint=False), meta=tool_ui("fare-breakdown"))
    async def quote_ride(
        pickup_lat: float, pickup_lng: float, dropoff_lat: float, dropoff_lng: float, product: str
    ) -> Annotated[CallToolResult, FareQuote]:
        """A real ride quote (road route × surge, locked for its validity) with its fare breakdown
        card (needs trips:read)."""
        with _errors():
            caller = current()
            caller.need("trips:read")
            if actions is None:
                raise NotPermitted("ride quotes are not available on this server")
            quote = await actions.quote_ride(
                caller.viewer.subject, (pickup_lat, pickup_lng), (dropoff_lat, dropoff_lng), product
            )
            rendered = components.render("fare-breakdown", fare_props(quote), caller.scopes, fare_text(quote))
            card = _ui(rendered.component, rendered.props, rendered.sandbox)
            out = FareQuote(card=card, text=rendered.fallback_text)
            return _result(out, card_uri["fare-breakdown"] if card else None)

    @server.tool(
        annotations=ToolAnnotations(destructive_hint=True, read_only_hint=False, idempotent_hint=False),
        meta=tool_ui("refund-form"),
    )
    async def request_refund(
        order_id: str, reason: str, confirmation_token: str = "", confirm: str = ""
    ) -> RefundStep:
        """Refund request in two steps: first call returns a summary and a token; the second call
        with that token and ``confirm="CONFIRM"`` refunds the order's payment through payments
        (needs orders:read and payments:write)."""
        with _errors():
            session = current()
            viewer = session.viewer
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
            refund = await actions.request_refund(viewer.subject, order_id, reason)
            del session.pending[confirmation_token]
            return RefundStep(
                state="submitted",
                order_id=order_id,
                summary=f"{summary} (refunded {refund.amount_cents / 100:.2f} {refund.currency})",
                refund_request_id=refund.refund_id,
            )

    @server.tool(annotations=ToolAnnotations(read_only_hint=True))
    def list_components() -> list[dict[str, Any]]:
        """The render_<name> component tools this caller may use, with their JSON schemas and the
        ``ui://`` resource of each (MCP Apps)."""
        with _errors():
            return [
                {
                    **tool,
                    "resourceUri": f"ui://hexcity/{tool['name'][7:].replace('_', '-')}/{tool['version']}",
                }
                for tool in components.to_mcp_tools(current().scopes)
            ]

    @server.resource("kb://articles/{doc_id}", mime_type="text/markdown")
    def article(doc_id: str) -> str:
        """A help-center article the caller may read."""
        try:
            found = service.article(doc_id, current().viewer)
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


def _result(out: BaseModel, resource_uri: str | None) -> CallToolResult:
    """The tool result: structured content (validated against the tool's output schema by the SDK),
    its JSON as the text fallback, and the ``ui://`` app that renders it in ``_meta`` (MCP Apps)."""
    data = out.model_dump(mode="json")
    meta = {"ui/resourceUri": resource_uri, "ui": {"resourceUri": resource_uri}} if resource_uri else None
    return CallToolResult(
        content=[TextContent(type="text", text=out.model_dump_json())], structured_content=data, meta=meta
    )


def _all_permissions(registry: ComponentRegistry) -> frozenset[str]:
    return frozenset(p for spec in registry.specs() for p in spec.permissions)


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


# The MCP App of every component: one static document (no props baked in, so no injection point),
# a strict CSP whose only script is this one (by hash), no network, no forms. The host sends the
# tool result by postMessage (``ui/notifications/tool-result``); the app takes the component's props
# from ``structuredContent`` (``card``/``ui`` of this component), checks them against the schema's
# property names and types, and writes them with textContent only. The refund form asks the host
# to call ``request_refund`` (``tools/call``) - the server's two-step confirmation still applies.
_APP_SCRIPT = """
const SPEC = JSON.parse(document.getElementById("spec").textContent);
const root = document.getElementById("app");
let nextId = 1;
function rpc(method, params) { parent.postMessage({jsonrpc: "2.0", id: nextId++, method, params}, "*"); }
function el(tag, text) {
  const n = document.createElement(tag);
  if (text !== undefined) n.textContent = String(text);
  return n;
}
function typeOk(schema, v) {
  const types = schema.anyOf ? schema.anyOf.map(s => s.type) : [schema.type];
  return types.some(t => t === undefined || (t === "null" && v === null)
    || (t === "array" && Array.isArray(v)) || (t === "integer" && Number.isInteger(v))
    || (t === "number" && typeof v === "number")
    || (t === "string" && typeof v === "string") || (t === "boolean" && typeof v === "boolean"));
}
function valid(props) {
  if (!props || typeof props !== "object") return false;
  const known = SPEC.schema.properties || {};
  for (const k of SPEC.schema.required || []) if (!(k in props)) return false;
  return Object.entries(props).every(([k, v]) => k in known && typeOk(known[k], v));
}
function propsOf(result) {
  const data = (result && result.structuredContent) || {};
  for (const ui of [data.card, data.ui]) if (ui && ui.component === SPEC.key) return ui.props;
  return null;
}
function render(props) {
  root.replaceChildren();
  if (!valid(props)) { root.appendChild(el("p", "This card could not be shown.")); return; }
  root.setAttribute("aria-label", props.aria_label);
  root.appendChild(el("h1", SPEC.title));
  const dl = el("dl");
  for (const [k, v] of Object.entries(props)) {
    if (k === "aria_label" || k === "submit_url" || v === null || typeof v === "object") continue;
    dl.appendChild(el("dt", k.replace(/_/g, " "))); dl.appendChild(el("dd", v));
  }
  root.appendChild(dl);
  for (const [k, v] of Object.entries(props)) {
    if (!Array.isArray(v) || !v.length || k === "route" || k === "reasons") continue;
    const ul = el("ul"); ul.setAttribute("aria-label", k);
    for (const item of v) ul.appendChild(el("li", typeof item === "object" ? JSON.stringify(item) : item));
    root.appendChild(ul);
  }
  if (SPEC.name === "refund-form") refundForm(props);
}
function refundForm(props) {
  const label = el("label", "Reason"), select = el("select");
  select.id = "reason"; label.htmlFor = "reason";
  for (const r of props.reasons) select.appendChild(el("option", r));
  const confirm = el("input"); confirm.type = "checkbox"; confirm.id = "confirm";
  const cl = el("label", "I confirm this refund request"); cl.htmlFor = "confirm";
  const button = el("button", "Request refund"); button.type = "button";
  const status = el("p"); status.setAttribute("role", "status");
  button.addEventListener("click", () => {
    if (!confirm.checked) { status.textContent = "Please confirm the request first."; return; }
    rpc("tools/call", {name: "request_refund", arguments: {order_id: props.order_id, reason: select.value}});
    status.textContent = "Sent: confirm it in the conversation.";
  });
  root.append(label, select, confirm, cl, button, status);
}
window.addEventListener("message", (e) => {
  if (e.source !== parent || !e.data || e.data.jsonrpc !== "2.0") return;
  if (e.data.method === "ui/notifications/tool-result") render(propsOf(e.data.params));
});
rpc("ui/initialize", {appInfo: {name: "hexcity-" + SPEC.name, version: SPEC.version}, appCapabilities: {}});
"""
_APP_SCRIPT_HASH = base64.b64encode(hashlib.sha256(_APP_SCRIPT.encode()).digest()).decode()
APP_CSP = (
    f"default-src 'none'; script-src 'sha256-{_APP_SCRIPT_HASH}'; style-src 'unsafe-inline'; "
    "img-src 'none'; connect-src 'none'; form-action 'none'; base-uri 'none'; object-src 'none'"
)


def app_html(spec: ComponentSpec) -> str:
    """The MCP App document of ``spec`` (static; the schema is embedded as inert JSON)."""
    data = {
        "name": spec.name,
        "version": spec.version,
        "key": spec.key,
        "title": spec.description,
        "schema": spec.json_schema(),
    }
    spec_json = json.dumps(data, sort_keys=True).replace("<", "\\u003c").replace(">", "\\u003e")
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{APP_CSP}">'
        f"<title>{html.escape(spec.description)}</title>"
        "<style>body{font:14px system-ui,sans-serif;margin:8px;color:#1a1a1a}dt{font-weight:600}"
        "button{margin-top:6px}:focus-visible{outline:3px solid #ffbf00}</style></head>"
        f'<body><main id="app" aria-live="polite"><p>Loading {html.escape(spec.name)}…</p></main>'
        f'<script type="application/json" id="spec">{spec_json}</script>'
        f"<script>{_APP_SCRIPT}</script></body></html>"
    )


__all__ = ["APP_CSP", "McpSession", "OrderStatusCard", "app_html", "build_mcp_server", "ui_resource_uri"]
