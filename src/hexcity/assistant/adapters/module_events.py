"""Change data capture: the business modules' own outbox events → changes of the assistant's graph.

Each module already publishes its state changes through its transactional outbox; the assistant
consumes them (consumer group ``assistant.index``) and turns each into record changes:

=============================  =================================================================
topic (publisher)              change
=============================  =================================================================
``ride.status`` (dispatch)     upsert the rider's ``trip`` record built from the payload
                               (``Trip.public()``); an older ``version`` than the one held is
                               dropped (redelivery or reordering never rolls a trip back)
``payments.events`` (payments) ``payment.succeeded``, ``ride.*``/``order.*`` (authorized,
                               captured, voided, released): upsert the payer's ``payment``;
                               ``payment.refunded``: upsert the receiver's ``refund`` (linked to
                               its payment); ``*.expired``: upsert, or with only the id (the
                               sweeper's event) re-read the owner's records; top-ups, payouts:
                               nothing
``fulfillment.orders``,        re-read the records of the order's owner (known from the graph;
``fulfillment.delivered``      an order nobody has asked about yet is read at the first question)
``commerce.orders.received``   upsert the buyer's ``order`` (status ``received``) unless the
                               graph already holds a later state of it
``assistant.changes``          the payload is already a change (``upsert``/``delete``/articles)
=============================  =================================================================

Events of types the assistant does not index are ignored (they are other consumers' business,
not poison). A relevant event with a malformed payload raises ``ValueError``/``KeyError``/
``TypeError``, so the bus retries it and dead-letters it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

from hexcity.assistant.adapters.payment_records import customer_of_payment, record_from_payment
from hexcity.assistant.adapters.trip_records import money, record_from_trip
from hexcity.assistant.domain.records import PlatformRecord
from hexcity.commerce import ORDERS_TOPIC as COMMERCE_ORDERS_TOPIC
from hexcity.dispatch import RIDE_STATUS_TOPIC
from hexcity.payments import PaymentsSettings

CHANGES_TOPIC = "assistant.changes"
FULFILLMENT_ORDERS_TOPIC = "fulfillment.orders"
FULFILLMENT_DELIVERED_TOPIC = "fulfillment.delivered"
_PAYMENT_TYPES = frozenset(
    f"{kind}.{what}"
    for kind in ("ride", "order")
    for what in ("authorized", "captured", "voided", "released")
) | {"payment.succeeded", "payment.refunded"}
_EXPIRED_TYPES = frozenset({"ride.expired", "order.expired"})
# a payment's statuses only move forward; a redelivered older event must not roll one back
_STAGE = {"authorized": 0, "succeeded": 1, "captured": 1, "voided": 2, "expired": 2, "released": 2}
_STAGE |= {"partially_refunded": 2, "refunded": 3}


@cache
def payments_topic() -> str:
    """The payments module's configured events topic (``payments.events`` by default)."""
    return PaymentsSettings().events_topic


def module_topics() -> tuple[str, ...]:
    """Every topic the assistant consumes, ``assistant.changes`` first."""
    return (
        CHANGES_TOPIC,
        RIDE_STATUS_TOPIC,
        payments_topic(),
        FULFILLMENT_ORDERS_TOPIC,
        FULFILLMENT_DELIVERED_TOPIC,
        COMMERCE_ORDERS_TOPIC,
    )


class GraphView(Protocol):
    """What the translation needs to know about the graph held so far."""

    def owners_of(self, node_id: str) -> frozenset[str]:
        """The owners of ``node_id`` (empty when unknown or not personal)."""
        ...

    def attrs_of(self, node_id: str) -> Mapping[str, str] | None:
        """The merged attributes of ``node_id`` (None when unknown)."""
        ...


@dataclass(frozen=True, slots=True)
class Translation:
    """Change payloads to apply (as :meth:`AssistantService.apply_change` takes them) and the
    customers whose records should be re-read through the record reader."""

    changes: tuple[dict[str, Any], ...] = ()
    refresh: tuple[str, ...] = ()
    ignored: str = ""  # why nothing happens ("" when something does)


def record_payload(record: PlatformRecord) -> dict[str, Any]:
    """A record as the JSON of an ``upsert`` change."""
    return {
        "kind": record.kind,
        "record_id": record.record_id,
        "customer_id": record.customer_id,
        "attrs": dict(record.attrs),
        "links": [list(link) for link in record.links],
        "also_visible_to": list(record.also_visible_to),
    }


def _upsert(record: PlatformRecord, *, refresh: tuple[str, ...] = ()) -> Translation:
    return Translation(changes=({"op": "upsert", "record": record_payload(record)},), refresh=refresh)


def _sole_owner(graph: GraphView, node_id: str) -> str | None:
    owners = graph.owners_of(node_id)
    return next(iter(owners)) if len(owners) == 1 else None


def translate(topic: str, payload: Mapping[str, Any], graph: GraphView) -> Translation:
    """The changes one module event makes to the assistant's view (see the module docstring)."""
    if topic == CHANGES_TOPIC:
        return Translation(changes=(dict(payload),))
    if topic == RIDE_STATUS_TOPIC:
        return _ride_status(payload, graph)
    if topic == payments_topic():
        return _payment_event(payload, graph)
    if topic in (FULFILLMENT_ORDERS_TOPIC, FULFILLMENT_DELIVERED_TOPIC):
        owner = _sole_owner(graph, f"order:{payload['order_id']}")
        if owner is None:
            return Translation(ignored="order not indexed yet")
        return Translation(refresh=(owner,))
    if topic == COMMERCE_ORDERS_TOPIC:
        return _commerce_order(payload, graph)
    return Translation(ignored=f"topic {topic} not indexed")


def _ride_status(payload: Mapping[str, Any], graph: GraphView) -> Translation:
    record = record_from_trip(payload)
    held = graph.attrs_of(record.node_id)
    held_version = held.get("version", "") if held is not None else ""
    if held_version.isdigit() and int(held_version) > int(record.attrs["version"]):
        return Translation(ignored=f"stale trip version {record.attrs['version']}")
    return _upsert(record)


def _payment_event(payload: Mapping[str, Any], graph: GraphView) -> Translation:
    event_type = str(payload.get("type", ""))
    if event_type in _EXPIRED_TYPES and "kind" not in payload:  # the sweeper's event: id only
        owner = _sole_owner(graph, f"payment:{payload['id']}")
        return Translation(refresh=(owner,)) if owner else Translation(ignored="payment not indexed yet")
    if event_type not in _PAYMENT_TYPES | _EXPIRED_TYPES:
        return Translation(ignored=f"payments event {event_type or '?'} not indexed")
    customer = customer_of_payment(payload)
    if customer is None:
        return Translation(ignored="not a customer's wallet")
    own = {
        node_id
        for node_id in (f"order:{payload.get('reference')}", f"trip:{payload.get('reference')}")
        if graph.owners_of(node_id) == {customer}
    }
    record = record_from_payment(payload, customer, own=own)
    if record is None:
        return Translation(ignored=f"payment kind {payload.get('kind')} not indexed")
    held = graph.attrs_of(record.node_id)
    if held and _STAGE.get(held.get("status", ""), 0) > _STAGE.get(record.attrs["status"], 0):
        return Translation(ignored=f"stale payment status {record.attrs['status']}")
    # a refund also changes its payment (refunded amount, status) without an event of its own
    return _upsert(record, refresh=(customer,) if record.kind == "refund" else ())


def _commerce_order(payload: Mapping[str, Any], graph: GraphView) -> Translation:
    order_id, buyer = str(payload["order_id"]), str(payload["user_id"])
    if graph.attrs_of(f"order:{order_id}"):
        return Translation(ignored="order already indexed")
    attrs = {
        "status": "received",
        "amount": money(int(payload["amount_minor"]), str(payload["currency"])),
        "quantity": str(int(payload["quantity"])),
    }
    return _upsert(PlatformRecord("order", order_id, buyer, attrs))
