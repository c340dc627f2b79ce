"""Change data capture for the assistant: bus events update the index and the graph incrementally.

Consumer group ``assistant.index`` on the business modules' own outbox topics (``ride.status``,
``payments.events``, ``fulfillment.orders``, ``fulfillment.delivered``,
``commerce.orders.received``) and on ``assistant.changes`` (record and article changes published
directly, payloads as :meth:`AssistantService.apply_change` takes them). Each module event is
translated by :mod:`hexcity.assistant.adapters.module_events` into record upserts and, when the
service has a record reader, re-reads of the affected customer's records through it.

Redeliveries are harmless (an upsert of the same source replaces itself; an older trip version
or payment status is dropped). A malformed payload of an indexed event raises
:class:`InvalidQuestion` and the bus dead-letters it after its retries; a record that would
attach to another customer's node (disjoint owners) is refused by the graph, logged and dropped,
since retrying cannot fix it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hexcity.assistant.adapters.module_events import (
    CHANGES_TOPIC,
    GraphView,
    module_topics,
    translate,
)
from hexcity.assistant.domain.graph import GraphInvariantBroken, KnowledgeGraph
from hexcity.assistant.errors import InvalidQuestion
from hexcity.assistant.service import MAX_RECORDS_PER_CUSTOMER, AssistantService
from hexcity.infra.bus import Delivery, EventBus, Handler, Subscription
from hexcity.infra.logging import get_logger
from hexcity.kernel.events import Event

__all__ = [
    "CHANGES_TOPIC",
    "CONSUMER_GROUP",
    "GraphLookup",
    "apply_event",
    "change_handler",
    "module_topics",
    "subscribe_changes",
]

CONSUMER_GROUP = "assistant.index"

log = get_logger(__name__)


class GraphLookup(GraphView):
    """:class:`GraphView` over a :class:`KnowledgeGraph`."""

    def __init__(self, graph: KnowledgeGraph) -> None:
        self._graph = graph

    def owners_of(self, node_id: str) -> frozenset[str]:
        node = self._graph.nodes.get(node_id)
        return node.access.owners if node is not None else frozenset()

    def attrs_of(self, node_id: str) -> Mapping[str, str] | None:
        node = self._graph.nodes.get(node_id)
        return node.attrs if node is not None else None


def apply_event(service: AssistantService, event: Event) -> int:
    """Apply one bus event to ``service``; returns how many changes it made (0: ignored).

    Raises :class:`InvalidQuestion` for a malformed payload of an indexed event.
    """
    try:
        translation = translate(event.topic, event.payload, GraphLookup(service.graph))
    except (KeyError, TypeError, ValueError) as error:
        raise InvalidQuestion(f"invalid {event.topic} event {event.event_id}: {error!r}") from error
    if translation.ignored:
        log.debug("assistant.event_ignored", topic=event.topic, reason=translation.ignored)
    applied = 0
    try:
        for change in translation.changes:
            service.apply_change(change, event_ts=event.occurred_at_s)
            applied += 1
        if service.records is not None:
            for customer in translation.refresh:
                for record in service.records.records_for(customer, limit=MAX_RECORDS_PER_CUSTOMER):
                    if record.customer_id == customer:
                        service.upsert_record(record, event_ts=event.occurred_at_s)
                        applied += 1
    except GraphInvariantBroken as error:
        log.warning("assistant.event_refused", topic=event.topic, event_id=event.event_id, detail=str(error))
    return applied


def change_handler(service: AssistantService) -> Handler:
    """The bus handler applying one event to ``service`` (one writer: this consumer)."""

    async def handle(delivery: Delivery) -> None:
        event = delivery.event
        applied = apply_event(service, event)
        if applied:  # one per platform event: debug (the demo's console would scroll with them)
            log.debug(
                "assistant.change_applied",
                topic=event.topic,
                op=event.payload.get("op"),
                changes=applied,
                index_version=service.index_version,
            )

    return handle


class _Subscriptions:
    """The assistant's subscriptions, stopped together."""

    def __init__(self, subscriptions: Sequence[Subscription]) -> None:
        self.subscriptions = tuple(subscriptions)

    async def stop(self) -> None:
        for subscription in self.subscriptions:
            await subscription.stop()


async def subscribe_changes(
    service: AssistantService, bus: EventBus, *, topics: Sequence[str] | None = None
) -> Subscription:
    """Start consuming ``topics`` (default: :func:`module_topics`) into ``service``."""
    handler = change_handler(service)
    subscriptions: list[Subscription] = []
    try:
        for topic in topics if topics is not None else module_topics():
            subscriptions.append(await bus.subscribe(topic, CONSUMER_GROUP, handler))
    except BaseException:
        await _Subscriptions(subscriptions).stop()
        raise
    return _Subscriptions(subscriptions)
