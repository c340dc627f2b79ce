"""The routing engine as dispatch's :class:`~hexcity.dispatch.service.TripRouter`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from hexcity.kernel import HexcityError, LatLng
from hexcity.routing import RoutingService

__all__ = ["LazyRoadSnapper", "RoadRouter"]


class RoadRouter:
    """Trip distance/duration from ``route`` and pickup ETAs from ``table`` on one profile.

    The engine is looked up per call, so dispatch starts while the graph is still loading (and
    answers ``NotReady`` until it is).
    """

    def __init__(self, routing: RoutingService, profile: str = "car") -> None:
        self.routing = routing
        self.profile = profile

    def trip(self, pickup: LatLng, dropoff: LatLng) -> tuple[float, float]:
        route = self.routing.get(self.profile).route([pickup, dropoff], geometry=False)
        return float(route.distance_m), float(route.duration_s)

    def eta(self, drivers: Sequence[LatLng], riders: Sequence[LatLng]) -> NDArray[np.float64]:
        table = self.routing.get(self.profile).table(list(drivers), list(riders))
        return np.asarray(table.durations_s, dtype=np.float64)


class LazyRoadSnapper:
    """Snaps positions to the road network once the profile is loaded (``None`` before, or when
    no road lies within ``max_distance_m``: the driver keeps the smoothed GPS position)."""

    def __init__(self, routing: RoutingService, profile: str = "car", max_distance_m: float = 50.0) -> None:
        if not max_distance_m > 0:
            raise ValueError(f"max_distance_m must be > 0, got {max_distance_m!r}")
        self.routing = routing
        self.profile = profile
        self.max_distance_m = max_distance_m

    def snap(self, lat: float, lng: float) -> tuple[float, float] | None:
        try:
            engine = self.routing.get(self.profile)
            snapped = engine.snap(LatLng(lat, lng), self.max_distance_m)
        except HexcityError:  # not loaded yet (NotReady), or NoSegment
            return None
        return snapped.location.lat, snapped.location.lng
