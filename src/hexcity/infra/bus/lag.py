"""Consumer lag of any EventBus adapter as the Prometheus gauge ``bus_consumer_lag{topic,group}``.

:class:`LagMonitor` refreshes the gauge for fixed (topic, group) pairs from a bounded background
task: once right away on ``start`` (so the first scrape already has a value), then every
``interval_s``. Each ``bus.lag(topic, group)`` call (sync for the in-process bus, a coroutine for
the brokers) is bounded by ``timeout_s``; a failure or timeout is logged and counted in
``bus_lag_errors_total{topic,group}`` and leaves the gauge at its last good value (never raised).
Refreshes never overlap. The metric families are created once per registry, so several monitors
(or platforms in one test process) share them without "Duplicated timeseries" errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from prometheus_client import CollectorRegistry, Counter, Gauge

from hexcity.infra.logging import get_logger
from hexcity.infra.metrics import once_per_registry

log = get_logger(__name__)


@runtime_checkable
class LagSource(Protocol):
    """A bus that can report its consumer lag (every adapter: sync or async ``lag``)."""

    def lag(self, topic: str, group: str) -> Any:
        """Events of ``topic`` not yet acked by ``group`` (an int, or an awaitable of one)."""


async def read_lag(bus: LagSource, topic: str, group: str) -> int:
    """``bus.lag(topic, group)``, awaited when the adapter answers with a coroutine."""
    result = bus.lag(topic, group)
    if inspect.isawaitable(result):
        result = await result
    return int(result)


@dataclass(frozen=True, slots=True)
class LagMetricFamilies:
    """The per-registry lag families, labelled by ``topic`` and ``group``."""

    lag: Gauge
    errors: Counter


@once_per_registry
def lag_metric_families(registry: CollectorRegistry) -> LagMetricFamilies:
    """The lag metric families registered on ``registry``, created once."""
    return LagMetricFamilies(
        lag=Gauge(
            "bus_consumer_lag",
            "events published but not yet acked by the group",
            ["topic", "group"],
            registry=registry,
        ),
        errors=Counter(
            "bus_lag_errors",
            "consumer-lag refreshes that failed or timed out (gauge kept its last value)",
            ["topic", "group"],
            registry=registry,
        ),
    )


class LagMonitor:
    """Refreshes ``bus_consumer_lag`` for ``pairs`` of (topic, group); ``async with`` runs it."""

    def __init__(
        self,
        bus: LagSource,
        pairs: list[tuple[str, str]],
        registry: CollectorRegistry,
        interval_s: float = 5.0,
        timeout_s: float = 2.0,
    ) -> None:
        if interval_s <= 0 or timeout_s <= 0:
            raise ValueError("interval_s and timeout_s must be > 0")
        self.bus = bus
        self.pairs = list(pairs)
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._families = lag_metric_families(registry)
        for topic, group in self.pairs:  # errors start at 0 so rate() works from the first scrape
            self._families.errors.labels(topic=topic, group=group)
        self._refreshing = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    async def refresh(self) -> None:
        """Read every pair's lag once and set the gauge; failures are logged and counted."""
        async with self._refreshing:
            for topic, group in self.pairs:
                try:
                    value = await asyncio.wait_for(read_lag(self.bus, topic, group), self.timeout_s)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self._families.errors.labels(topic=topic, group=group).inc()
                    log.warning("bus.lag_failed", topic=topic, group=group, error=repr(exc))
                    continue
                self._families.lag.labels(topic=topic, group=group).set(value)

    async def start(self) -> None:
        """Refresh once now, then every ``interval_s`` in a background task (idempotent)."""
        if self._task is not None:
            return
        await self.refresh()
        self._task = asyncio.create_task(self._loop(), name="bus-lag-monitor")

    async def stop(self) -> None:
        """Cancel the background task (an in-flight refresh is abandoned; bounded by timeout_s)."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.refresh()

    async def __aenter__(self) -> LagMonitor:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
