"""Trips and offers: state machine rules, the SQL store's exclusivity guarantees, and the events.

The store tests run on SQLite here and on PostgreSQL in tests/integration/dispatch/test_trips_pg.py
(same test bodies), with real concurrent threads for the races.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from hexcity.dispatch.adapters.trip_store_sql import SqlTripStore, StoredQuote
from hexcity.dispatch.adapters.trip_store_sql import metadata as dispatch_metadata
from hexcity.dispatch.domain.trips import (
    Actor,
    IllegalTransition,
    OfferStatus,
    Trip,
    TripStatus,
    check_transition,
)
from hexcity.dispatch.errors import OfferNotFound, OfferUnavailable, QuoteExpired, QuoteNotFound, RiderBusy
from hexcity.infra.sql import make_engine, outbox
from hexcity.kernel import LatLng

T0 = 1_700_000_000.0
PICKUP = LatLng(49.4093, 8.6937)
DROPOFF = LatLng(49.3988, 8.6724)


def _trip(status: TripStatus, driver: str | None = "d1") -> Trip:
    return Trip(
        trip_id="t1",
        rider_id="r1",
        pickup=PICKUP,
        dropoff=DROPOFF,
        product="standard",
        status=status,
        version=1,
        fare_cents=1000,
        currency="EUR",
        multiplier="1.00",
        distance_m=2000.0,
        duration_s=300.0,
        requested_at_s=T0,
        updated_at_s=T0,
        driver_id=driver,
    )


# ---- the state machine ---------------------------------------------------------------------------
ALLOWED = [
    (TripStatus.MATCHED, TripStatus.DRIVER_ARRIVING),
    (TripStatus.MATCHED, TripStatus.IN_TRIP),
    (TripStatus.DRIVER_ARRIVING, TripStatus.IN_TRIP),
    (TripStatus.IN_TRIP, TripStatus.COMPLETED),
]


def test_driver_moves_are_exactly_the_table() -> None:
    movable = [s for s in TripStatus if s is not TripStatus.CANCELLED]
    for src in TripStatus:
        for dst in movable:
            trip = _trip(src)
            if (src, dst) in ALLOWED:
                check_transition(trip, dst, Actor.DRIVER, "d1")
            else:
                with pytest.raises(IllegalTransition):
                    check_transition(trip, dst, Actor.DRIVER, "d1")


def test_only_the_assigned_driver_moves_a_trip() -> None:
    with pytest.raises(IllegalTransition, match="assigned driver"):
        check_transition(_trip(TripStatus.MATCHED), TripStatus.IN_TRIP, Actor.DRIVER, "d2")
    with pytest.raises(IllegalTransition, match="assigned driver"):
        check_transition(_trip(TripStatus.MATCHED), TripStatus.IN_TRIP, Actor.RIDER, "r1")
    with pytest.raises(IllegalTransition, match="assigned driver"):
        check_transition(_trip(TripStatus.MATCHED), TripStatus.IN_TRIP, Actor.DISPATCH, None)


def test_cancel_rules() -> None:
    for status in (TripStatus.REQUESTED, TripStatus.MATCHED, TripStatus.DRIVER_ARRIVING):
        check_transition(_trip(status), TripStatus.CANCELLED, Actor.RIDER, "r1")
        check_transition(_trip(status), TripStatus.CANCELLED, Actor.DISPATCH, None)
    check_transition(_trip(TripStatus.MATCHED), TripStatus.CANCELLED, Actor.DRIVER, "d1")
    with pytest.raises(IllegalTransition, match="while in_trip"):
        check_transition(_trip(TripStatus.IN_TRIP), TripStatus.CANCELLED, Actor.RIDER, "r1")
    with pytest.raises(IllegalTransition, match="already completed"):
        check_transition(_trip(TripStatus.COMPLETED), TripStatus.CANCELLED, Actor.DISPATCH, None)
    with pytest.raises(IllegalTransition, match="trip's rider"):
        check_transition(_trip(TripStatus.REQUESTED), TripStatus.CANCELLED, Actor.RIDER, "r2")
    with pytest.raises(IllegalTransition, match="assigned driver"):
        check_transition(_trip(TripStatus.REQUESTED, driver=None), TripStatus.CANCELLED, Actor.DRIVER, "d1")


# ---- the store -------------------------------------------------------------------------------------
def sqlite_store(tmp_path: Path) -> SqlTripStore:
    store = SqlTripStore(make_engine(f"sqlite:///{tmp_path / 'dispatch.db'}"))
    store.create_schema()
    return store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlTripStore]:
    s = sqlite_store(tmp_path)
    yield s
    s.engine.dispose()


def add_quote(store: SqlTripStore, quote_id: str, rider_id: str, expires_at_s: float = T0 + 60) -> None:
    store.save_quote(
        StoredQuote(
            quote_id=quote_id,
            rider_id=rider_id,
            product="standard",
            pickup=PICKUP,
            dropoff=DROPOFF,
            amount_cents=1234,
            currency="EUR",
            multiplier="1.20",
            cell="871f8d7a4ffffff",
            distance_m=2500.0,
            duration_s=420.0,
            issued_at_s=T0,
            expires_at_s=expires_at_s,
        )
    )


def new_trip(store: SqlTripStore, n: int) -> Trip:
    add_quote(store, f"q{n}", f"r{n}")
    trip, created = store.create_trip(f"t{n}", f"q{n}", f"r{n}", T0 + 1)
    if not created:
        raise RuntimeError("expected a new trip")
    return trip


def outbox_events(engine: Engine) -> list[tuple[str, str, str]]:
    with engine.connect() as c:
        rows = c.execute(select(outbox.c.topic, outbox.c.key, outbox.c.event_id).order_by(outbox.c.id)).all()
    return [(r.topic, r.key, r.event_id) for r in rows]


def check_request_is_idempotent_per_quote(store: SqlTripStore) -> None:
    add_quote(store, "q1", "r1")
    trip, created = store.create_trip("t1", "q1", "r1", T0 + 1)
    again, created_again = store.create_trip("t-other", "q1", "r1", T0 + 2)
    assert created and not created_again
    assert again == trip
    assert trip.status is TripStatus.REQUESTED and trip.version == 1
    assert (trip.fare_cents, trip.multiplier, trip.currency) == (1234, "1.20", "EUR")
    with pytest.raises(QuoteNotFound):
        store.create_trip("t2", "q1", "r-other", T0 + 2)  # another rider's quote reads as unknown
    with pytest.raises(QuoteNotFound):
        store.create_trip("t2", "nope", "r1", T0 + 2)
    add_quote(store, "q2", "r1")
    with pytest.raises(RiderBusy):
        store.create_trip("t2", "q2", "r1", T0 + 2)  # one active trip per rider
    add_quote(store, "q3", "r3", expires_at_s=T0 + 10)
    with pytest.raises(QuoteExpired):
        store.create_trip("t3", "q3", "r3", T0 + 10)
    assert outbox_events(store.engine) == [
        ("ride.requests", "r1", "t1:requested"),
        ("ride.status", "t1", "t1:v1"),
    ]


def check_offer_locks_driver_and_trip(store: SqlTripStore) -> None:
    t1, t2 = new_trip(store, 1), new_trip(store, 2)
    made = store.create_offer("o1", t1.trip_id, "d1", 120.0, T0 + 2, 15.0)
    assert made is not None
    offer, trip = made
    assert (offer.status, offer.expires_at_s) == (OfferStatus.PENDING, T0 + 17)
    assert (trip.offer_id, trip.attempts, trip.version, trip.pickup_eta_s) == ("o1", 1, 2, 120.0)
    assert store.create_offer("o2", t2.trip_id, "d1", 100.0, T0 + 2, 15.0) is None  # driver locked
    assert store.create_offer("o3", t1.trip_id, "d2", 100.0, T0 + 2, 15.0) is None  # trip has an offer
    assert store.locked_drivers() == {"d1"}
    assert store.create_offer("o4", t2.trip_id, "d2", 90.0, T0 + 2, 15.0) is not None
    assert store.check_invariants() == []


def check_accept_decline_expire(store: SqlTripStore) -> None:
    t1, t2, t3 = new_trip(store, 1), new_trip(store, 2), new_trip(store, 3)
    store.create_offer("o1", t1.trip_id, "d1", 60.0, T0 + 2, 15.0)
    store.create_offer("o2", t2.trip_id, "d2", 60.0, T0 + 2, 15.0)
    store.create_offer("o3", t3.trip_id, "d3", 60.0, T0 + 2, 15.0)
    with pytest.raises(OfferNotFound):
        store.accept_offer("o1", "d2", T0 + 3)  # not d2's offer
    matched = store.accept_offer("o1", "d1", T0 + 3)
    assert (matched.status, matched.driver_id, matched.offer_id, matched.version) == (
        TripStatus.MATCHED,
        "d1",
        None,
        3,
    )
    with pytest.raises(OfferUnavailable, match="already accepted"):
        store.accept_offer("o1", "d1", T0 + 3)
    waiting = store.decline_offer("o2", "d2", T0 + 4)
    assert (waiting.status, waiting.offer_id, waiting.driver_id) == (TripStatus.REQUESTED, None, None)
    assert store.locked_drivers() == {"d1", "d3"}  # d1 on its trip, d3 holds o3
    assert store.expire_offers(T0 + 16.9) == []  # 15 s timer: not yet
    with pytest.raises(OfferUnavailable, match="expired"):
        store.accept_offer("o3", "d3", T0 + 17)
    expired = store.expire_offers(T0 + 17)
    assert [(o.offer_id, o.status, t.trip_id, t.offer_id) for o, t in expired] == [
        ("o3", OfferStatus.EXPIRED, "t3", None)
    ]
    assert store.get_offer("o3").status is OfferStatus.EXPIRED
    assert store.locked_drivers() == {"d1"}
    assert [t.trip_id for t in store.unoffered_trips(10)] == ["t2", "t3"]
    assert store.check_invariants() == []


def check_lifecycle_and_events(store: SqlTripStore) -> None:
    t1 = new_trip(store, 1)
    store.create_offer("o1", t1.trip_id, "d1", 60.0, T0 + 2, 15.0)
    store.accept_offer("o1", "d1", T0 + 3)
    with pytest.raises(IllegalTransition):
        store.transition("t1", TripStatus.COMPLETED, Actor.DRIVER, "d1", T0 + 4)
    for i, status in enumerate((TripStatus.DRIVER_ARRIVING, TripStatus.IN_TRIP, TripStatus.COMPLETED)):
        trip = store.transition("t1", status, Actor.DRIVER, "d1", T0 + 5 + i)
        assert (trip.status, trip.version) == (status, 4 + i)
    assert store.locked_drivers() == set()
    assert store.active_trip_of_rider("r1") is None
    add_quote(store, "q9", "r1")
    again, created = store.create_trip("t9", "q9", "r1", T0 + 20)  # the rider may ride again
    assert created and again.status is TripStatus.REQUESTED
    assert outbox_events(store.engine)[:8] == [
        ("ride.requests", "r1", "t1:requested"),
        ("ride.status", "t1", "t1:v1"),
        ("ride.dispatched", "d1", "o1:offered"),
        ("ride.status", "t1", "t1:v3"),
        ("ride.status", "t1", "t1:v4"),
        ("ride.status", "t1", "t1:v5"),
        ("ride.status", "t1", "t1:v6"),
        ("ride.requests", "r1", "t9:requested"),
    ]


def check_cancel_releases_everything(store: SqlTripStore) -> None:
    t1, t2 = new_trip(store, 1), new_trip(store, 2)
    store.create_offer("o1", t1.trip_id, "d1", 60.0, T0 + 2, 15.0)
    cancelled = store.transition("t1", TripStatus.CANCELLED, Actor.RIDER, "r1", T0 + 3, "changed my mind")
    assert (cancelled.status, cancelled.offer_id, cancelled.cancel_reason) == (
        TripStatus.CANCELLED,
        None,
        "changed my mind",
    )
    assert store.get_offer("o1").status is OfferStatus.CANCELLED
    with pytest.raises(OfferUnavailable):
        store.accept_offer("o1", "d1", T0 + 4)
    assert store.locked_drivers() == set()
    store.create_offer("o2", t2.trip_id, "d1", 60.0, T0 + 4, 15.0)
    store.accept_offer("o2", "d1", T0 + 5)
    store.transition("t2", TripStatus.CANCELLED, Actor.DRIVER, "d1", T0 + 6)
    assert store.locked_drivers() == set()
    assert store.active_trip_of_rider("r2") is None


def check_concurrent_accepts_one_winner(store: SqlTripStore) -> None:
    """Many threads accept the same offer at once: exactly one wins, the trip has one driver."""
    for n in range(5):
        trip = new_trip(store, n)
        store.create_offer(f"o{n}", trip.trip_id, f"d{n}", 60.0, T0 + 2, 15.0)
    results: list[str] = []
    barrier = threading.Barrier(8)

    def accept(offer: int) -> None:
        barrier.wait()
        try:
            store.accept_offer(f"o{offer}", f"d{offer}", T0 + 3)
            results.append(f"ok{offer}")
        except OfferUnavailable:
            results.append(f"lost{offer}")

    for offer in range(5):
        results.clear()
        barrier.reset()
        threads = [threading.Thread(target=accept, args=(offer,)) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == [f"lost{offer}"] * 7 + [f"ok{offer}"]
    assert store.check_invariants() == []


def check_concurrent_offers_never_double_lock(store: SqlTripStore) -> None:
    """Eight windows (threads) offer the same driver eight different trips: one offer exists."""
    trips = [new_trip(store, n) for n in range(8)]
    made: list[str] = []
    barrier = threading.Barrier(8)

    def offer(n: int) -> None:
        barrier.wait()
        if store.create_offer(f"o{n}", trips[n].trip_id, "d-hot", 30.0, T0 + 2, 15.0) is not None:
            made.append(f"o{n}")

    threads = [threading.Thread(target=offer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == 1
    assert store.locked_drivers() == {"d-hot"}
    assert [t.trip_id for t in store.unoffered_trips(10)] == sorted(
        t.trip_id for t in trips if t.trip_id != store.get_offer(made[0]).trip_id
    )
    assert store.check_invariants() == []


STORE_TESTS = [
    check_request_is_idempotent_per_quote,
    check_offer_locks_driver_and_trip,
    check_accept_decline_expire,
    check_lifecycle_and_events,
    check_cancel_releases_everything,
    check_concurrent_accepts_one_winner,
    check_concurrent_offers_never_double_lock,
]


@pytest.mark.parametrize("check", STORE_TESTS, ids=lambda f: f.__name__.removeprefix("check_"))
def test_store(store: SqlTripStore, check: Callable[[SqlTripStore], None]) -> None:
    check(store)


def test_schema_is_module_owned() -> None:
    assert sorted(dispatch_metadata.tables) == [
        "dispatch_active_riders",
        "dispatch_driver_locks",
        "dispatch_drivers",
        "dispatch_offers",
        "dispatch_quotes",
        "dispatch_trips",
    ]
