"""Trips, offers, quotes and driver locks in SQL (SQLite by default, PostgreSQL in CI).

Every method is one transaction, and every rule that must hold across processes is a database
constraint or a conditional write, never a read-then-write in Python:

* a driver holds at most one live offer or trip: ``dispatch_driver_locks`` has the driver id as
  primary key, inserted in the transaction that creates the offer;
* a trip has at most one live offer: the offer is attached with
  ``UPDATE ... WHERE status = 'requested' AND offer_id IS NULL``;
* a rider has at most one active trip: ``dispatch_active_riders`` (primary key rider id);
* an accept wins only once: ``UPDATE offers SET status = 'accepted' WHERE status = 'pending' AND
  expires_at_s > now``, and the trip moves only if it still points at that offer;
* a trip changes only from the version that was read (``WHERE version = :v``), retried a bounded
  number of times on a lost race.

Events go into the outbox in the same transaction (``ride.requests``, ``ride.dispatched``,
``ride.status``), so a change is never published without being committed or committed without
being published. Tables live on this module's own ``MetaData`` and are created by
:meth:`SqlTripStore.create_schema` (the shared outbox table too).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hexcity.dispatch.domain.trips import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    Actor,
    Offer,
    OfferStatus,
    Trip,
    TripStatus,
    check_transition,
)
from hexcity.dispatch.errors import (
    OfferNotFound,
    OfferUnavailable,
    QuoteExpired,
    QuoteNotFound,
    RiderBusy,
    TripConflict,
    TripNotFound,
)
from hexcity.infra.outbox import add_to_outbox
from hexcity.infra.sql import metadata as infra_metadata
from hexcity.infra.sql import writer
from hexcity.kernel import LatLng
from hexcity.kernel.events import Event

__all__ = ["SqlTripStore", "StoredQuote", "metadata"]

TOPIC_REQUESTS = "ride.requests"
TOPIC_DISPATCHED = "ride.dispatched"
TOPIC_STATUS = "ride.status"
MAX_VERSION_RETRIES = 3
MAX_SWEEP = 500  # offers expired per sweep call (the rest wait for the next call)

metadata = MetaData()

quotes = Table(
    "dispatch_quotes",
    metadata,
    Column("quote_id", String(64), primary_key=True),
    Column("rider_id", String(128), nullable=False),
    Column("product", String(32), nullable=False),
    Column("pickup_lat", Float, nullable=False),
    Column("pickup_lng", Float, nullable=False),
    Column("dropoff_lat", Float, nullable=False),
    Column("dropoff_lng", Float, nullable=False),
    Column("amount_cents", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("multiplier", String(8), nullable=False),
    Column("cell", String(32), nullable=False),
    Column("distance_m", Float, nullable=False),
    Column("duration_s", Float, nullable=False),
    Column("issued_at_s", Float, nullable=False),
    Column("expires_at_s", Float, nullable=False),
    Index("ix_dispatch_quotes_expiry", "expires_at_s"),
)

trips = Table(
    "dispatch_trips",
    metadata,
    Column("trip_id", String(64), primary_key=True),
    Column("quote_id", String(64), nullable=False, unique=True),  # one trip per quote: idempotent
    Column("rider_id", String(128), nullable=False),
    Column("driver_id", String(128), nullable=True),
    Column("offer_id", String(64), nullable=True),
    Column("status", String(32), nullable=False),
    Column("version", Integer, nullable=False),
    Column("product", String(32), nullable=False),
    Column("pickup_lat", Float, nullable=False),
    Column("pickup_lng", Float, nullable=False),
    Column("dropoff_lat", Float, nullable=False),
    Column("dropoff_lng", Float, nullable=False),
    Column("fare_cents", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("multiplier", String(8), nullable=False),
    Column("distance_m", Float, nullable=False),
    Column("duration_s", Float, nullable=False),
    Column("pickup_eta_s", Float, nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("requested_at_s", Float, nullable=False),
    Column("updated_at_s", Float, nullable=False),
    Column("cancel_reason", String(255), nullable=True),
    Index("ix_dispatch_trips_status", "status"),
    Index("ix_dispatch_trips_rider", "rider_id"),
    Index("ix_dispatch_trips_driver", "driver_id"),
)

offers = Table(
    "dispatch_offers",
    metadata,
    Column("offer_id", String(64), primary_key=True),
    Column("trip_id", String(64), nullable=False),
    Column("driver_id", String(128), nullable=False),
    Column("status", String(16), nullable=False),
    Column("pickup_eta_s", Float, nullable=False),
    Column("created_at_s", Float, nullable=False),
    Column("expires_at_s", Float, nullable=False),
    Column("closed_at_s", Float, nullable=True),
    Index("ix_dispatch_offers_live", "status", "expires_at_s"),
    Index("ix_dispatch_offers_trip", "trip_id"),
)

driver_locks = Table(
    "dispatch_driver_locks",
    metadata,
    Column("driver_id", String(128), primary_key=True),
    Column("trip_id", String(64), nullable=False),
    Column("offer_id", String(64), nullable=True),
    Column("kind", String(8), nullable=False),  # "offer" (pending) or "trip" (assigned)
    Column("locked_at_s", Float, nullable=False),
)

drivers = Table(
    "dispatch_drivers",
    metadata,
    Column("driver_id", String(128), primary_key=True),
    Column("products", String(255), nullable=False),  # comma-separated product names
    Column("registered_at_s", Float, nullable=False),
)

active_riders = Table(
    "dispatch_active_riders",
    metadata,
    Column("rider_id", String(128), primary_key=True),
    Column("trip_id", String(64), nullable=False),
)


@dataclass(frozen=True, slots=True)
class StoredQuote:
    quote_id: str
    rider_id: str
    product: str
    pickup: LatLng
    dropoff: LatLng
    amount_cents: int
    currency: str
    multiplier: str
    cell: str
    distance_m: float
    duration_s: float
    issued_at_s: float
    expires_at_s: float

    def public(self) -> dict[str, object]:
        return {
            "quote_id": self.quote_id,
            "rider_id": self.rider_id,
            "product": self.product,
            "pickup": {"lat": self.pickup.lat, "lng": self.pickup.lng},
            "dropoff": {"lat": self.dropoff.lat, "lng": self.dropoff.lng},
            "fare": {
                "amount_cents": self.amount_cents,
                "currency": self.currency,
                "multiplier": self.multiplier,
            },
            "distance_m": round(self.distance_m, 1),
            "duration_s": round(self.duration_s, 1),
            "surge_cell": self.cell,
            "issued_at_s": self.issued_at_s,
            "expires_at_s": self.expires_at_s,
        }


def _rows(result: Any) -> int:
    """Rows matched by an UPDATE/DELETE (``CursorResult.rowcount``)."""
    return int(result.rowcount)


def _trip(row: Any) -> Trip:
    return Trip(
        trip_id=row.trip_id,
        rider_id=row.rider_id,
        pickup=LatLng(row.pickup_lat, row.pickup_lng),
        dropoff=LatLng(row.dropoff_lat, row.dropoff_lng),
        product=row.product,
        status=TripStatus(row.status),
        version=int(row.version),
        fare_cents=int(row.fare_cents),
        currency=row.currency,
        multiplier=row.multiplier,
        distance_m=float(row.distance_m),
        duration_s=float(row.duration_s),
        requested_at_s=float(row.requested_at_s),
        updated_at_s=float(row.updated_at_s),
        driver_id=row.driver_id,
        offer_id=row.offer_id,
        pickup_eta_s=None if row.pickup_eta_s is None else float(row.pickup_eta_s),
        attempts=int(row.attempts),
        cancel_reason=row.cancel_reason,
    )


def _offer(row: Any) -> Offer:
    return Offer(
        offer_id=row.offer_id,
        trip_id=row.trip_id,
        driver_id=row.driver_id,
        status=OfferStatus(row.status),
        pickup_eta_s=float(row.pickup_eta_s),
        created_at_s=float(row.created_at_s),
        expires_at_s=float(row.expires_at_s),
    )


def _quote(row: Any) -> StoredQuote:
    return StoredQuote(
        quote_id=row.quote_id,
        rider_id=row.rider_id,
        product=row.product,
        pickup=LatLng(row.pickup_lat, row.pickup_lng),
        dropoff=LatLng(row.dropoff_lat, row.dropoff_lng),
        amount_cents=int(row.amount_cents),
        currency=row.currency,
        multiplier=row.multiplier,
        cell=row.cell,
        distance_m=float(row.distance_m),
        duration_s=float(row.duration_s),
        issued_at_s=float(row.issued_at_s),
        expires_at_s=float(row.expires_at_s),
    )


def _status_event(trip: Trip, now_s: float) -> Event:
    """``ride.status`` keyed by trip; the event id is (trip, version), so a replay dedupes."""
    return Event(
        topic=TOPIC_STATUS,
        key=trip.trip_id,
        payload=trip.public(),
        event_id=f"{trip.trip_id}:v{trip.version}",
        occurred_at_s=now_s,
    )


class SqlTripStore:
    """The trip repository; synchronous (the service calls it from a worker thread)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._w = writer(engine)  # read-then-write transactions (BEGIN IMMEDIATE on SQLite)

    def create_schema(self) -> None:
        infra_metadata.create_all(writer(self.engine), checkfirst=True)
        metadata.create_all(writer(self.engine), checkfirst=True)

    # ---- quotes ---------------------------------------------------------------------------------
    def save_quote(self, q: StoredQuote) -> None:
        with Session(self._w) as s, s.begin():
            s.execute(
                insert(quotes).values(
                    quote_id=q.quote_id,
                    rider_id=q.rider_id,
                    product=q.product,
                    pickup_lat=q.pickup.lat,
                    pickup_lng=q.pickup.lng,
                    dropoff_lat=q.dropoff.lat,
                    dropoff_lng=q.dropoff.lng,
                    amount_cents=q.amount_cents,
                    currency=q.currency,
                    multiplier=q.multiplier,
                    cell=q.cell,
                    distance_m=q.distance_m,
                    duration_s=q.duration_s,
                    issued_at_s=q.issued_at_s,
                    expires_at_s=q.expires_at_s,
                )
            )

    def prune_quotes(self, before_s: float) -> int:
        """Delete quotes that expired before ``before_s`` (a trip keeps its own copy of the fare)."""
        with Session(self._w) as s, s.begin():
            return _rows(s.execute(delete(quotes).where(quotes.c.expires_at_s < before_s)))

    # ---- drivers --------------------------------------------------------------------------------
    def register_driver(self, driver_id: str, products: list[str], now_s: float) -> bool:
        """Register (or re-register with new products) a driver; ``True`` if it was new."""
        with Session(self._w) as s, s.begin():
            known = s.execute(select(drivers.c.driver_id).where(drivers.c.driver_id == driver_id)).first()
            joined = ",".join(sorted(set(products)))
            if known is None:
                s.execute(insert(drivers).values(driver_id=driver_id, products=joined, registered_at_s=now_s))
                return True
            s.execute(update(drivers).where(drivers.c.driver_id == driver_id).values(products=joined))
            return False

    def registered_drivers(self, limit: int) -> set[str]:
        with Session(self.engine) as s:
            return {r.driver_id for r in s.execute(select(drivers.c.driver_id).limit(limit))}

    # ---- trips ----------------------------------------------------------------------------------
    def create_trip(self, trip_id: str, quote_id: str, rider_id: str, now_s: float) -> tuple[Trip, bool]:
        """The trip for ``quote_id`` — created now (``True``) or the one created before (``False``).

        Raises QuoteNotFound (unknown or another rider's quote), QuoteExpired, RiderBusy.
        """
        with Session(self._w) as s, s.begin():
            existing = s.execute(select(trips).where(trips.c.quote_id == quote_id)).first()
            if existing is not None:
                if existing.rider_id != rider_id:
                    raise QuoteNotFound(f"quote {quote_id} not found")
                return _trip(existing), False
            row = s.execute(select(quotes).where(quotes.c.quote_id == quote_id)).first()
            if row is None or row.rider_id != rider_id:
                raise QuoteNotFound(f"quote {quote_id} not found")
            q = _quote(row)
            if now_s >= q.expires_at_s:
                raise QuoteExpired(f"quote {quote_id} expired at {q.expires_at_s:.0f}; ask for a new quote")
            busy = s.execute(
                select(active_riders.c.trip_id).where(active_riders.c.rider_id == rider_id)
            ).first()
            if busy is not None:
                raise RiderBusy(f"rider {rider_id} already has an active trip {busy.trip_id}")
            trip = Trip(
                trip_id=trip_id,
                rider_id=rider_id,
                pickup=q.pickup,
                dropoff=q.dropoff,
                product=q.product,
                status=TripStatus.REQUESTED,
                version=1,
                fare_cents=q.amount_cents,
                currency=q.currency,
                multiplier=q.multiplier,
                distance_m=q.distance_m,
                duration_s=q.duration_s,
                requested_at_s=now_s,
                updated_at_s=now_s,
            )
            try:
                with s.begin_nested():
                    s.execute(insert(active_riders).values(rider_id=rider_id, trip_id=trip_id))
                    s.execute(insert(trips).values(quote_id=quote_id, **_trip_values(trip)))
            except IntegrityError as exc:  # a concurrent request for the same rider or quote won
                raise RiderBusy(f"rider {rider_id} already has an active trip") from exc
            add_to_outbox(
                s,
                Event(
                    topic=TOPIC_REQUESTS,
                    key=rider_id,
                    payload={**trip.public(), "surge_cell": q.cell},
                    event_id=f"{trip_id}:requested",
                    occurred_at_s=now_s,
                ),
            )
            add_to_outbox(s, _status_event(trip, now_s))
            return trip, True

    def get_trip(self, trip_id: str) -> Trip:
        with Session(self.engine) as s:
            row = s.execute(select(trips).where(trips.c.trip_id == trip_id)).first()
        if row is None:
            raise TripNotFound(f"trip {trip_id} not found")
        return _trip(row)

    def active_trip_of_rider(self, rider_id: str) -> Trip | None:
        with Session(self.engine) as s:
            row = s.execute(
                select(trips)
                .join(active_riders, active_riders.c.trip_id == trips.c.trip_id)
                .where(active_riders.c.rider_id == rider_id)
            ).first()
        return None if row is None else _trip(row)

    def unoffered_trips(self, limit: int) -> list[Trip]:
        """Requested trips without a live offer (the batcher's queue after a restart)."""
        with Session(self.engine) as s:
            rows = s.execute(
                select(trips)
                .where(trips.c.status == TripStatus.REQUESTED.value, trips.c.offer_id.is_(None))
                .order_by(trips.c.requested_at_s, trips.c.trip_id)
                .limit(limit)
            ).all()
        return [_trip(r) for r in rows]

    def locked_drivers(self) -> set[str]:
        with Session(self.engine) as s:
            return {r.driver_id for r in s.execute(select(driver_locks.c.driver_id))}

    def trips_by_status(self) -> dict[str, int]:
        with Session(self.engine) as s:
            rows = s.execute(select(trips.c.status, func.count()).group_by(trips.c.status)).all()
        return {str(r[0]): int(r[1]) for r in rows}

    # ---- offers ---------------------------------------------------------------------------------
    def get_offer(self, offer_id: str) -> Offer:
        with Session(self.engine) as s:
            row = s.execute(select(offers).where(offers.c.offer_id == offer_id)).first()
        if row is None:
            raise OfferNotFound(f"offer {offer_id} not found")
        return _offer(row)

    def pending_offers(self, driver_id: str, now_s: float, limit: int) -> list[Offer]:
        """The driver's pending offers not expired at ``now_s``, oldest first (at most ``limit``)."""
        with Session(self.engine) as s:
            rows = s.execute(
                select(offers)
                .where(
                    offers.c.driver_id == driver_id,
                    offers.c.status == OfferStatus.PENDING.value,
                    offers.c.expires_at_s > now_s,
                )
                .order_by(offers.c.created_at_s, offers.c.offer_id)
                .limit(limit)
            ).all()
        return [_offer(r) for r in rows]

    def create_offer(
        self, offer_id: str, trip_id: str, driver_id: str, pickup_eta_s: float, now_s: float, ttl_s: float
    ) -> tuple[Offer, Trip] | None:
        """Lock the driver and attach a pending offer to the trip; ``None`` if either is taken."""
        with Session(self._w) as s, s.begin():
            try:
                with s.begin_nested():
                    s.execute(
                        insert(driver_locks).values(
                            driver_id=driver_id,
                            trip_id=trip_id,
                            offer_id=offer_id,
                            kind="offer",
                            locked_at_s=now_s,
                        )
                    )
            except IntegrityError:
                return None  # the driver holds another offer or trip
            attached = _rows(
                s.execute(
                    update(trips)
                    .where(
                        trips.c.trip_id == trip_id,
                        trips.c.status == TripStatus.REQUESTED.value,
                        trips.c.offer_id.is_(None),
                    )
                    .values(
                        offer_id=offer_id,
                        attempts=trips.c.attempts + 1,
                        version=trips.c.version + 1,
                        updated_at_s=now_s,
                        pickup_eta_s=pickup_eta_s,
                    )
                )
            )
            if attached != 1:
                s.rollback()
                return None
            offer = Offer(
                offer_id, trip_id, driver_id, OfferStatus.PENDING, pickup_eta_s, now_s, now_s + ttl_s
            )
            s.execute(insert(offers).values(**_offer_values(offer)))
            trip = _trip(s.execute(select(trips).where(trips.c.trip_id == trip_id)).one())
            add_to_outbox(
                s,
                Event(
                    topic=TOPIC_DISPATCHED,
                    key=driver_id,
                    payload={**offer.public(), "trip_version": trip.version},
                    event_id=f"{offer_id}:offered",
                    occurred_at_s=now_s,
                ),
            )
            return offer, trip

    def _closable_offer(self, s: Session, offer_id: str, driver_id: str, now_s: float) -> Offer:
        row = s.execute(select(offers).where(offers.c.offer_id == offer_id)).first()
        if row is None or row.driver_id != driver_id:
            raise OfferNotFound(f"offer {offer_id} not found")
        offer = _offer(row)
        if offer.status is not OfferStatus.PENDING:
            raise OfferUnavailable(f"offer {offer_id} is already {offer.status}")
        if now_s >= offer.expires_at_s:
            raise OfferUnavailable(f"offer {offer_id} expired at {offer.expires_at_s:.1f}")
        return offer

    def accept_offer(self, offer_id: str, driver_id: str, now_s: float) -> Trip:
        """Pending, unexpired offer of this driver → accepted; its trip → matched. Exactly once."""
        with Session(self._w) as s, s.begin():
            offer = self._closable_offer(s, offer_id, driver_id, now_s)
            won = _rows(
                s.execute(
                    update(offers)
                    .where(
                        offers.c.offer_id == offer_id,
                        offers.c.status == OfferStatus.PENDING.value,
                        offers.c.expires_at_s > now_s,
                    )
                    .values(status=OfferStatus.ACCEPTED.value, closed_at_s=now_s)
                )
            )
            if won != 1:
                raise OfferUnavailable(f"offer {offer_id} is no longer pending")
            moved = _rows(
                s.execute(
                    update(trips)
                    .where(
                        trips.c.offer_id == offer_id,
                        trips.c.status == TripStatus.REQUESTED.value,
                    )
                    .values(
                        status=TripStatus.MATCHED.value,
                        driver_id=driver_id,
                        offer_id=None,
                        version=trips.c.version + 1,
                        updated_at_s=now_s,
                    )
                )
            )
            if moved != 1:  # the trip was cancelled meanwhile: nothing is accepted
                s.rollback()
                raise OfferUnavailable(f"offer {offer_id}: the trip is no longer waiting for a driver")
            s.execute(
                update(driver_locks)
                .where(driver_locks.c.driver_id == driver_id, driver_locks.c.offer_id == offer_id)
                .values(kind="trip", offer_id=None)
            )
            trip = _trip(s.execute(select(trips).where(trips.c.trip_id == offer.trip_id)).one())
            add_to_outbox(s, _status_event(trip, now_s))
            return trip

    def decline_offer(self, offer_id: str, driver_id: str, now_s: float) -> Trip:
        """Pending offer of this driver → declined; the driver is released, the trip waits again."""
        with Session(self._w) as s, s.begin():
            offer = self._closable_offer(s, offer_id, driver_id, now_s)
            trip = self._close_offer(s, offer, OfferStatus.DECLINED, now_s)
            if trip is None:
                raise OfferUnavailable(f"offer {offer_id} is no longer pending")
            return trip

    def _close_offer(self, s: Session, offer: Offer, status: OfferStatus, now_s: float) -> Trip | None:
        closed = _rows(
            s.execute(
                update(offers)
                .where(offers.c.offer_id == offer.offer_id, offers.c.status == OfferStatus.PENDING.value)
                .values(status=status.value, closed_at_s=now_s)
            )
        )
        if closed != 1:
            return None
        s.execute(
            delete(driver_locks).where(
                driver_locks.c.driver_id == offer.driver_id, driver_locks.c.offer_id == offer.offer_id
            )
        )
        s.execute(
            update(trips)
            .where(trips.c.trip_id == offer.trip_id, trips.c.offer_id == offer.offer_id)
            .values(offer_id=None, version=trips.c.version + 1, updated_at_s=now_s)
        )
        return _trip(s.execute(select(trips).where(trips.c.trip_id == offer.trip_id)).one())

    def expire_offers(self, now_s: float) -> list[tuple[Offer, Trip]]:
        """Every pending offer whose timer ran out → expired; drivers released. Bounded per call."""
        with Session(self._w) as s, s.begin():
            rows = s.execute(
                select(offers)
                .where(offers.c.status == OfferStatus.PENDING.value, offers.c.expires_at_s <= now_s)
                .order_by(offers.c.expires_at_s, offers.c.driver_id)  # one pending offer per driver
                .limit(MAX_SWEEP)
            ).all()
            out: list[tuple[Offer, Trip]] = []
            for row in rows:
                offer = _offer(row)
                trip = self._close_offer(s, offer, OfferStatus.EXPIRED, now_s)
                if trip is not None:
                    out.append((replace(offer, status=OfferStatus.EXPIRED), trip))
            return out

    # ---- trip transitions -----------------------------------------------------------------------
    def transition(
        self,
        trip_id: str,
        to: TripStatus,
        actor: Actor,
        actor_id: str | None,
        now_s: float,
        reason: str | None = None,
    ) -> Trip:
        """Move a trip (rules in ``domain/trips.py``) from the version read; retried on a lost race."""
        for _ in range(MAX_VERSION_RETRIES):
            with Session(self._w) as s, s.begin():
                row = s.execute(select(trips).where(trips.c.trip_id == trip_id)).first()
                if row is None:
                    raise TripNotFound(f"trip {trip_id} not found")
                trip = _trip(row)
                check_transition(trip, to, actor, actor_id)
                values: dict[str, Any] = {
                    "status": to.value,
                    "version": trip.version + 1,
                    "updated_at_s": now_s,
                }
                if to is TripStatus.CANCELLED:
                    values["cancel_reason"] = (reason or f"cancelled by {actor}")[:255]
                    values["offer_id"] = None
                changed = _rows(
                    s.execute(
                        update(trips)
                        .where(trips.c.trip_id == trip_id, trips.c.version == trip.version)
                        .values(**values)
                    )
                )
                if changed != 1:
                    continue  # another writer moved it first: read again and re-check the rules
                if trip.offer_id is not None and to is TripStatus.CANCELLED:
                    s.execute(
                        update(offers)
                        .where(
                            offers.c.offer_id == trip.offer_id, offers.c.status == OfferStatus.PENDING.value
                        )
                        .values(status=OfferStatus.CANCELLED.value, closed_at_s=now_s)
                    )
                    s.execute(delete(driver_locks).where(driver_locks.c.offer_id == trip.offer_id))
                if to in TERMINAL_STATUSES:
                    s.execute(delete(active_riders).where(active_riders.c.trip_id == trip_id))
                    if trip.driver_id is not None:
                        s.execute(
                            delete(driver_locks).where(
                                driver_locks.c.driver_id == trip.driver_id, driver_locks.c.trip_id == trip_id
                            )
                        )
                new = _trip(s.execute(select(trips).where(trips.c.trip_id == trip_id)).one())
                add_to_outbox(s, _status_event(new, now_s))
                return new
        raise TripConflict(f"trip {trip_id} kept changing; try again")

    def check_invariants(self) -> list[str]:
        """Violations of the dispatch invariants (empty when all hold); used by tests and ops."""
        problems: list[str] = []
        with Session(self.engine) as s:
            live = s.execute(select(offers).where(offers.c.status == OfferStatus.PENDING.value)).all()
            per_driver: dict[str, int] = {}
            per_trip: dict[str, int] = {}
            for o in live:
                per_driver[o.driver_id] = per_driver.get(o.driver_id, 0) + 1
                per_trip[o.trip_id] = per_trip.get(o.trip_id, 0) + 1
            problems += [f"driver {d} holds {n} pending offers" for d, n in per_driver.items() if n > 1]
            problems += [f"trip {t} has {n} pending offers" for t, n in per_trip.items() if n > 1]
            accepted = s.execute(
                select(offers.c.trip_id).where(offers.c.status == OfferStatus.ACCEPTED.value)
            ).all()
            seen: set[str] = set()
            for (t,) in accepted:
                if t in seen:
                    problems.append(f"trip {t} accepted by two drivers")
                seen.add(t)
            active = s.execute(
                select(trips.c.driver_id, trips.c.trip_id).where(
                    trips.c.status.in_([x.value for x in ACTIVE_STATUSES]), trips.c.driver_id.is_not(None)
                )
            ).all()
            busy: dict[str, str] = {}
            for d, t in active:
                if d in busy:
                    problems.append(f"driver {d} assigned to trips {busy[d]} and {t}")
                busy[d] = t
        return problems


def _trip_values(t: Trip) -> dict[str, Any]:
    return {
        "trip_id": t.trip_id,
        "rider_id": t.rider_id,
        "driver_id": t.driver_id,
        "offer_id": t.offer_id,
        "status": t.status.value,
        "version": t.version,
        "product": t.product,
        "pickup_lat": t.pickup.lat,
        "pickup_lng": t.pickup.lng,
        "dropoff_lat": t.dropoff.lat,
        "dropoff_lng": t.dropoff.lng,
        "fare_cents": t.fare_cents,
        "currency": t.currency,
        "multiplier": t.multiplier,
        "distance_m": t.distance_m,
        "duration_s": t.duration_s,
        "pickup_eta_s": t.pickup_eta_s,
        "attempts": t.attempts,
        "requested_at_s": t.requested_at_s,
        "updated_at_s": t.updated_at_s,
        "cancel_reason": t.cancel_reason,
    }


def _offer_values(o: Offer) -> dict[str, Any]:
    return {
        "offer_id": o.offer_id,
        "trip_id": o.trip_id,
        "driver_id": o.driver_id,
        "status": o.status.value,
        "pickup_eta_s": o.pickup_eta_s,
        "created_at_s": o.created_at_s,
        "expires_at_s": o.expires_at_s,
    }
