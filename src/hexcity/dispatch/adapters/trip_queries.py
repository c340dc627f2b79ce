"""Read-only trip queries for other modules (the support assistant): a rider's own trips.

One SELECT on ``dispatch_trips`` (indexed by rider), newest first; no writes, no locks. The
``ride.status`` topic name is re-exported here so a consumer of trip changes does not reach
into the store module.
"""

from __future__ import annotations

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from hexcity.dispatch.adapters.trip_store_sql import TOPIC_STATUS, _trip, trips
from hexcity.dispatch.domain.trips import Trip

__all__ = ["MAX_TRIPS_PER_RIDER", "RIDE_STATUS_TOPIC", "TripQueries"]

RIDE_STATUS_TOPIC = TOPIC_STATUS
MAX_TRIPS_PER_RIDER = 200


class TripQueries:
    """Reads over the trip table of :class:`~hexcity.dispatch.SqlTripStore` (same engine)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def trips_of_rider(self, rider_id: str, limit: int = 20) -> list[Trip]:
        """The rider's trips, newest request first (ties by trip id), at most ``limit`` (1..200)."""
        if not rider_id:
            raise ValueError("rider id must not be empty")
        bounded = max(1, min(limit, MAX_TRIPS_PER_RIDER))
        with Session(self.engine) as s:
            rows = s.execute(
                select(trips)
                .where(trips.c.rider_id == rider_id)
                .order_by(trips.c.requested_at_s.desc(), trips.c.trip_id)
                .limit(bounded)
            ).all()
        return [_trip(row) for row in rows]
