"""Platform records from the dispatch module's trips (through ``hexcity.dispatch`` only).

A trip becomes a ``trip`` record owned by its rider, with the status, product, pickup/dropoff,
fare, the quote's surge multiplier, the driver id and the request/update times, and a
``DRIVEN_BY`` link to a public ``driver`` node that holds only the driver's id: no location
history, no other trips. Another rider's trip with the same driver is a different record whose
node and edges are owned by that rider, so the driver node never leads to it.

The same function reads a stored trip (``Trip.public()``) and a ``ride.status`` event payload
(the event carries ``Trip.public()``), so the reader and the change feed build identical records.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from hexcity.assistant.domain.records import PlatformRecord
from hexcity.dispatch import TripQueries

MAX_TRIPS_PER_RIDER = 50


def money(amount_minor: int, currency: str) -> str:
    """``1840, "EUR"`` → ``"18.40 EUR"`` (integer arithmetic, two decimals)."""
    sign = "-" if amount_minor < 0 else ""
    units, cents = divmod(abs(amount_minor), 100)
    return f"{sign}{units}.{cents:02d} {currency}"


def utc_time(epoch_s: float) -> str:
    """``1764150000.0`` → ``"2025-11-26T09:40:00Z"`` (seconds, UTC)."""
    return dt.datetime.fromtimestamp(epoch_s, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _point(value: Mapping[str, Any]) -> str:
    return f"{float(value['lat']):.5f},{float(value['lng']):.5f}"


def record_from_trip(trip: Mapping[str, Any]) -> PlatformRecord:
    """The rider's record of one trip (``Trip.public()`` JSON); raises KeyError/TypeError/ValueError
    (or :class:`~hexcity.assistant.domain.records.InvalidRecord`) on a malformed one."""
    fare = trip["fare"]
    attrs = {
        "status": str(trip["status"]),
        "product": str(trip["product"]),
        "pickup": _point(trip["pickup"]),
        "dropoff": _point(trip["dropoff"]),
        "fare": money(int(fare["amount_cents"]), str(fare["currency"])),
        "surge": f"{fare['multiplier']}x",
        "requested_at": utc_time(float(trip["requested_at_s"])),
        "updated_at": utc_time(float(trip["updated_at_s"])),
        "version": str(int(trip["version"])),
    }
    links: tuple[tuple[str, str, str, str], ...] = ()
    driver = trip.get("driver_id")
    if driver:
        attrs["driver"] = str(driver)
        links = (("DRIVEN_BY", "driver", str(driver), str(driver)),)
    if trip.get("cancel_reason"):
        attrs["cancel_reason"] = str(trip["cancel_reason"])
    return PlatformRecord("trip", str(trip["trip_id"]), str(trip["rider_id"]), attrs, links)


class TripRecordReader:
    """:class:`~hexcity.assistant.ports.RecordReader` over :class:`hexcity.dispatch.TripQueries`:
    the rider's newest trips first."""

    def __init__(self, queries: TripQueries) -> None:
        self._queries = queries

    def records_for(self, customer_id: str, *, limit: int) -> Sequence[PlatformRecord]:
        bounded = max(0, min(limit, MAX_TRIPS_PER_RIDER))
        if bounded == 0:
            return []
        return [
            record_from_trip(trip.public()) for trip in self._queries.trips_of_rider(customer_id, bounded)
        ]
