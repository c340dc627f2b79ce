"""Generative-UI payloads for the HTTP chat: which registry components an answer carries.

Every payload is validated by the versioned :mod:`components <hexcity.assistant.domain.components>`
registry before it leaves the server (invalid props, a missing permission: no component, text only).
The page validates the props again against the component's JSON schema before it renders them.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Mapping
from typing import Any

from hexcity.assistant.domain.acl import Viewer
from hexcity.assistant.domain.components import ComponentRegistry, Rendered
from hexcity.assistant.errors import RecordNotFound
from hexcity.assistant.ports import SupportActions
from hexcity.assistant.service import AnswerResult, AssistantService
from hexcity.kernel import HexcityError

MAX_COMPONENTS_PER_ANSWER = 3
REFUND_REASONS = ("item missing", "item damaged", "arrived late", "other")
REFUND_SUBMIT_URL = "/assistant/v1/actions/refund"
_STATUS = frozenset({"pending", "processing", "shipped", "delivered", "cancelled"})
_REFUND = re.compile(r"(?i)\brefund")
_FARE = re.compile(r"(?i)\b(fares?|price[ds]?|pricing|cost|costs|how much|quotes?|surge|charged?|charges)\b")


def is_fare_question(question: str) -> bool:
    """A question about what a ride costs or what was charged (gets the fare-breakdown card)."""
    return bool(_FARE.search(question))


async def answer_components(
    service: AssistantService,
    viewer: Viewer,
    scopes: Iterable[str],
    registry: ComponentRegistry,
    question: str,
    result: AnswerResult,
    *,
    actions: SupportActions | None = None,
    ride: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The components of one answer, each validated by the registry for the caller's scopes:

    * a fare question with a ``ride`` (``pickup``/``dropoff`` ``(lat, lng)``, ``product``) and
      ``actions``: the ``fare-breakdown`` card of a real quote for the asker;
    * the order card of the first own order the answer used, and a refund form for that order when
      the question asks about a refund (its ``max_refund_cents`` is what payments has left to
      refund, with ``actions``; no form when nothing is left).

    At most :data:`MAX_COMPONENTS_PER_ANSWER`.
    """
    held = frozenset(scopes)
    out: list[dict[str, Any]] = []
    if actions is not None and ride is not None and is_fare_question(question):
        card = await fare_card(actions, viewer, held, registry, ride)
        if card is not None:
            out.append(card)
    orders = [r.split(":", 1)[1] for r in result.answer.records if r.startswith("order:")]
    if orders:
        order = await asyncio.to_thread(order_card, service, viewer, held, registry, orders[0])
        if order is not None:
            out.append(order)
        if _REFUND.search(question):
            refundable = None
            if actions is not None and {"orders:read", "payments:write"} <= held:
                try:
                    refundable = await actions.refundable_cents(viewer.subject, orders[0])
                except HexcityError:
                    refundable = 0
            if refundable != 0:
                form = await asyncio.to_thread(
                    refund_form, service, viewer, held, registry, orders[0], refundable
                )
                if form is not None:
                    out.append(form)
    return out[:MAX_COMPONENTS_PER_ANSWER]


async def fare_card(
    actions: SupportActions,
    viewer: Viewer,
    scopes: frozenset[str],
    registry: ComponentRegistry,
    ride: Mapping[str, Any],
) -> dict[str, Any] | None:
    """The ``fare-breakdown`` card of a real quote (None without ``trips:read`` or when the quote
    fails, e.g. no road route between the points)."""
    if "trips:read" not in scopes:
        return None
    try:
        quote = await actions.quote_ride(
            viewer.subject, tuple(ride["pickup"]), tuple(ride["dropoff"]), str(ride["product"])
        )
    except HexcityError:
        return None
    return _payload(registry.render("fare-breakdown", fare_props(quote), scopes, fare_text(quote)))


def fare_props(quote: Mapping[str, Any]) -> dict[str, Any]:
    """The ``fare-breakdown`` props of a quote: the card's fields only (its schema forbids others)."""
    keys = (
        "quote_id",
        "product",
        "base_fare_cents",
        "surge_multiplier",
        "total_cents",
        "platform_fee_cents",
        "valid_for_s",
    )
    return {**{k: quote[k] for k in keys if k in quote}, "aria_label": fare_text(quote)}


def fare_text(quote: Mapping[str, Any]) -> str:
    total = int(quote["total_cents"]) / 100
    return f"Your {quote['product']} ride costs {total:.2f} (surge {quote['surge_multiplier']}x)."


def order_card(
    service: AssistantService,
    viewer: Viewer,
    scopes: frozenset[str],
    registry: ComponentRegistry,
    order_id: str,
) -> dict[str, Any] | None:
    """The ``order-status-card`` of one of ``viewer``'s orders, or None (not theirs, not permitted)."""
    try:
        node, linked = service.own_record(viewer, "order", order_id)
    except RecordNotFound:
        return None
    shipments = [n for n in linked if n.kind == "Shipment"]
    status = node.attrs.get("status", "pending")
    etas = sorted(n.attrs["eta"] for n in shipments if n.attrs.get("eta"))
    props = {
        "order_id": order_id,
        "status": status if status in _STATUS else "pending",
        "estimated_delivery": etas[-1] if etas else None,
        "allowed_actions": ["track"] + (["return"] if status == "delivered" else []),
        "shipments": [shipment_line(n.name, n.attrs) for n in shipments][:10],
        "route": _route(node.attrs.get("route", "")),
        "aria_label": f"Order {order_id} is {status}, in {len(shipments) or 1} shipment(s)",
    }
    return _payload(registry.render("order-status-card", props, scopes, f"Order {order_id}: {status}"))


def refund_form(
    service: AssistantService,
    viewer: Viewer,
    scopes: frozenset[str],
    registry: ComponentRegistry,
    order_id: str,
    refundable_cents: int | None = None,
) -> dict[str, Any] | None:
    """The ``refund-form`` for one of ``viewer``'s orders; submitting it posts to
    :data:`REFUND_SUBMIT_URL` (a real refund through payments). ``refundable_cents``: what payments
    has left to refund (default: the order record's ``amount_minor``)."""
    try:
        node, _ = service.own_record(viewer, "order", order_id)
    except RecordNotFound:
        return None
    amount = node.attrs.get("amount_minor", "0")
    if refundable_cents is None:
        refundable_cents = int(amount) if amount.isdigit() else 0
    props = {
        "order_id": order_id,
        "max_refund_cents": refundable_cents,
        "reasons": list(REFUND_REASONS),
        "submit_url": REFUND_SUBMIT_URL,
        "aria_label": f"Request a refund for order {order_id}",
    }
    text = f"To request a refund for order {order_id}, tell us the reason."
    return _payload(registry.render("refund-form", props, scopes, text))


def shipment_line(name: str, attrs: dict[str, str]) -> str:
    parts = [f"{name}: {attrs.get('status', 'unknown')}"]
    if attrs.get("warehouse"):
        parts.append(f"from {attrs['warehouse']}")
    if attrs.get("split_reason"):
        parts.append(f"split: {attrs['split_reason']}")
    if attrs.get("eta"):
        parts.append(f"ETA {attrs['eta']}")
    return ", ".join(parts)[:300]


def component_catalog(registry: ComponentRegistry, scopes: Iterable[str]) -> list[dict[str, Any]]:
    """The permitted components with their versions, sandbox levels and JSON schemas."""
    return [
        {
            "name": spec.name,
            "version": spec.version,
            "key": spec.key,
            "sandbox": spec.sandbox,
            "iframe_sandbox": spec.iframe_sandbox(),
            "schema": spec.json_schema(),
        }
        for spec in registry.permitted(scopes)
    ]


def _route(encoded: str) -> list[tuple[float, float]]:
    """``"lat,lng;lat,lng;..."`` from a record attribute; anything malformed gives no route."""
    points: list[tuple[float, float]] = []
    for pair in encoded.split(";")[:500] if encoded else []:
        try:
            lat, lng = (float(x) for x in pair.split(","))
        except ValueError:
            return []
        if not (-90 <= lat <= 90 and -180 <= lng <= 180):
            return []
        points.append((lat, lng))
    return points


def _payload(rendered: Rendered) -> dict[str, Any] | None:
    if rendered.component is None or rendered.props is None:
        return None
    return {"component": rendered.component, "props": rendered.props, "sandbox": rendered.sandbox}
