"""Asynchronous order persistence: micro-batches, idempotent upserts, DLQ, crash mid-batch."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path

from hexcity.commerce import ORDERS_TOPIC, Order, OrderStatus, OrderWriter, SqlCommerceStore
from hexcity.commerce.orders import WRITER_GROUP, order_event
from hexcity.infra.bus import InProcessBus, dlq_topic
from hexcity.infra.sql import make_engine
from hexcity.kernel.events import Event


def order(i: int, user: str | None = None) -> Order:
    return Order(
        f"o{i:05d}", "sale1", "sku1", "shop1", user or f"u{i}", 1, 100, 100, "EUR", OrderStatus.RECEIVED, 1.0
    )


class CountingStore(SqlCommerceStore):
    def __init__(self, path: Path) -> None:
        super().__init__(make_engine(f"sqlite:///{path / 'orders.db'}"))
        self.create_schema()
        self.batch_sizes: list[int] = []
        self.gate = threading.Event()
        self.gate.set()

    def insert_orders(self, batch: Sequence[Order]) -> int:
        if not self.gate.wait(10):
            raise TimeoutError("test gate never opened")
        self.batch_sizes.append(len(batch))
        return super().insert_orders(batch)


async def wait_lag_zero(bus: InProcessBus, topic: str = ORDERS_TOPIC) -> None:
    for _ in range(500):
        if bus.lag(topic, WRITER_GROUP) == 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("lag did not reach 0")


def test_batches_flush_by_size_and_by_time_and_duplicates_are_ignored(tmp_path: Path) -> None:
    store = CountingStore(tmp_path)

    async def main() -> None:
        bus = InProcessBus()
        writer = OrderWriter(store, bus, batch_size=50, flush_s=0.05)
        await writer.start()
        for i in range(120):
            await bus.publish(order_event(order(i)))
        for i in range(10):  # redelivered duplicates (same order ids)
            await bus.publish(order_event(order(i)))
        await wait_lag_zero(bus)
        await writer.stop()
        await bus.close()
        assert writer.written == 120
        assert sum(store.batch_sizes) == 130 and max(store.batch_sizes) == 50
        assert len(store.batch_sizes) <= 5

    asyncio.run(asyncio.wait_for(main(), 20))
    assert len(store.list_orders(limit=1000)) == 120


def test_poison_event_reaches_the_dlq_after_3_attempts_and_others_pass(tmp_path: Path) -> None:
    store = CountingStore(tmp_path)

    async def main() -> None:
        bus = InProcessBus(sleep=lambda _: asyncio.sleep(0))
        dead: list[Event] = []

        async def collect(delivery: object) -> None:
            dead.append(delivery.event)  # type: ignore[attr-defined]

        await bus.subscribe(dlq_topic(ORDERS_TOPIC), "test", collect)
        writer = OrderWriter(store, bus, batch_size=10, flush_s=0.02, max_attempts=3)
        await writer.start()
        good = order_event(order(1, user="same"))
        poison = Event(ORDERS_TOPIC, "sale1:same", {"order_id": "bad", "quantity": "x"})
        later = order_event(order(2, user="same"))  # same key: must not stall behind the poison
        for event in (good, poison, later):
            await bus.publish(event)
        await wait_lag_zero(bus)
        for _ in range(100):
            if dead:
                break
            await asyncio.sleep(0.01)
        await writer.stop()
        await bus.close()
        assert [e.event_id for e in dead] == [poison.event_id]
        assert dead[0].headers["x-dlq-attempts"] == "3"

    asyncio.run(asyncio.wait_for(main(), 20))
    assert [o.order_id for o in store.list_orders()] == ["o00001", "o00002"]


def test_writer_killed_mid_batch_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    store = CountingStore(tmp_path)

    async def main() -> None:
        bus = InProcessBus()
        store.gate.clear()  # the first batch hangs in the database call
        writer = OrderWriter(store, bus, batch_size=40, flush_s=0.02)
        await writer.start()
        for i in range(100):
            await bus.publish(order_event(order(i)))
        await asyncio.sleep(0.2)
        assert bus.lag(ORDERS_TOPIC, WRITER_GROUP) == 100  # nothing acked before the commit
        await writer.abort()
        store.gate.set()  # the hung batch may still commit: redelivery must not duplicate it
        restarted = OrderWriter(store, bus, batch_size=40, flush_s=0.02)
        await restarted.start()
        await wait_lag_zero(bus)
        await restarted.stop()
        await bus.close()

    asyncio.run(asyncio.wait_for(main(), 30))
    rows = store.list_orders(limit=1000)
    assert len(rows) == 100 and len({o.order_id for o in rows}) == 100
