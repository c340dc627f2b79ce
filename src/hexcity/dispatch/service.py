"""Dispatch use cases: quote → request → batched matching → offer → accept/decline/timeout → trip.

The service owns the batching loop (dispatch.md §2.6–2.7):

1. every window (adaptive, 2–5 s) it expires offers whose 15 s timer ran out, releasing the
   driver and putting the trip back in the queue with that driver excluded;
2. for each waiting trip it asks the driver index for candidates around the pickup (k-ring,
   status ``online``, at most 30), drops drivers locked by a live offer or trip, and solves the
   window with :func:`match_batch` on road ETAs from the router;
3. each assignment becomes an offer: the store locks the driver and attaches the offer to the
   trip in one transaction (so no driver holds two offers and no trip two live offers, across
   processes), and the offer is pushed to the driver.

A separate timer task expires each offer at ``offer_ttl_s`` (± ``timer_tick_s``), so expiry does
not wait for the next window. Trips, offers and locks live in SQL; events leave through the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import h3
import numpy as np
from numpy.typing import NDArray
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from hexcity.dispatch.adapters.trip_store_sql import SqlTripStore, StoredQuote
from hexcity.dispatch.domain.index import DriverIndex
from hexcity.dispatch.domain.matching import (
    AdaptiveWindow,
    AdaptiveWindowParams,
    Driver,
    MatchParams,
    MatchStats,
    Rider,
    match_batch,
)
from hexcity.dispatch.domain.surge import SurgeModel, Tariff
from hexcity.dispatch.domain.trips import Actor, Offer, Trip, TripStatus, validate_point
from hexcity.dispatch.errors import UnknownProduct
from hexcity.infra import get_logger
from hexcity.infra.metrics import once_per_registry
from hexcity.kernel import InvalidInput, LatLng, Unavailable

__all__ = [
    "DEFAULT_TARIFFS",
    "DispatchService",
    "DispatchSettings",
    "DriverAvailability",
    "Notifier",
    "TripPayments",
    "TripRouter",
]

log = get_logger(__name__)

SURGE_RES = 7
MAX_ID_LEN = 128

DEFAULT_TARIFFS: dict[str, Tariff] = {
    "standard": Tariff(base_cents=250, per_km_cents=120, per_min_cents=25, minimum_cents=600),
    "comfort": Tariff(base_cents=350, per_km_cents=160, per_min_cents=30, minimum_cents=900),
    "xl": Tariff(base_cents=450, per_km_cents=200, per_min_cents=35, minimum_cents=1200),
}


class DispatchSettings(BaseSettings):
    """Trips, offers and batching (environment prefix ``HEXCITY_DISPATCH_``)."""

    model_config = SettingsConfigDict(env_prefix="HEXCITY_DISPATCH_", extra="ignore")

    enabled: bool = Field(default=True, description="serve dispatch (needs the routing profile below)")
    profile: str = Field(default="car", description="routing profile for quotes, ETAs and snapping")
    index_url: str = Field(
        default="memory://",
        pattern=r"^(memory://|redis://.+)$",
        description="driver index: memory:// (embedded) or redis://host:6379/0 (several API processes)",
    )
    index_prefix: str = Field(default="hexcity:", max_length=64)

    offer_ttl_s: float = Field(default=15.0, gt=0, le=300)
    timer_tick_s: float = Field(default=0.25, gt=0, le=5)
    sweep_every_s: float = Field(default=5.0, gt=0, le=60)
    window_min_s: float = Field(default=2.0, gt=0, le=60)
    window_max_s: float = Field(default=5.0, gt=0, le=60)
    window_k_target: float = Field(default=30.0, gt=0)
    search_radius_m: float = Field(default=3000.0, gt=0, le=20_000)
    candidates_per_rider: int = Field(default=30, ge=1, le=200)
    max_pickup_eta_s: float = Field(default=900.0, gt=0)
    max_pending_trips: int = Field(default=10_000, ge=1)
    max_trips_per_window: int = Field(default=2_000, ge=1)
    quote_ttl_s: float = Field(default=60.0, gt=0, le=3600)
    surge_recompute_s: float = Field(default=10.0, gt=0)
    window_s: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="fixed batching window under a manual clock (HEXCITY_CLOCK=manual), where the "
        "platform runs the match job every window_s instead of the adaptive window loop",
    )
    max_pending_offers_listed: int = Field(default=50, ge=1, le=1000)
    max_excluded_per_trip: int = Field(default=50, ge=0)
    require_registered_drivers: bool = Field(
        default=False,
        description="refuse pings of drivers not registered with POST /dispatch/v1/drivers (counted "
        "unknown_driver); off in the embedded default, on in production",
    )
    max_registered_drivers: int = Field(default=1_000_000, ge=1)


class TripRouter(Protocol):
    """What dispatch needs from the road router."""

    def trip(self, pickup: LatLng, dropoff: LatLng) -> tuple[float, float]:
        """(distance_m, duration_s) of the fastest road route; raises a HexcityError if none."""
        ...

    def eta(self, drivers: Sequence[LatLng], riders: Sequence[LatLng]) -> NDArray[np.float64]:
        """Pickup ETAs (s), shape (drivers, riders), nan where unreachable."""
        ...


class Notifier(Protocol):
    """Push to a client ("driver:<id>" / "rider:<id>"); must not block on slow clients."""

    async def send(self, client_id: str, kind: str, payload: dict[str, Any]) -> Any: ...


class TripPayments(Protocol):
    """The ride's money: authorise the fare at match, capture at completion, void on cancel.

    Each call is idempotent per trip and may raise a HexcityError (e.g. the payment is refused).
    """

    def authorize(self, trip: Trip) -> None: ...

    def capture(self, trip: Trip) -> None: ...

    def void(self, trip: Trip) -> None: ...


class DriverAvailability(Protocol):
    """Tells ingestion that a driver is on a trip (busy) or free again."""

    async def mark_busy(self, driver_id: str) -> None: ...

    async def mark_available(self, driver_id: str) -> None: ...


@dataclass
class _Waiting:
    trip: Trip
    enqueued_at_s: float
    excluded: set[str] = field(default_factory=set)


@once_per_registry
def _metrics(registry: CollectorRegistry) -> tuple[Counter, Counter, Histogram, Gauge]:
    return (
        Counter("dispatch_offers", "offers by outcome", ["outcome"], registry=registry),
        Counter("dispatch_trips", "trip transitions by new status", ["status"], registry=registry),
        Histogram(
            "dispatch_window_seconds",
            "time to solve one batching window (candidates, ETAs, assignment, offers)",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 5),
            registry=registry,
        ),
        Gauge("dispatch_waiting_trips", "requested trips waiting for an offer", registry=registry),
    )


class DispatchService:
    """The dispatch use cases; ``async with`` runs the batching, timer and surge loops."""

    def __init__(
        self,
        store: SqlTripStore,
        index: DriverIndex,
        router: TripRouter,
        *,
        settings: DispatchSettings | None = None,
        surge: SurgeModel | None = None,
        notifier: Notifier | None = None,
        availability: DriverAvailability | None = None,
        payments: TripPayments | None = None,
        tariffs: dict[str, Tariff] | None = None,
        match_params: MatchParams | None = None,
        registry: CollectorRegistry = REGISTRY,
        clock: Callable[[], float] = time.time,
        loops: bool = True,
    ) -> None:
        """``loops=False`` (manual clock): ``async with`` starts no batching, timer or surge loop;
        the platform calls :meth:`run_window`, :meth:`tick_offers` and :meth:`recompute_surge`."""
        self.settings = settings or DispatchSettings()
        s = self.settings
        if s.window_min_s > s.window_max_s:
            raise ValueError("window_min_s must be <= window_max_s")
        self.store = store
        self.index = index
        self.router = router
        self.surge = surge or SurgeModel(clock=clock)
        self.notifier = notifier
        self.availability = availability
        self.payments = payments
        self.tariffs = tariffs or DEFAULT_TARIFFS
        self.match_params = match_params or MatchParams(
            max_pickup_eta_s=s.max_pickup_eta_s, candidates_per_rider=s.candidates_per_rider
        )
        self.window = AdaptiveWindow(
            AdaptiveWindowParams(t_min_s=s.window_min_s, t_max_s=s.window_max_s, k_target=s.window_k_target)
        )
        self.clock = clock
        self.loops = loops
        self._waiting: OrderedDict[str, _Waiting] = OrderedDict()
        self._timers: list[tuple[float, str]] = []  # (expires_at_s, offer_id)
        self._last_sweep_s = float("-inf")  # tick_offers: last full expiry sweep
        self._arrivals = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()
        self._kick = asyncio.Event()
        self._lock = asyncio.Lock()  # one window at a time in this process
        self.last_stats = MatchStats()
        self.windows = 0
        self._payment_failures_total = 0
        self._registered: set[str] = set()
        self._offers_c, self._trips_c, self._window_h, self._waiting_g = _metrics(registry)

    # ---- lifecycle ------------------------------------------------------------------------------
    async def __aenter__(self) -> DispatchService:
        await asyncio.to_thread(self.store.create_schema)
        await self.refresh_drivers()
        for trip in await asyncio.to_thread(self.store.unoffered_trips, self.settings.max_pending_trips):
            self._waiting[trip.trip_id] = _Waiting(trip, trip.requested_at_s)
        self._stop.clear()
        if self.loops:
            self._tasks = [
                asyncio.create_task(self._batch_loop(), name="dispatch-batcher"),
                asyncio.create_task(self._timer_loop(), name="dispatch-offer-timers"),
                asyncio.create_task(self._surge_loop(), name="dispatch-surge"),
            ]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        self._kick.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    # ---- drivers --------------------------------------------------------------------------------
    async def register_driver(self, driver_id: str, products: list[str]) -> bool:
        """Register a driver for ``products``; ``True`` if new. Idempotent."""
        _check_id("driver_id", driver_id)
        unknown = sorted(set(products) - set(self.tariffs))
        if not products or unknown:
            raise UnknownProduct(
                f"products must be among {sorted(self.tariffs)}; got {sorted(set(products))}"
            )
        created = await asyncio.to_thread(self.store.register_driver, driver_id, products, self.clock())
        self._registered.add(driver_id)
        return created

    def is_registered(self, driver_id: str) -> bool:
        """For the intake: a registered driver (this process's view, refreshed every sweep)."""
        return driver_id in self._registered

    async def refresh_drivers(self) -> None:
        limit = self.settings.max_registered_drivers
        self._registered = await asyncio.to_thread(self.store.registered_drivers, limit)

    # ---- quotes and requests --------------------------------------------------------------------
    async def quote(self, rider_id: str, pickup: LatLng, dropoff: LatLng, product: str) -> StoredQuote:
        """Price a trip from the road route × the pickup cell's surge; locked for ``quote_ttl_s``."""
        _check_id("rider_id", rider_id)
        pickup = validate_point("pickup", pickup.lat, pickup.lng)
        dropoff = validate_point("dropoff", dropoff.lat, dropoff.lng)
        tariff = self.tariffs.get(product)
        if tariff is None:
            raise UnknownProduct(f"unknown product {product!r}; one of {sorted(self.tariffs)}")
        distance_m, duration_s = await asyncio.to_thread(self.router.trip, pickup, dropoff)
        cell = str(h3.latlng_to_cell(pickup.lat, pickup.lng, SURGE_RES))
        now = self.clock()
        q = self.surge.quote(distance_m, duration_s, cell, now, tariff)
        stored = StoredQuote(
            quote_id=f"q_{uuid.uuid4().hex}",
            rider_id=rider_id,
            product=product,
            pickup=pickup,
            dropoff=dropoff,
            amount_cents=q.amount_cents,
            currency=q.currency,
            multiplier=str(q.multiplier),
            cell=cell,
            distance_m=distance_m,
            duration_s=duration_s,
            issued_at_s=now,
            expires_at_s=now + self.settings.quote_ttl_s,
        )
        await asyncio.to_thread(self.store.save_quote, stored)
        return stored

    async def request(self, rider_id: str, quote_id: str) -> Trip:
        """Turn a quote into a trip (idempotent per quote); it joins the next batching window."""
        _check_id("rider_id", rider_id)
        _check_id("quote_id", quote_id)
        if len(self._waiting) >= self.settings.max_pending_trips:
            raise Unavailable("too many trips are waiting for a driver; try again shortly", code="Overloaded")
        trip_id = f"t_{uuid.uuid4().hex}"
        trip, created = await asyncio.to_thread(
            self.store.create_trip, trip_id, quote_id, rider_id, self.clock()
        )
        if created:
            self._arrivals += 1
            self._waiting[trip.trip_id] = _Waiting(trip, self.clock())
            self._waiting_g.set(len(self._waiting))
            self._trips_c.labels(status=str(trip.status)).inc()
            # verified demand only (a trip, not a quote) feeds surge
            self.surge.observe_request(str(h3.latlng_to_cell(trip.pickup.lat, trip.pickup.lng, SURGE_RES)))
        return trip

    async def get_trip(self, trip_id: str) -> Trip:
        _check_id("trip_id", trip_id)
        return await asyncio.to_thread(self.store.get_trip, trip_id)

    async def get_offer(self, offer_id: str) -> Offer:
        _check_id("offer_id", offer_id)
        return await asyncio.to_thread(self.store.get_offer, offer_id)

    async def pending_offers(self, driver_id: str) -> list[Offer]:
        """The driver's offers still open (pending, not expired), oldest first: what a driver app
        polls on reconnect (and the simulator in lockstep) instead of waiting for the push."""
        _check_id("driver_id", driver_id)
        limit = self.settings.max_pending_offers_listed
        return await asyncio.to_thread(self.store.pending_offers, driver_id, self.clock(), limit)

    # ---- offers ---------------------------------------------------------------------------------
    async def accept(self, driver_id: str, offer_id: str) -> Trip:
        _check_id("driver_id", driver_id)
        _check_id("offer_id", offer_id)
        trip = await asyncio.to_thread(self.store.accept_offer, offer_id, driver_id, self.clock())
        self._offers_c.labels(outcome="accepted").inc()
        self._trips_c.labels(status=str(trip.status)).inc()
        self._waiting.pop(trip.trip_id, None)
        if self.payments is not None:
            try:
                await asyncio.to_thread(self.payments.authorize, trip)
            except Exception as exc:  # refused or payments down: the ride cannot go ahead unpaid
                log.warning("dispatch_fare_authorisation_failed", trip=trip.trip_id, error=repr(exc)[:200])
                self._payment_failures_total += 1
                return await self.cancel(trip.trip_id, Actor.DISPATCH, None, "payment authorisation failed")
        if self.availability is not None:
            await self.availability.mark_busy(driver_id)
        await self._notify(f"rider:{trip.rider_id}", "trip", trip.public())
        return trip

    async def decline(self, driver_id: str, offer_id: str) -> Trip:
        _check_id("driver_id", driver_id)
        _check_id("offer_id", offer_id)
        trip = await asyncio.to_thread(self.store.decline_offer, offer_id, driver_id, self.clock())
        self._offers_c.labels(outcome="declined").inc()
        self._requeue(trip, driver_id)
        return trip

    # ---- trip progress --------------------------------------------------------------------------
    async def advance(self, trip_id: str, to: TripStatus, actor: Actor, actor_id: str | None) -> Trip:
        """A driver reports progress (arriving, in trip, completed) or someone cancels."""
        _check_id("trip_id", trip_id)
        trip = await asyncio.to_thread(self.store.transition, trip_id, to, actor, actor_id, self.clock())
        self._trips_c.labels(status=str(trip.status)).inc()
        if trip.status is TripStatus.COMPLETED:
            await self._settle(self.payments.capture if self.payments else None, trip)
        if trip.is_terminal:
            self._waiting.pop(trip.trip_id, None)
            if trip.driver_id is not None and self.availability is not None:
                await self.availability.mark_available(trip.driver_id)
        await self._notify(f"rider:{trip.rider_id}", "trip", trip.public())
        if trip.driver_id is not None:
            await self._notify(f"driver:{trip.driver_id}", "trip", trip.public())
        return trip

    async def cancel(
        self, trip_id: str, actor: Actor, actor_id: str | None, reason: str | None = None
    ) -> Trip:
        _check_id("trip_id", trip_id)
        before = await asyncio.to_thread(self.store.get_trip, trip_id)
        trip = await asyncio.to_thread(
            self.store.transition, trip_id, TripStatus.CANCELLED, actor, actor_id, self.clock(), reason
        )
        self._trips_c.labels(status=str(trip.status)).inc()
        self._waiting.pop(trip.trip_id, None)
        self._waiting_g.set(len(self._waiting))
        if before.offer_id is not None:
            offer = await asyncio.to_thread(self.store.get_offer, before.offer_id)
            await self._notify(f"driver:{offer.driver_id}", "offer_cancelled", offer.public())
        if trip.driver_id is not None:
            await self._settle(self.payments.void if self.payments else None, trip)
            if self.availability is not None:
                await self.availability.mark_available(trip.driver_id)
            await self._notify(f"driver:{trip.driver_id}", "trip", trip.public())
        await self._notify(f"rider:{trip.rider_id}", "trip", trip.public())
        return trip

    async def _settle(self, call: Callable[[Trip], None] | None, trip: Trip) -> None:
        """Capture or void; a failure is logged and counted, never undoes the trip (the payments
        reconciliation report lists trips whose money did not settle)."""
        if call is None:
            return
        try:
            await asyncio.to_thread(call, trip)
        except Exception as exc:
            self._payment_failures_total += 1
            log.error(
                "dispatch_settlement_failed",
                trip=trip.trip_id,
                status=str(trip.status),
                error=repr(exc)[:200],
            )

    # ---- surge ----------------------------------------------------------------------------------
    def surge_at(self, point: LatLng) -> dict[str, Any]:
        validate_point("point", point.lat, point.lng)
        cell = str(h3.latlng_to_cell(point.lat, point.lng, SURGE_RES))
        now = self.clock()
        supply, demand = self.surge.supply_demand(cell, now)
        return {
            "cell": cell,
            "multiplier": round(self.surge.multiplier(cell, now), 2),
            "supply": supply,
            "demand": demand,
            "frozen": self.surge.is_frozen(cell, now),
        }

    # ---- the batching window --------------------------------------------------------------------
    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def kick(self) -> None:
        """Close the current window now (tests, and the simulator's fast-forward)."""
        self._kick.set()

    async def run_window(self) -> list[Offer]:
        """Solve one window now: expire offers, match waiting trips, make offers."""
        async with self._lock:
            started = time.perf_counter()
            await self.expire_due()
            offers = await self._match_waiting()
            self._window_h.observe(time.perf_counter() - started)
            self.windows += 1
            self._waiting_g.set(len(self._waiting))
            return offers

    async def recompute_surge(self) -> None:
        """Recompute every cell's multiplier now (the surge loop, or the manual clock's job)."""
        self.surge.recompute(self.clock())

    async def tick_offers(self) -> int:
        """One tick of the offer timers (the manual clock's ``dispatch.offers`` job): expire offers
        when one of this process's timers is due, or every ``sweep_every_s`` in any case (offers
        made before a restart); otherwise no database round trip. Returns how many expired."""
        now = self.clock()
        due = False
        while self._timers and self._timers[0][0] <= now:
            heapq.heappop(self._timers)
            due = True
        if not due and now - self._last_sweep_s < self.settings.sweep_every_s:
            return 0
        self._last_sweep_s = now
        async with self._lock:
            return await self.expire_due()

    async def expire_due(self) -> int:
        expired = await asyncio.to_thread(self.store.expire_offers, self.clock())
        for offer, trip in expired:
            self._offers_c.labels(outcome="expired").inc()
            await self._notify(f"driver:{offer.driver_id}", "offer_expired", offer.public())
            self._requeue(trip, offer.driver_id)
        return len(expired)

    def _requeue(self, trip: Trip, excluded_driver: str) -> None:
        if trip.status is not TripStatus.REQUESTED:
            return
        entry = self._waiting.get(trip.trip_id) or _Waiting(trip, self.clock())
        entry.trip = trip
        if len(entry.excluded) < self.settings.max_excluded_per_trip:
            entry.excluded.add(excluded_driver)
        self._waiting[trip.trip_id] = entry
        self._waiting_g.set(len(self._waiting))

    async def _match_waiting(self) -> list[Offer]:
        if not self._waiting:
            return []
        batch = list(self._waiting.values())[: self.settings.max_trips_per_window]  # oldest first
        locked = await asyncio.to_thread(self.store.locked_drivers)
        candidates: dict[str, Driver] = {}
        riders: list[Rider] = []
        allowed: dict[str, set[str]] = {}
        # the solver breaks ties by rider id; trip ids are random, so riders go in as their queue
        # position (oldest first) and the result is the same for the same queue and index state
        trip_of: dict[str, str] = {}
        for w in batch:
            if w.trip.offer_id is not None:
                continue
            near = await self.index.nearby(
                w.trip.pickup.lat,
                w.trip.pickup.lng,
                self.settings.search_radius_m,
                limit=self.settings.candidates_per_rider,
            )
            ok = {d.driver_id for d in near if d.driver_id not in locked and d.driver_id not in w.excluded}
            for d in near:
                if d.driver_id in ok and d.driver_id not in candidates:
                    candidates[d.driver_id] = Driver(d.driver_id, d.lat, d.lng)
            if ok:
                alias = f"{len(riders):08d}"
                trip_of[alias] = w.trip.trip_id
                riders.append(Rider(alias, w.trip.pickup.lat, w.trip.pickup.lng))
                allowed[alias] = ok
        if not riders:
            return []
        drivers = sorted(candidates.values(), key=lambda d: d.id)
        stats = MatchStats()
        assignments = await asyncio.to_thread(
            match_batch,
            riders,
            drivers,
            self.router.eta,
            self.match_params,
            stats=stats,
            allowed_drivers=allowed,  # the index's candidates, minus locked and declined drivers
        )
        self.last_stats = stats
        now = self.clock()
        made: list[Offer] = []
        for a in assignments:
            created = await asyncio.to_thread(
                self.store.create_offer,
                f"o_{uuid.uuid4().hex}",
                trip_of[a.rider_id],
                a.driver_id,
                a.eta_s,
                now,
                self.settings.offer_ttl_s,
            )
            if created is None:
                self._offers_c.labels(outcome="lock_lost").inc()
                continue
            offer, trip = created
            self._offers_c.labels(outcome="offered").inc()
            self._waiting.pop(trip.trip_id, None)
            heapq.heappush(self._timers, (offer.expires_at_s, offer.offer_id))
            made.append(offer)
            await self._notify(
                f"driver:{offer.driver_id}",
                "offer",
                {**offer.public(), "trip": trip.public()},
            )
        return made

    async def _batch_loop(self) -> None:
        last = time.monotonic()
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), self.window.window_s())
            self._kick.clear()
            if self._stop.is_set():
                return
            now = time.monotonic()
            self.window.observe(self._arrivals, now - last)
            self._arrivals, last = 0, now
            try:
                await self.run_window()
            except Exception:  # a failed window (database blip, router error) must not stop dispatch
                log.exception("dispatch_window_failed")

    async def _timer_loop(self) -> None:
        last_sweep = 0.0
        while not self._stop.is_set():
            await asyncio.sleep(self.settings.timer_tick_s)
            now = self.clock()
            due = False
            while self._timers and self._timers[0][0] <= now:
                heapq.heappop(self._timers)
                due = True
            if due or now - last_sweep >= self.settings.sweep_every_s:  # sweep: other processes' offers
                sweep = now - last_sweep >= self.settings.sweep_every_s
                last_sweep = now
                try:
                    if sweep and self.settings.require_registered_drivers:
                        await self.refresh_drivers()  # drivers registered through other processes
                    async with self._lock:
                        await self.expire_due()
                except Exception:
                    log.exception("dispatch_offer_expiry_failed")

    async def _surge_loop(self) -> None:
        while not self._stop.is_set():
            await asyncio.sleep(self.settings.surge_recompute_s)
            try:
                await self.recompute_surge()
            except Exception:
                log.exception("surge_recompute_failed")

    async def _notify(self, client_id: str, kind: str, payload: dict[str, Any]) -> None:
        if self.notifier is None:
            return
        try:
            await self.notifier.send(client_id, kind, payload)
        except Exception:  # push is best effort: the state is in SQL and can be polled
            log.exception("dispatch_push_failed", client=client_id, kind=kind)


def _check_id(name: str, value: str) -> None:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_LEN or not value.isprintable():
        raise InvalidInput(f"{name} must be 1..{MAX_ID_LEN} printable characters")
