"""DispatchService: quote → request → window → offer → accept/decline/timeout → trip, in process.

The router here prices and times trips by straight-line distance at 10 m/s (the routing engine is
tested on its own; tests/e2e/test_dispatch_e2e.py runs dispatch on the real Andorra graph).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from prometheus_client import CollectorRegistry

from hexcity.dispatch import InMemoryDriverIndex, LedgerTripPayments
from hexcity.dispatch.adapters.trip_store_sql import SqlTripStore
from hexcity.dispatch.domain.trips import Actor, OfferStatus, TripStatus
from hexcity.dispatch.errors import OfferUnavailable, UnknownProduct
from hexcity.dispatch.service import DispatchService, DispatchSettings
from hexcity.infra.sql import make_engine
from hexcity.kernel import InvalidInput, LatLng, haversine_m
from hexcity.payments import (
    PaymentService,
    SqlLedger,
    driver_account,
    platform_revenue_account,
    wallet_account,
)

pytestmark = pytest.mark.anyio

PICKUP = LatLng(49.4100, 8.6900)
DROPOFF = LatLng(49.4000, 8.6700)
SPEED_MPS = 10.0


class StraightRouter:
    def trip(self, pickup: LatLng, dropoff: LatLng) -> tuple[float, float]:
        d = haversine_m(pickup, dropoff)
        return d, d / SPEED_MPS

    def eta(self, drivers: Sequence[LatLng], riders: Sequence[LatLng]) -> NDArray[np.float64]:
        return np.array([[haversine_m(d, r) / SPEED_MPS for r in riders] for d in drivers], dtype=np.float64)


class Recorder:
    """Notifier and availability port: records what the service pushed and whom it marked."""

    def __init__(self) -> None:
        self.pushed: list[tuple[str, str, dict[str, Any]]] = []
        self.marks: list[tuple[str, str]] = []

    async def send(self, client_id: str, kind: str, payload: dict[str, Any]) -> None:
        self.pushed.append((client_id, kind, payload))

    async def mark_busy(self, driver_id: str) -> None:
        self.marks.append(("busy", driver_id))

    async def mark_available(self, driver_id: str) -> None:
        self.marks.append(("available", driver_id))

    def kinds(self, client_id: str) -> list[str]:
        return [k for c, k, _ in self.pushed if c == client_id]


def build(tmp_path: Path, **settings: Any) -> tuple[DispatchService, InMemoryDriverIndex, Recorder]:
    index = InMemoryDriverIndex()
    rec = Recorder()
    store = SqlTripStore(make_engine(f"sqlite:///{tmp_path / 'd.db'}"))
    service = DispatchService(
        store,
        index,
        StraightRouter(),
        settings=DispatchSettings(**settings),
        notifier=rec,
        availability=rec,
        registry=CollectorRegistry(),
    )
    return service, index, rec


async def put_driver(index: InMemoryDriverIndex, driver_id: str, lat: float, lng: float) -> None:
    await index.upsert(driver_id, lat, lng, "online", time.time())


async def request_trip(service: DispatchService, rider_id: str, pickup: LatLng = PICKUP) -> str:
    quote = await service.quote(rider_id, pickup, DROPOFF, "standard")
    trip = await service.request(rider_id, quote.quote_id)
    return trip.trip_id


async def test_quote_prices_the_route_and_request_is_idempotent(tmp_path: Path) -> None:
    service, _, _ = build(tmp_path)
    async with service:
        q = await service.quote("r1", PICKUP, DROPOFF, "standard")
        d = haversine_m(PICKUP, DROPOFF)
        # standard: 250 + 120/km + 25/min, minimum 600, multiplier 1.00 with no surge data
        expected = round(max(600, 250 + 120 * d / 1000 + 25 * (d / SPEED_MPS) / 60))
        assert (q.amount_cents, q.currency, q.multiplier) == (expected, "EUR", "1.00")
        t1 = await service.request("r1", q.quote_id)
        t2 = await service.request("r1", q.quote_id)
        assert t1 == t2 and service.waiting == 1
        with pytest.raises(UnknownProduct):
            await service.quote("r1", PICKUP, DROPOFF, "helicopter")
        with pytest.raises(InvalidInput, match="pickup"):
            await service.quote("r1", LatLng(91.0, 0.0), DROPOFF, "standard")
        with pytest.raises(InvalidInput, match="rider_id"):
            await service.quote("", PICKUP, DROPOFF, "standard")


async def test_window_offers_nearest_and_accept_runs_the_trip(tmp_path: Path) -> None:
    service, index, rec = build(tmp_path)
    async with service:
        await put_driver(index, "near", 49.4110, 8.6900)  # ~110 m
        await put_driver(index, "far", 49.4200, 8.6900)  # ~1.1 km
        trip_id = await request_trip(service, "r1")
        offers = await service.run_window()
        assert [(o.trip_id, o.driver_id, o.status) for o in offers] == [
            (trip_id, "near", OfferStatus.PENDING)
        ]
        assert rec.kinds("driver:near") == ["offer"]
        assert service.waiting == 0
        trip = await service.accept("near", offers[0].offer_id)
        assert (trip.status, trip.driver_id) == (TripStatus.MATCHED, "near")
        assert rec.marks == [("busy", "near")]
        with pytest.raises(OfferUnavailable):
            await service.accept("near", offers[0].offer_id)
        for status in (TripStatus.DRIVER_ARRIVING, TripStatus.IN_TRIP, TripStatus.COMPLETED):
            trip = await service.advance(trip_id, status, Actor.DRIVER, "near")
        assert (trip.status, trip.version) == (TripStatus.COMPLETED, 6)
        assert rec.marks == [("busy", "near"), ("available", "near")]
        assert rec.kinds("rider:r1") == ["trip"] * 4


async def test_decline_excludes_the_driver_and_rematches(tmp_path: Path) -> None:
    service, index, _ = build(tmp_path)
    async with service:
        await put_driver(index, "near", 49.4110, 8.6900)
        await put_driver(index, "far", 49.4200, 8.6900)
        trip_id = await request_trip(service, "r1")
        [first] = await service.run_window()
        await service.decline("near", first.offer_id)
        [second] = await service.run_window()
        assert (second.trip_id, second.driver_id) == (trip_id, "far")
        assert (await service.get_trip(trip_id)).attempts == 2


async def test_one_driver_two_riders_gets_one_offer(tmp_path: Path) -> None:
    service, index, _ = build(tmp_path)
    async with service:
        await put_driver(index, "only", 49.4110, 8.6900)
        t1 = await request_trip(service, "r1")
        t2 = await request_trip(service, "r2", LatLng(49.4130, 8.6900))
        offers = await service.run_window()
        assert [(o.trip_id, o.driver_id) for o in offers] == [(t1, "only")]
        assert await service.run_window() == []  # the driver is locked by the live offer
        assert service.waiting == 1
        await service.cancel(t1, Actor.RIDER, "r1")
        [again] = await service.run_window()
        assert (again.trip_id, again.driver_id) == (t2, "only")
        assert service.store.check_invariants() == []


async def test_offer_times_out_and_the_rider_is_rematched(tmp_path: Path) -> None:
    ttl_s = 0.6
    service, index, rec = build(
        tmp_path, offer_ttl_s=ttl_s, timer_tick_s=0.05, window_min_s=0.1, window_max_s=0.2
    )
    async with service:
        await put_driver(index, "sleepy", 49.4110, 8.6900)
        await put_driver(index, "awake", 49.4200, 8.6900)
        trip_id = await request_trip(service, "r1")
        deadline = time.monotonic() + 5
        while rec.kinds("driver:awake") != ["offer"] and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        offers = {c: p for c, k, p in rec.pushed if k == "offer"}
        sleepy, awake = offers["driver:sleepy"], offers["driver:awake"]
        # expired at the 15 s-style timer (here 0.6 s), within one timer tick, then re-offered
        assert rec.kinds("driver:sleepy") == ["offer", "offer_expired"]
        assert awake["trip_id"] == sleepy["trip_id"] == trip_id
        assert awake["created_at_s"] - sleepy["created_at_s"] == pytest.approx(ttl_s, abs=0.5)
        assert (await service.get_offer(sleepy["offer_id"])).status is OfferStatus.EXPIRED
        with pytest.raises(OfferUnavailable):
            await service.accept("sleepy", sleepy["offer_id"])
        trip = await service.accept("awake", awake["offer_id"])
        assert trip.driver_id == "awake"


def build_with_payments(tmp_path: Path) -> tuple[DispatchService, InMemoryDriverIndex, PaymentService]:
    engine = make_engine(f"sqlite:///{tmp_path / 'd.db'}")
    payments = PaymentService(SqlLedger(engine))
    payments.create_schema()
    index = InMemoryDriverIndex()
    service = DispatchService(
        SqlTripStore(engine),
        index,
        StraightRouter(),
        payments=LedgerTripPayments(payments),
        registry=CollectorRegistry(),
    )
    return service, index, payments


async def test_a_completed_ride_is_paid_through_the_ledger(tmp_path: Path) -> None:
    """Card shortfall topped up, fare authorised at accept, captured at completion: 15 % to the
    platform, the rest to the driver, the books balanced (the real payments module, on SQLite)."""
    service, index, payments = build_with_payments(tmp_path)
    async with service:
        await put_driver(index, "d1", 49.4110, 8.6900)
        trip_id = await request_trip(service, "r1")
        [offer] = await service.run_window()
        trip = await service.accept("d1", offer.offer_id)
        fare = trip.fare_cents
        wallet = wallet_account("r1", "EUR").id
        assert payments.account(wallet).available_minor == 0  # the whole fare is held
        for status in (TripStatus.DRIVER_ARRIVING, TripStatus.IN_TRIP, TripStatus.COMPLETED):
            await service.advance(trip_id, status, Actor.DRIVER, "d1")
        fee = fare * 1500 // 10_000
        assert payments.account(wallet).balance_minor == 0
        assert payments.account(driver_account("d1", "EUR").id).balance_minor == fare - fee
        assert payments.account(platform_revenue_account("EUR").id).balance_minor == fee
        assert payments.ledger.total_balance()[0] == 0


async def test_cancelling_a_matched_ride_voids_the_fare(tmp_path: Path) -> None:
    service, index, payments = build_with_payments(tmp_path)
    async with service:
        await put_driver(index, "d1", 49.4110, 8.6900)
        trip_id = await request_trip(service, "r1")
        [offer] = await service.run_window()
        trip = await service.accept("d1", offer.offer_id)
        await service.cancel(trip_id, Actor.RIDER, "r1")
        wallet = payments.account(wallet_account("r1", "EUR").id)
        assert (wallet.balance_minor, wallet.available_minor) == (trip.fare_cents, trip.fare_cents)
        assert payments.account(driver_account("d1", "EUR").id).balance_minor == 0
        assert payments.ledger.total_balance()[0] == 0
