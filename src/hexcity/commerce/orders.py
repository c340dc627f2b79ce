"""Asynchronous order persistence (commerce.md §2.8–2.9): bus → micro-batches → idempotent SQL.

Each bus member's handler parks its event in the current batch and waits for the batch's commit;
the handler (and so the bus ack) returns only after the database commit, so a crash never acks an
unwritten order. A batch is flushed at ``batch_size`` events or ``flush_s`` after its first event,
whichever comes first, as one ``INSERT ... ON CONFLICT (order_id) DO NOTHING``. If the batch fails,
its orders are retried one by one so a poison event fails alone; the bus retries it with
exponential backoff and full jitter, and dead-letters it after ``max_attempts``.

On the platform's virtual clock, :meth:`OrderWriter.flush` is registered as a quiescer: it writes
what is parked at once (no waiting for ``flush_s``) until the writer's bus backlog is empty, so
after ``platform.advance`` every "order received" is in SQL.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from hexcity.commerce.adapters.store_sql import SqlCommerceStore
from hexcity.commerce.domain.catalog import Order, OrderStatus
from hexcity.infra.bus import Delivery, EventBus, LagSource, RetryPolicy, Subscription, read_lag
from hexcity.infra.logging import get_logger
from hexcity.kernel.events import Event

__all__ = ["ORDERS_TOPIC", "WRITER_GROUP", "OrderWriter", "order_event", "order_from_payload"]

ORDERS_TOPIC = "commerce.orders.received"
WRITER_GROUP = "commerce-order-writer"

log = get_logger(__name__)

FLUSH_MAX_WAIT_S = 10.0  # wall-clock bound of one flush (a failing write backs off in real time)


def order_event(order: Order) -> Event:
    """The "order received" event; key ``<campaign>:<user>`` keeps a buyer's events ordered."""
    payload: dict[str, Any] = {
        "order_id": order.order_id,
        "campaign_id": order.campaign_id,
        "sku_id": order.sku_id,
        "merchant_id": order.merchant_id,
        "user_id": order.user_id,
        "quantity": order.quantity,
        "unit_price_minor": order.unit_price_minor,
        "amount_minor": order.amount_minor,
        "currency": order.currency,
        "created_at_s": order.created_at_s,
    }
    return Event(ORDERS_TOPIC, f"{order.campaign_id}:{order.user_id}", payload, event_id=order.order_id)


def order_from_payload(payload: dict[str, Any]) -> Order:
    """Rebuild the order; raises ``KeyError``/``ValueError``/``TypeError`` on a malformed event."""
    quantity, unit = int(payload["quantity"]), int(payload["unit_price_minor"])
    amount = int(payload["amount_minor"])
    if quantity < 1 or amount != quantity * unit:
        raise ValueError(f"order {payload.get('order_id')}: amount does not match quantity × price")
    return Order(
        order_id=str(payload["order_id"]),
        campaign_id=str(payload["campaign_id"]),
        sku_id=str(payload["sku_id"]),
        merchant_id=str(payload["merchant_id"]),
        user_id=str(payload["user_id"]),
        quantity=quantity,
        unit_price_minor=unit,
        amount_minor=amount,
        currency=str(payload["currency"]),
        status=OrderStatus.RECEIVED,
        created_at_s=float(payload["created_at_s"]),
    )


class OrderWriter:
    """Consumes :data:`ORDERS_TOPIC` with ``batch_size`` bus members and writes micro-batches."""

    def __init__(
        self,
        store: SqlCommerceStore,
        bus: EventBus,
        *,
        batch_size: int = 500,
        flush_s: float = 0.2,
        max_attempts: int = 3,
    ) -> None:
        self._store = store
        self._bus = bus
        self._batch_size = batch_size
        self._flush_s = flush_s
        self._policy = RetryPolicy(max_attempts=max_attempts, base_delay_s=0.05, max_delay_s=1.0)
        self._pending: list[tuple[Order, asyncio.Future[None]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._subscriptions: list[Subscription] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0
        self.written = 0

    async def start(self) -> None:
        for _ in range(self._batch_size):
            sub = await self._bus.subscribe(ORDERS_TOPIC, WRITER_GROUP, self.handle, policy=self._policy)
            self._subscriptions.append(sub)

    async def stop(self) -> None:
        subs, self._subscriptions = self._subscriptions, []
        await asyncio.gather(*(s.stop() for s in subs))

    async def abort(self) -> None:
        """Crash simulation: cancel every member now (in-flight events are not acked)."""
        subs, self._subscriptions = self._subscriptions, []
        for sub in subs:
            abort = getattr(sub, "abort", None)
            if abort is not None:
                await abort()
            else:  # pragma: no cover - broker subscriptions without abort
                await sub.stop()
        self._fail_pending(RuntimeError("writer aborted"))

    async def handle(self, delivery: Delivery) -> None:
        """Park the order in the batch; return once it is committed (raises if its write failed)."""
        order = order_from_payload(delivery.event.payload)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((order, future))
        if len(self._pending) >= self._batch_size:
            self._flush_now()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._flush_s, self._flush_now)
        await future

    async def flush(self) -> int:
        """Write every parked order now and wait for the writer's bus backlog to drain.

        Returns how many orders this call wrote (batch members committed, duplicates included);
        0 when there was nothing to do. Bounded by ``FLUSH_MAX_WAIT_S`` of wall-clock time.
        """
        done = 0
        deadline = time.monotonic() + FLUSH_MAX_WAIT_S
        idle_rounds = 0
        while time.monotonic() < deadline:
            await asyncio.sleep(0)  # let bus members hand over (and ack) what is ready
            parked = len(self._pending)
            self._flush_now()
            if self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)
            done += parked
            if parked:
                idle_rounds = 0
                continue
            if not self._subscriptions or await self._backlog() == 0:
                return done
            idle_rounds += 1
            if idle_rounds > 100:  # an event in retry backoff: wait in real time, briefly
                await asyncio.sleep(0.005)
        log.warning("commerce.order_flush_timeout", backlog=await self._backlog())
        return done

    async def _backlog(self) -> int:
        """Order events the writer's group has not finished (0 if the bus cannot tell)."""
        if not isinstance(self._bus, LagSource):
            return 0
        return await read_lag(self._bus, ORDERS_TOPIC, WRITER_GROUP)

    def _flush_now(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, []
        if batch:
            task = asyncio.get_running_loop().create_task(self._write(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _write(self, batch: list[tuple[Order, asyncio.Future[None]]]) -> None:
        orders = [order for order, _ in batch]
        try:
            self.written += await asyncio.to_thread(self._store.insert_orders, orders)
            self.batches += 1
            _resolve(batch, None)
            return
        except Exception as exc:  # retried one by one below, then by the bus
            log.warning("commerce.order_batch_failed", size=len(batch), error=str(exc)[:200])
        for order, future in batch:
            try:
                self.written += await asyncio.to_thread(self._store.insert_orders, [order])
                _resolve([(order, future)], None)
            except Exception as exc:  # the bus retries / dead-letters this event
                _resolve([(order, future)], exc)

    def _fail_pending(self, error: Exception) -> None:
        batch, self._pending = self._pending, []
        _resolve(batch, error)


def _resolve(batch: list[tuple[Order, asyncio.Future[None]]], error: Exception | None) -> None:
    for _, future in batch:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
