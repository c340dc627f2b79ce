"""The dashboard's live feed: platform bus events folded into per-second frames for SSE clients.

:class:`LiveFeed` subscribes to ``ride.status``, ``ride.dispatched`` and
``driver.location.updates`` as consumer group ``web-dashboard`` and keeps a bounded picture of the
city: drivers (latest position per driver — many pings within a second coalesce into one update),
active trips, H3 res-7 cells with supply and demand (boundaries computed here with h3), KPIs over
time and a tail of notable events. Once per ``tick_s`` it sends every subscriber one ``tick``
frame with what changed; a new subscriber first gets a full ``snapshot``. Every buffer is bounded:
a subscriber that falls ``subscriber_queue`` frames behind is dropped (the browser reconnects and
gets a fresh snapshot), never allowed to grow memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import h3

from hexcity.infra import get_logger
from hexcity.infra.bus import Delivery, EventBus, Subscription
from hexcity.kernel.events import Event
from hexcity.web.panels import PanelRegistry

__all__ = ["FEED_GROUP", "FEED_TOPICS", "FeedLimits", "LiveFeed"]

log = get_logger(__name__)

TOPIC_STATUS = "ride.status"
TOPIC_DISPATCHED = "ride.dispatched"
TOPIC_LOCATION = "driver.location.updates"
FEED_TOPICS = (TOPIC_STATUS, TOPIC_DISPATCHED, TOPIC_LOCATION)
FEED_GROUP = "web-dashboard"
CELL_RES = 7  # the surge resolution of dispatch
TERMINAL = frozenset({"completed", "cancelled"})
WAITING = frozenset({"requested", "matched"})  # demand: riders not yet picked up


@dataclass(frozen=True)
class FeedLimits:
    """Bounds of every buffer the feed keeps (counts, seconds)."""

    tick_s: float = 1.0
    max_drivers: int = 20_000
    max_trips: int = 10_000
    max_events: int = 100  # event-stream tail
    max_events_per_tick: int = 50
    max_kpi_points: int = 600  # 10 minutes at one point per second
    max_cells: int = 300
    max_subscribers: int = 20
    subscriber_queue: int = 30  # frames a subscriber may lag before it is dropped
    driver_stale_s: float = 60.0  # a driver not heard from for this long leaves the map
    dedupe_entries: int = 20_000

    def __post_init__(self) -> None:
        if not 0.05 <= self.tick_s <= 60:
            raise ValueError("tick_s must be in [0.05, 60]")
        for name in ("max_drivers", "max_trips", "max_events", "max_kpi_points", "max_cells"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.max_subscribers < 1 or self.subscriber_queue < 2:
            raise ValueError("max_subscribers must be >= 1 and subscriber_queue >= 2")


@dataclass
class _Driver:
    lat: float
    lng: float
    status: str
    seen_s: float


@dataclass
class _Counters:
    requested: int = 0
    completed: int = 0
    cancelled: int = 0
    offers: int = 0
    eta_sum_s: float = 0.0
    eta_n: int = 0


@dataclass
class _Changes:
    drivers: set[str] = field(default_factory=set)
    gone: set[str] = field(default_factory=set)
    trips: set[str] = field(default_factory=set)
    ended: set[str] = field(default_factory=set)
    events: list[dict[str, Any]] = field(default_factory=list)


class LiveFeed:
    """Bus → bounded city state → one SSE frame per tick for each subscriber."""

    def __init__(
        self,
        bus: EventBus,
        limits: FeedLimits | None = None,
        *,
        panels: PanelRegistry | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.bus = bus
        self.limits = limits or FeedLimits()
        self.panels = panels or PanelRegistry()
        self.clock = clock
        self.drivers: OrderedDict[str, _Driver] = OrderedDict()
        self.trips: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.counters = _Counters()
        self.kpis: deque[dict[str, Any]] = deque(maxlen=self.limits.max_kpi_points)
        self.events: deque[dict[str, Any]] = deque(maxlen=self.limits.max_events)
        self.events_seen = 0
        self._changes = _Changes()
        self._seen_ids: OrderedDict[str, None] = OrderedDict()
        self._boundaries: OrderedDict[str, list[list[float]]] = OrderedDict()
        self._subscribers: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self._subscriptions: list[Subscription] = []
        self._ticker: asyncio.Task[None] | None = None
        self.closed = False

    # ---- lifecycle ------------------------------------------------------------------------------
    async def __aenter__(self) -> LiveFeed:
        self.closed = False
        for topic in FEED_TOPICS:
            self._subscriptions.append(await self.bus.subscribe(topic, FEED_GROUP, self._on_delivery))
        self._ticker = asyncio.create_task(self._tick_loop(), name="web-live-ticker")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        for sub in self._subscriptions:
            await sub.stop()
        self._subscriptions.clear()

    def close(self) -> None:
        """End every subscriber's stream now (shutdown: open SSE responses finish promptly)."""
        self.closed = True
        for queue in list(self._subscribers):
            _force(queue, None)
        self._subscribers.clear()

    async def _on_delivery(self, delivery: Delivery) -> None:
        self.ingest(delivery.event)

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.limits.tick_s)
            try:
                self.broadcast(self.tick())
            except Exception:  # the ticker must survive a bad event
                log.exception("web_live_tick_failed")

    # ---- folding events -------------------------------------------------------------------------
    def ingest(self, event: Event) -> None:
        """Fold one bus event into the state (idempotent on ``event_id``)."""
        if event.event_id in self._seen_ids:
            return
        self._seen_ids[event.event_id] = None
        if len(self._seen_ids) > self.limits.dedupe_entries:
            self._seen_ids.popitem(last=False)
        self.events_seen += 1
        p = event.payload
        if event.topic == TOPIC_LOCATION:
            self._on_location(p)
        elif event.topic == TOPIC_STATUS:
            self._on_status(p, event.occurred_at_s)
        elif event.topic == TOPIC_DISPATCHED:
            self.counters.offers += 1
            eta = p.get("pickup_eta_s")
            if isinstance(eta, int | float):
                self.counters.eta_sum_s += float(eta)
                self.counters.eta_n += 1
            self._note(event, f"offer to {p.get('driver_id')} for trip {p.get('trip_id')} (ETA {eta} s)")

    def _on_location(self, p: dict[str, Any]) -> None:
        driver_id = str(p.get("driver_id", ""))
        lat, lng, status = p.get("lat"), p.get("lng"), str(p.get("status", "online"))
        if not driver_id or not isinstance(lat, int | float) or not isinstance(lng, int | float):
            return
        if status == "offline":
            if self.drivers.pop(driver_id, None) is not None:
                self._changes.gone.add(driver_id)
                self._changes.drivers.discard(driver_id)
                self._note_text(TOPIC_LOCATION, driver_id, f"driver {driver_id} logged out")
            return
        known = self.drivers.get(driver_id)
        if known is None:
            self._note_text(TOPIC_LOCATION, driver_id, f"driver {driver_id} online")
            self.drivers[driver_id] = _Driver(float(lat), float(lng), status, self.clock())
            if len(self.drivers) > self.limits.max_drivers:
                evicted, _ = self.drivers.popitem(last=False)
                self._changes.gone.add(evicted)
        else:
            known.lat, known.lng, known.status, known.seen_s = float(lat), float(lng), status, self.clock()
            self.drivers.move_to_end(driver_id)
        self._changes.gone.discard(driver_id)
        self._changes.drivers.add(driver_id)

    def _on_status(self, p: dict[str, Any], at_s: float) -> None:
        trip_id = str(p.get("trip_id", ""))
        status = str(p.get("status", ""))
        if not trip_id:
            return
        known = self.trips.get(trip_id)
        if known is not None and int(known.get("version", 0)) >= int(p.get("version", 0)):
            return  # an older version arriving late
        if status == "requested" and known is None:
            self.counters.requested += 1
        if status in TERMINAL:
            if status == "completed":
                self.counters.completed += 1
            else:
                self.counters.cancelled += 1
            self.trips.pop(trip_id, None)
            self._changes.ended.add(trip_id)
            self._changes.trips.discard(trip_id)
        else:
            self.trips[trip_id] = _trip_view(p)
            self.trips.move_to_end(trip_id)
            if len(self.trips) > self.limits.max_trips:
                evicted, _ = self.trips.popitem(last=False)
                self._changes.ended.add(evicted)
            self._changes.trips.add(trip_id)
        self._note_text(TOPIC_STATUS, trip_id, f"trip {trip_id} {status}", at_s)

    def _note(self, event: Event, text: str) -> None:
        self._note_text(event.topic, event.key, text, event.occurred_at_s)

    def _note_text(self, topic: str, key: str, text: str, at_s: float | None = None) -> None:
        when_s = at_s if at_s is not None else self.clock()
        entry = {"t": round(when_s, 3), "topic": topic, "key": key, "text": text}
        self.events.append(entry)
        if len(self._changes.events) < self.limits.max_events_per_tick:
            self._changes.events.append(entry)

    # ---- frames ---------------------------------------------------------------------------------
    def expire_stale(self) -> None:
        """Drop drivers not heard from for ``driver_stale_s`` (their app died without logging out)."""
        cutoff = self.clock() - self.limits.driver_stale_s
        while self.drivers:
            driver_id, d = next(iter(self.drivers.items()))
            if d.seen_s >= cutoff:
                break
            del self.drivers[driver_id]
            self._changes.gone.add(driver_id)
            self._changes.drivers.discard(driver_id)

    def kpi_point(self) -> dict[str, Any]:
        """The KPIs now: drivers by state, trips active/requested/completed, mean offered ETA."""
        online = sum(1 for d in self.drivers.values() if d.status != "busy")
        c = self.counters
        return {
            "t": round(self.clock(), 3),
            "drivers_online": online,
            "drivers_busy": len(self.drivers) - online,
            "trips_active": len(self.trips),
            "trips_waiting": sum(1 for t in self.trips.values() if t["status"] in WAITING),
            "trips_requested": c.requested,
            "trips_completed": c.completed,
            "trips_cancelled": c.cancelled,
            "offers": c.offers,
            "mean_pickup_eta_s": round(c.eta_sum_s / c.eta_n, 1) if c.eta_n else None,
        }

    def cells(self) -> list[dict[str, Any]]:
        """H3 res-7 cells with drivers or waiting riders: supply, demand and boundary ([lng, lat])."""
        supply: dict[str, int] = {}
        demand: dict[str, int] = {}
        for d in self.drivers.values():
            if d.status != "busy":
                cell = str(h3.latlng_to_cell(d.lat, d.lng, CELL_RES))
                supply[cell] = supply.get(cell, 0) + 1
        for t in self.trips.values():
            if t["status"] in WAITING:
                cell = str(h3.latlng_to_cell(t["pickup"][1], t["pickup"][0], CELL_RES))
                demand[cell] = demand.get(cell, 0) + 1
        keys = sorted(set(supply) | set(demand), key=lambda c: (-(supply.get(c, 0) + demand.get(c, 0)), c))
        return [
            {"cell": c, "supply": supply.get(c, 0), "demand": demand.get(c, 0), "boundary": self._boundary(c)}
            for c in keys[: self.limits.max_cells]
        ]

    def _boundary(self, cell: str) -> list[list[float]]:
        ring = self._boundaries.get(cell)
        if ring is None:
            ring = [[round(lng, 6), round(lat, 6)] for lat, lng in h3.cell_to_boundary(cell)]
            ring.append(ring[0])
            self._boundaries[cell] = ring
            if len(self._boundaries) > 4 * self.limits.max_cells:
                self._boundaries.popitem(last=False)
        return ring

    def tick(self) -> dict[str, Any]:
        """The ``tick`` frame: what changed since the last tick (coalesced), plus KPIs and cells."""
        self.expire_stale()
        ch, self._changes = self._changes, _Changes()
        point = self.kpi_point()
        self.kpis.append(point)
        return {
            "type": "tick",
            "drivers": [self._driver_row(i) for i in sorted(ch.drivers) if i in self.drivers],
            "gone": sorted(ch.gone),
            "trips": [self.trips[i] for i in sorted(ch.trips) if i in self.trips],
            "ended": sorted(ch.ended),
            "cells": self.cells(),
            "kpi": point,
            "events": ch.events,
            "panels": self.panels.snapshot(),
        }

    def snapshot(self) -> dict[str, Any]:
        """The ``snapshot`` frame a new subscriber starts from."""
        return {
            "type": "snapshot",
            "drivers": [self._driver_row(i) for i in self.drivers],
            "trips": list(self.trips.values()),
            "cells": self.cells(),
            "kpis": list(self.kpis),
            "events": list(self.events),
            "panels": self.panels.snapshot(),
        }

    def _driver_row(self, driver_id: str) -> list[Any]:
        d = self.drivers[driver_id]
        return [driver_id, round(d.lat, 6), round(d.lng, 6), d.status]

    # ---- subscribers ----------------------------------------------------------------------------
    def broadcast(self, frame: dict[str, Any]) -> None:
        """Queue ``frame`` for every subscriber; one that lags ``subscriber_queue`` frames is dropped."""
        for queue in list(self._subscribers):
            if not _offer(queue, frame):
                self._subscribers.discard(queue)
                _force(queue, None)
                log.warning("web_live_subscriber_dropped", reason="too slow")

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    async def frames(self) -> AsyncIterator[dict[str, Any]]:
        """A subscriber's frames: a snapshot, then one tick per ``tick_s``, until close or drop.

        Raises OverflowError when ``max_subscribers`` streams are already open.
        """
        if self.closed:
            return
        if len(self._subscribers) >= self.limits.max_subscribers:
            raise OverflowError(f"at most {self.limits.max_subscribers} live streams")
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(self.limits.subscriber_queue)
        self._subscribers.add(queue)
        try:
            yield self.snapshot()
            while True:
                frame = await queue.get()
                if frame is None:
                    return
                yield frame
        finally:
            self._subscribers.discard(queue)


def _trip_view(p: dict[str, Any]) -> dict[str, Any]:
    pickup = p.get("pickup") or {}
    dropoff = p.get("dropoff") or {}
    return {
        "trip_id": str(p.get("trip_id")),
        "status": str(p.get("status")),
        "version": int(p.get("version", 0)),
        "driver_id": p.get("driver_id"),
        "pickup": [float(pickup.get("lng", 0.0)), float(pickup.get("lat", 0.0))],
        "dropoff": [float(dropoff.get("lng", 0.0)), float(dropoff.get("lat", 0.0))],
    }


def _offer(queue: asyncio.Queue[dict[str, Any] | None], item: dict[str, Any] | None) -> bool:
    try:
        queue.put_nowait(item)
    except asyncio.QueueFull:
        return False
    return True


def _force(queue: asyncio.Queue[dict[str, Any] | None], item: dict[str, Any] | None) -> None:
    """Put ``item`` even into a full queue (drops the oldest frame): the end-of-stream marker."""
    with contextlib.suppress(asyncio.QueueEmpty):
        if queue.full():
            queue.get_nowait()
    queue.put_nowait(item)
