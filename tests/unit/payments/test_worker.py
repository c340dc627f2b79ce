"""Events leave through the outbox, the cashback consumer applies them once, poison goes to the DLQ."""

from __future__ import annotations

import asyncio

from sqlalchemy.exc import OperationalError
from tests.unit.payments.conftest import outbox_events

from hexcity.infra.bus.memory import InProcessBus
from hexcity.infra.bus.port import dlq_topic
from hexcity.infra.outbox import OutboxRelay
from hexcity.kernel.events import Event
from hexcity.payments.domain.commands import Pay, TopUp
from hexcity.payments.service import PaymentService
from hexcity.payments.worker import PaymentsWorker

W1, SHOP = "wallet:r1:EUR", "merchant:s1:EUR"


async def relay(outbox_relay: OutboxRelay) -> int:
    """relay_once, retried: on SQLite the relay's read-then-write transaction loses the write lock
    to a concurrent consumer write ("database is locked") and is simply retried (at-least-once)."""
    for _ in range(50):
        try:
            return await outbox_relay.relay_once()
        except OperationalError:
            await asyncio.sleep(0.05)
    raise AssertionError("relay kept failing")


async def wait_for(check: object, timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


def test_cashback_arrives_through_outbox_and_bus_exactly_once(service: PaymentService) -> None:
    service.campaigns.create("c1", "EUR", 1000, cashback_bps=1000, max_grant_minor=100)
    service.execute(TopUp(W1, 1000, "EUR"), idempotency_key="t", scope="r1")
    service.execute(Pay(W1, SHOP, 500, "EUR"), idempotency_key="p", scope="r1")

    async def scenario() -> None:
        bus = InProcessBus(publish_timeout_s=2.0, stop_timeout_s=5.0)
        outbox_relay = OutboxRelay(service.ledger.engine, bus, batch_size=50)
        async with PaymentsWorker(service, bus, interval_s=0.05) as worker:
            assert await relay(outbox_relay) >= 2  # topup + payment (+ cashback if it won the race)
            await wait_for(lambda: service.account(W1).balance_minor == 550)
            # a redelivery (e.g. the relay crashed before marking the row sent) changes nothing
            payload = next(e for e in outbox_events(service) if e["type"] == "payment.succeeded")
            await bus.publish(Event(topic=service.topic, key=W1, payload=payload))
            poison = Event(topic=service.topic, key="x", payload={"type": "payment.succeeded", "id": 1})
            await bus.publish(poison)
            await wait_for(lambda: len(bus.retained(dlq_topic(service.topic))) == 1)
            await relay(outbox_relay)  # the cashback.granted event, if not sent yet
            assert await relay(outbox_relay) == 0
            assert [e["type"] for e in outbox_events(service)].count("cashback.granted") == 1
            assert worker.maintain_once() == {"rides_expired": 0, "orders_expired": 0, "keys_pruned": 0}
        await bus.close()

    asyncio.run(scenario())
    assert service.account(W1).balance_minor == 550
    assert service.campaigns.remaining_minor("c1") == 950
