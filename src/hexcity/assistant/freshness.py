"""Change data capture for the assistant: bus events update the index and the graph incrementally.

Topic ``assistant.changes`` (consumer group ``assistant.index``), published by the business
modules through their outbox (or by an adapter translating their events). Payloads are the ones
:meth:`AssistantService.apply_change` takes: ``upsert`` / ``delete`` of a platform record,
``publish_article`` / ``delete_article``. Redeliveries are harmless (an upsert of the same source
replaces itself); a malformed payload raises and the bus dead-letters it after its retries.
"""

from __future__ import annotations

from hexcity.assistant.service import AssistantService
from hexcity.infra.bus import Delivery, EventBus, Handler, Subscription
from hexcity.infra.logging import get_logger

CHANGES_TOPIC = "assistant.changes"
CONSUMER_GROUP = "assistant.index"

log = get_logger(__name__)


def change_handler(service: AssistantService) -> Handler:
    """The bus handler applying one change event to ``service`` (one writer: this consumer)."""

    async def handle(delivery: Delivery) -> None:
        event = delivery.event
        service.apply_change(event.payload, event_ts=event.occurred_at_s)
        log.info("assistant.change_applied", op=event.payload.get("op"), index_version=service.index_version)

    return handle


async def subscribe_changes(service: AssistantService, bus: EventBus) -> Subscription:
    """Start consuming ``assistant.changes`` into ``service``."""
    handler = change_handler(service)
    return await bus.subscribe(CHANGES_TOPIC, CONSUMER_GROUP, handler)
