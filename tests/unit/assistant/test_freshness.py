from __future__ import annotations

import asyncio

from hexcity.assistant import AssistantService, Viewer
from hexcity.assistant.freshness import CHANGES_TOPIC, subscribe_changes
from hexcity.infra.bus.memory import InProcessBus
from hexcity.kernel.events import Event

ALICE = Viewer("alice", "customer")


def test_bus_change_events_update_the_next_answer(service: AssistantService) -> None:
    service.records = None  # graph fed by change events only

    async def scenario() -> tuple[str, float | None, int]:
        bus = InProcessBus()
        subscription = await subscribe_changes(service, bus)
        version = service.index_version
        record = {
            "kind": "order",
            "record_id": "ORD-1042",
            "customer_id": "alice",
            "attrs": {"status": "delivered"},
        }
        await bus.publish(
            Event(CHANGES_TOPIC, "alice", {"op": "upsert", "record": record}, occurred_at_s=1_764_000_000.0)
        )
        deadline = asyncio.get_running_loop().time() + 5.0
        while service.index_version == version and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        await subscription.stop()
        await bus.close()
        return (
            service.answer("status of my order ORD-1042", ALICE).answer.facts[0],
            service.last_event_ts,
            version,
        )

    fact, last_event_ts, version = asyncio.run(scenario())
    assert fact == "Order ORD-1042: delivered"
    assert last_event_ts == 1_764_000_000.0
    assert service.index_version == version + 1
