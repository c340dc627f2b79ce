"""Freshness from the modules' own events: store change → outbox → relay → bus → assistant graph.

The stores are the real SQLite ones of ``test_live_records``; the events are the ones the modules
write into their outbox in the same transaction as the change (``ride.status``, ``payments.events``,
``fulfillment.orders``), relayed to an in-process bus and consumed by group ``assistant.index``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hexcity.assistant import (
    Answer,
    AssistantService,
    HashedNgramEmbedder,
    InvalidQuestion,
    load_shipped_articles,
)
from hexcity.assistant.adapters.module_events import module_topics
from hexcity.assistant.freshness import CONSUMER_GROUP, apply_event, subscribe_changes
from hexcity.dispatch import RIDE_STATUS_TOPIC
from hexcity.infra.bus.memory import InProcessBus
from hexcity.infra.outbox import OutboxRelay
from hexcity.kernel.events import Event

from .test_live_records import (
    ALICE_VIEW,
    BOB_VIEW,
    ORDER_A,
    RIDE_A,
    RIDE_B,
    T0,
    TRIP_A,
    TRIP_B,
    A,
    D,
    World,
    build_world,
    complete,
    refund,
)


def event_fed_service() -> AssistantService:
    """A service whose graph is fed by events only (no record reader)."""
    return AssistantService(load_shipped_articles(), HashedNgramEmbedder())


async def relay_and_settle(world: World, bus: InProcessBus) -> int:
    """Publish the outbox to the bus and wait until the assistant's group has consumed it all."""
    published = await OutboxRelay(world.engine, bus).drain()
    deadline = asyncio.get_running_loop().time() + 10.0
    while any(bus.lag(topic, CONSUMER_GROUP) for topic in module_topics()):
        assert asyncio.get_running_loop().time() < deadline, "assistant consumer did not catch up"
        await asyncio.sleep(0.01)
    return published


def run_with_bus(service: AssistantService, scenario: Callable[[InProcessBus], Awaitable[None]]) -> None:
    async def main() -> None:
        bus = InProcessBus()
        subscription = await subscribe_changes(service, bus)
        try:
            await scenario(bus)
        finally:
            await subscription.stop()
            await bus.close()

    asyncio.run(main())


@dataclass
class Seen:
    before: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    refund_id: str = ""
    refund: list[Answer] = field(default_factory=list)


def test_ride_status_and_refund_events_reach_the_next_answer(tmp_path: Path) -> None:
    world = build_world(tmp_path, complete_trip_a=False)  # A's trip in_trip; B's trip requested
    service = event_fed_service()
    seen = Seen()

    async def scenario(bus: InProcessBus) -> None:
        await relay_and_settle(world, bus)
        seen.before = service.answer("what is the status of my trip?", ALICE_VIEW).answer.facts
        complete(world, TRIP_A, T0 + 600)  # ride.status completed + ride.captured in the outbox
        await relay_and_settle(world, bus)
        seen.after = service.answer("what is the status of my trip?", ALICE_VIEW).answer.facts
        seen.refund_id = refund(world, RIDE_A, 500, T0 + 700)  # payment.refunded
        await relay_and_settle(world, bus)
        seen.refund.append(service.answer("where is my refund?", ALICE_VIEW).answer)

    run_with_bus(service, scenario)
    assert f"Trip {TRIP_A}: in_trip, fare 18.40 EUR (surge 1.35x), driven by {D}" in seen.before
    assert f"Trip {TRIP_A}: completed, fare 18.40 EUR (surge 1.35x), driven by {D}" in seen.after
    answer = seen.refund[0]
    assert f"Refund {seen.refund_id}: succeeded, amount 5.00 EUR" in answer.facts
    assert f"refund:{seen.refund_id}" in answer.records
    edge = service.graph.edges[(f"refund:{seen.refund_id}", f"payment:{RIDE_A}", "REFUNDS")]
    assert edge.sources == {f"record:refund:{seen.refund_id}"} and edge.access.owners == {A}
    assert service.graph.nodes[f"payment:{RIDE_A}"].attrs["status"] == "captured"  # no reader: as published
    # B's trip arrived too, as B's: not visible to A, visible to B
    assert service.graph.nodes[f"trip:{TRIP_B}"].access.owners == {"rider-b"}
    bob = service.answer("status of my trip", BOB_VIEW).answer
    assert bob.records == (f"trip:{TRIP_B}",)
    assert service.last_event_ts == T0 + 700


def test_with_a_reader_a_refund_event_refreshes_the_payment_it_reverses(tmp_path: Path) -> None:
    world = build_world(tmp_path, complete_trip_a=False)
    service = AssistantService(load_shipped_articles(), HashedNgramEmbedder(), records=world.reader())

    async def scenario(bus: InProcessBus) -> None:
        complete(world, TRIP_A, T0 + 600)
        await relay_and_settle(world, bus)
        assert service.graph.nodes[f"payment:{RIDE_A}"].attrs["status"] == "captured"
        refund(world, RIDE_A, 500, T0 + 700)
        await relay_and_settle(world, bus)

    run_with_bus(service, scenario)
    payment = service.graph.nodes[f"payment:{RIDE_A}"].attrs
    assert (payment["status"], payment["refunded"]) == ("partially_refunded", "5.00 EUR")


def test_fulfillment_order_event_re_reads_the_owners_records(tmp_path: Path) -> None:
    world = build_world(tmp_path)
    service = AssistantService(load_shipped_articles(), HashedNgramEmbedder(), records=world.reader())
    service.answer("where is my order?", ALICE_VIEW)  # the order is indexed, owned by A
    assert service.graph.nodes[f"order:{ORDER_A}"].attrs["status"] == "processing"
    version = service.index_version

    async def scenario(bus: InProcessBus) -> None:
        await relay_and_settle(world, bus)  # everything so far (the order is still allocated)
        world.fulfillment.mark_picked(ORDER_A)  # fulfillment.orders "picked"
        await relay_and_settle(world, bus)

    run_with_bus(service, scenario)
    assert service.graph.nodes[f"order:{ORDER_A}"].attrs["status"] == "shipped"
    assert service.graph.nodes[f"shipment:{ORDER_A}-P1"].attrs["status"] == "shipped"
    assert service.index_version > version


def ride_event(trip: dict[str, object], at_s: float) -> Event:
    return Event(RIDE_STATUS_TOPIC, str(trip["trip_id"]), trip, occurred_at_s=at_s)


def test_an_older_trip_version_never_rolls_the_record_back(tmp_path: Path) -> None:
    world = build_world(tmp_path)
    service = event_fed_service()
    done = world.trips.get_trip(TRIP_A).public()
    earlier = {**done, "status": "in_trip", "version": 4}
    assert apply_event(service, ride_event(done, T0 + 600)) == 1
    assert apply_event(service, ride_event(earlier, T0 + 601)) == 0  # redelivered late: dropped
    assert service.graph.nodes[f"trip:{TRIP_A}"].attrs["status"] == "completed"


def test_events_the_assistant_does_not_index_are_ignored_and_malformed_ones_refused() -> None:
    service = event_fed_service()
    version = service.index_version
    topup = {"type": "topup.succeeded", "id": "top_1", "kind": "topup", "payer_account_id": "x"}
    assert apply_event(service, Event("payments.events", "x", topup)) == 0
    assert apply_event(service, Event("ride.requests", "r", {"trip_id": "t"})) == 0
    assert (
        apply_event(service, Event("fulfillment.orders", "o", {"order_id": "unknown", "status": "picked"}))
        == 0
    )
    assert service.index_version == version
    with pytest.raises(InvalidQuestion, match=r"invalid ride\.status event"):
        apply_event(service, Event(RIDE_STATUS_TOPIC, "t", {"trip_id": "t", "status": "completed"}))
    bad_refund = {"type": "payment.refunded", "kind": "refund", "payee_account_id": "wallet:rider-a:EUR"}
    with pytest.raises(InvalidQuestion, match=r"invalid payments\.events event"):
        apply_event(service, Event("payments.events", "k", bad_refund))


def test_commerce_order_event_indexes_the_buyers_order_once(tmp_path: Path) -> None:
    service = event_fed_service()
    payload = {
        "order_id": "co-1",
        "campaign_id": "c1",
        "sku_id": "sku",
        "merchant_id": "m1",
        "user_id": A,
        "quantity": 2,
        "unit_price_minor": 450,
        "amount_minor": 900,
        "currency": "EUR",
        "created_at_s": T0,
    }
    assert apply_event(service, Event("commerce.orders.received", "c1:a", payload)) == 1
    assert service.graph.nodes["order:co-1"].attrs == {
        "status": "received",
        "amount": "9.00 EUR",
        "quantity": "2",
    }
    assert service.graph.nodes["order:co-1"].access.owners == {A}
    assert apply_event(service, Event("commerce.orders.received", "c1:a", payload)) == 0  # already indexed


def test_an_edge_backed_by_two_records_goes_only_with_the_last(tmp_path: Path) -> None:
    """customer → trip is stated by the trip record AND by the ride payment that paid for it."""
    world = build_world(tmp_path)
    service = event_fed_service()
    has_trip = (f"customer:{A}", f"trip:{TRIP_A}", "HAS")

    async def scenario(bus: InProcessBus) -> None:
        await relay_and_settle(world, bus)
        assert service.graph.edges[has_trip].sources == {f"record:trip:{TRIP_A}", f"record:payment:{RIDE_A}"}
        trip_gone = {"op": "delete", "record": {"kind": "trip", "record_id": TRIP_A}}
        await bus.publish(Event("assistant.changes", A, trip_gone))
        await relay_and_settle(world, bus)
        assert service.graph.edges[has_trip].sources == {f"record:payment:{RIDE_A}"}  # still backed
        assert f"trip:{TRIP_A}" in service.graph.nodes
        assert (f"trip:{TRIP_A}", f"driver:{D}", "DRIVEN_BY") not in service.graph.edges
        payment_gone = {"op": "delete", "record": {"kind": "payment", "record_id": RIDE_A}}
        await bus.publish(Event("assistant.changes", A, payment_gone))
        await relay_and_settle(world, bus)

    run_with_bus(service, scenario)
    assert has_trip not in service.graph.edges
    assert f"trip:{TRIP_A}" not in service.graph.nodes


def test_the_consumed_topics_are_the_modules_own() -> None:
    from hexcity.commerce import ORDERS_TOPIC
    from hexcity.dispatch.adapters.trip_store_sql import TOPIC_STATUS
    from hexcity.fulfillment.adapters.sql_plans import TOPIC_DELIVERED
    from hexcity.fulfillment.adapters.sql_schema import TOPIC_ORDERS
    from hexcity.payments import PaymentsSettings

    assert module_topics() == (
        "assistant.changes",
        TOPIC_STATUS,
        PaymentsSettings().events_topic,
        TOPIC_ORDERS,
        TOPIC_DELIVERED,
        ORDERS_TOPIC,
    )


def test_an_expiry_sweep_event_re_reads_the_owner_and_a_full_one_upserts(tmp_path: Path) -> None:
    world = build_world(tmp_path)
    service = AssistantService(load_shipped_articles(), HashedNgramEmbedder(), records=world.reader())
    assert apply_event(service, Event("payments.events", "k", {"type": "ride.expired", "id": RIDE_A})) == 0
    service.answer("my payments", ALICE_VIEW)  # now the payment is indexed, owned by A
    version = service.index_version
    assert apply_event(service, Event("payments.events", "k", {"type": "ride.expired", "id": RIDE_A})) == 6
    assert service.index_version == version + 6  # A's six records re-read
    voided = {**world.payments.payment(RIDE_B).to_json(), "type": "ride.expired", "status": "expired"}
    assert apply_event(service, Event("payments.events", "k", voided)) == 1
    assert service.graph.nodes[f"payment:{RIDE_B}"].attrs["status"] == "expired"
    assert service.graph.nodes[f"payment:{RIDE_B}"].access.owners == {"rider-b"}
