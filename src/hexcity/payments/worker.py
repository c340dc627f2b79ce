"""What the payments module runs while the app serves: the cashback consumer and a maintenance
loop (expire overdue ride/order authorisations, prune old idempotency keys).

The outbox itself is relayed by the platform (its ``OutboxRelay`` on the platform database), so
the ledger must live in the platform's database for its events to leave.

On the platform's manual (virtual) clock the worker runs no loop of its own (``loop=False``):
:meth:`PaymentsWorker.maintain` is registered as a ``platform.every`` job instead, so
authorisations expire when virtual time passes their timeout, not when wall time does.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType

from hexcity.infra.bus.port import EventBus, RetryPolicy, Subscription
from hexcity.infra.logging import get_logger
from hexcity.payments.campaigns import cashback_handler
from hexcity.payments.service import PaymentService

log = get_logger(__name__)

CASHBACK_GROUP = "payments.cashback"
CONSUMER_RETRY = RetryPolicy(max_attempts=3, base_delay_s=0.1, max_delay_s=2.0)  # then the DLQ


class PaymentsWorker:
    """``async with PaymentsWorker(service, bus):`` — subscribe the cashback consumer and run
    maintenance every ``interval_s`` seconds until the block exits (``loop=False``: no loop; the
    caller schedules :meth:`maintain`, e.g. with ``platform.every`` on the virtual clock)."""

    def __init__(
        self, service: PaymentService, bus: EventBus, *, interval_s: float = 30.0, loop: bool = True
    ) -> None:
        if not 0.01 <= interval_s <= 3600:
            raise ValueError("interval_s must be within 0.01..3600")
        self.service, self.bus, self.interval_s, self.loop = service, bus, interval_s, loop
        self._subscription: Subscription | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> PaymentsWorker:
        self._subscription = await self.bus.subscribe(
            self.service.topic,
            CASHBACK_GROUP,
            cashback_handler(self.service.campaigns),
            policy=CONSUMER_RETRY,
        )
        if self.loop:
            self._task = asyncio.create_task(self._maintain(), name="payments-maintenance")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
        if self._subscription is not None:
            await self._subscription.stop()

    def maintain_once(self) -> dict[str, int]:
        """One maintenance pass (blocking): expired authorisations and pruned keys, counted."""
        return {
            "rides_expired": self.service.rides.sweep_expired(),
            "orders_expired": self.service.orders.sweep_expired(),
            "keys_pruned": self.service.prune(),
        }

    async def maintain(self) -> int:
        """One maintenance pass off the event loop; returns how many rows it changed (logged).
        Raises what the database raises (the caller's loop or ``platform.every`` logs it)."""
        done = await asyncio.to_thread(self.maintain_once)
        if any(done.values()):
            log.info("payments.maintenance", **done)
        return sum(done.values())

    async def _maintain(self) -> None:
        while not self._stop.is_set():
            try:
                await self.maintain()
            except Exception as exc:  # database down: try again next interval
                log.warning("payments.maintenance_failed", error=repr(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval_s)
