"""Trips and offers: the state machine and its rules, with no I/O.

A trip moves ``requested → matched → driver_arriving → in_trip → completed``, and may end
``cancelled`` from any state before ``in_trip``. Every change bumps a monotonic ``version``
(dispatch.md §2.7: consumers drop stale versions). Who may make which move:

============================  ==========================  ==================
from → to                     who                         when
============================  ==========================  ==================
requested → matched           the offered driver          accepts a live offer
matched → driver_arriving     the assigned driver         starts driving to the pickup
driver_arriving → in_trip     the assigned driver         picked the rider up
matched → in_trip             the assigned driver         (arrived at once)
in_trip → completed           the assigned driver         dropped the rider off
requested/matched/arriving    rider, assigned driver,     cancel
→ cancelled                   or dispatch (no driver)
============================  ==========================  ==================

An offer is ``pending`` for ``offer_ttl_s`` (15 s) and ends ``accepted``, ``declined`` or
``expired``. A driver holds at most one live offer or trip (the driver lock), and a trip has at
most one live offer: both are enforced by the store with conditional writes, so concurrent
accepts cannot give a rider two drivers (see ``adapters/trip_store_sql.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from hexcity.dispatch.errors import DispatchError
from hexcity.kernel import InvalidInput, LatLng

__all__ = [
    "ACTIVE_STATUSES",
    "TERMINAL_STATUSES",
    "Actor",
    "IllegalTransition",
    "Offer",
    "OfferStatus",
    "Trip",
    "TripStatus",
    "check_transition",
    "validate_point",
]


class TripStatus(StrEnum):
    REQUESTED = "requested"
    MATCHED = "matched"
    DRIVER_ARRIVING = "driver_arriving"
    IN_TRIP = "in_trip"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class OfferStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    EXPIRED = "expired"
    CANCELLED = "cancelled"  # the trip was cancelled while the offer was pending


class Actor(StrEnum):
    RIDER = "rider"
    DRIVER = "driver"
    DISPATCH = "dispatch"  # the platform itself (timeouts, no driver found, admin)


TERMINAL_STATUSES = frozenset({TripStatus.COMPLETED, TripStatus.CANCELLED})
ACTIVE_STATUSES = frozenset(TripStatus) - TERMINAL_STATUSES

_DRIVER_MOVES: dict[TripStatus, frozenset[TripStatus]] = {
    TripStatus.MATCHED: frozenset({TripStatus.DRIVER_ARRIVING, TripStatus.IN_TRIP, TripStatus.CANCELLED}),
    TripStatus.DRIVER_ARRIVING: frozenset({TripStatus.IN_TRIP, TripStatus.CANCELLED}),
    TripStatus.IN_TRIP: frozenset({TripStatus.COMPLETED}),
}
_CANCELLABLE = frozenset({TripStatus.REQUESTED, TripStatus.MATCHED, TripStatus.DRIVER_ARRIVING})


class IllegalTransition(DispatchError):
    """The trip is not in a state that allows this move (or the caller may not make it)."""

    code = "IllegalTransition"
    status = 409


@dataclass(frozen=True, slots=True)
class Trip:
    trip_id: str
    rider_id: str
    pickup: LatLng
    dropoff: LatLng
    product: str
    status: TripStatus
    version: int
    fare_cents: int
    currency: str
    multiplier: str  # the quote's locked multiplier, two decimals ("1.35")
    distance_m: float
    duration_s: float
    requested_at_s: float
    updated_at_s: float
    driver_id: str | None = None
    offer_id: str | None = None  # the live (pending) offer, if any
    pickup_eta_s: float | None = None
    attempts: int = 0  # offers made so far (the age bonus grows with it)
    cancel_reason: str | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def public(self) -> dict[str, object]:
        """The JSON view riders, drivers and the dashboard see."""
        return {
            "trip_id": self.trip_id,
            "rider_id": self.rider_id,
            "driver_id": self.driver_id,
            "status": str(self.status),
            "version": self.version,
            "product": self.product,
            "pickup": {"lat": self.pickup.lat, "lng": self.pickup.lng},
            "dropoff": {"lat": self.dropoff.lat, "lng": self.dropoff.lng},
            "fare": {
                "amount_cents": self.fare_cents,
                "currency": self.currency,
                "multiplier": self.multiplier,
            },
            "distance_m": round(self.distance_m, 1),
            "duration_s": round(self.duration_s, 1),
            "pickup_eta_s": None if self.pickup_eta_s is None else round(self.pickup_eta_s, 1),
            "offer_id": self.offer_id,
            "attempts": self.attempts,
            "requested_at_s": self.requested_at_s,
            "updated_at_s": self.updated_at_s,
            "cancel_reason": self.cancel_reason,
        }


@dataclass(frozen=True, slots=True)
class Offer:
    offer_id: str
    trip_id: str
    driver_id: str
    status: OfferStatus
    pickup_eta_s: float
    created_at_s: float
    expires_at_s: float

    def public(self) -> dict[str, object]:
        return {
            "offer_id": self.offer_id,
            "trip_id": self.trip_id,
            "driver_id": self.driver_id,
            "status": str(self.status),
            "pickup_eta_s": round(self.pickup_eta_s, 1),
            "created_at_s": self.created_at_s,
            "expires_at_s": self.expires_at_s,
        }


def check_transition(trip: Trip, to: TripStatus, actor: Actor, actor_id: str | None) -> None:
    """Raise :class:`IllegalTransition` unless ``actor`` may move ``trip`` to ``to`` now.

    ``requested → matched`` is not a move anyone asks for: it happens by accepting an offer.
    """
    if trip.is_terminal:
        raise IllegalTransition(f"trip {trip.trip_id} is already {trip.status}")
    if to is TripStatus.CANCELLED:
        if trip.status not in _CANCELLABLE:
            raise IllegalTransition(f"trip {trip.trip_id} cannot be cancelled while {trip.status}")
        if actor is Actor.RIDER and actor_id != trip.rider_id:
            raise IllegalTransition("only the trip's rider may cancel it")
        if actor is Actor.DRIVER and (trip.driver_id is None or actor_id != trip.driver_id):
            raise IllegalTransition("only the trip's assigned driver may cancel it")
        return
    if actor is not Actor.DRIVER or trip.driver_id is None or actor_id != trip.driver_id:
        raise IllegalTransition(f"only the trip's assigned driver may move it to {to}")
    if to not in _DRIVER_MOVES.get(trip.status, frozenset()):
        raise IllegalTransition(f"trip {trip.trip_id} cannot go from {trip.status} to {to}")


def validate_point(name: str, lat: float, lng: float) -> LatLng:
    """A finite WGS84 point, or :class:`InvalidInput` naming the field."""
    if not (math.isfinite(lat) and math.isfinite(lng) and -90.0 <= lat <= 90.0 and -180.0 <= lng <= 180.0):
        raise InvalidInput(f"{name}: coordinates out of range ({lat}, {lng})")
    return LatLng(lat, lng)
