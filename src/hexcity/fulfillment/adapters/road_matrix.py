"""Travel matrices: from hexcity's routing engine (road network), or straight lines (fallback).

The road adapter asks ``RoutingEngine.table`` for all points at once (one many-to-many); the
straight-line one (haversine x detour factor / speed) exists for the embedded default without a
graph and for the "why road ETAs matter" comparison.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from hexcity.fulfillment.errors import InvalidProblem
from hexcity.fulfillment.ports import TravelMatrix
from hexcity.kernel import LatLng, haversine_m
from hexcity.routing import NoSegment, RoutingEngine, RoutingError


class RoutingRoadMatrix:
    """``RoadMatrix`` over one ``RoutingEngine`` per profile name (e.g. {"car": engine})."""

    def __init__(self, engines: Mapping[str, RoutingEngine] | Callable[[str], RoutingEngine]) -> None:
        """``engines``: {profile: engine}, or a lookup such as ``RoutingService.get`` (its NotReady /
        UnknownProfile errors pass through)."""
        self._engines = engines if callable(engines) else dict(engines)

    def _engine(self, profile: str) -> RoutingEngine | None:
        if callable(self._engines):
            return self._engines(profile)
        return self._engines.get(profile)

    def matrix(self, points: Sequence[LatLng], profile: str) -> TravelMatrix:
        engine = self._engine(profile)
        if engine is None:
            raise InvalidProblem(f"no road network for profile {profile!r}")
        points = list(points)
        try:
            table = engine.table(points)
            return TravelMatrix(
                np.asarray(table.durations_s, dtype=np.float64),
                np.asarray(table.distances_m, dtype=np.float64),
            )
        except NoSegment:
            pass  # some point is off the network: leave it unreachable and route the others
        except RoutingError as exc:
            raise InvalidProblem(f"road matrix failed: {exc.message}") from exc
        good = [i for i, p in enumerate(points) if _snaps(engine, p)]
        n = len(points)
        durations = np.full((n, n), np.nan)
        distances = np.full((n, n), np.nan)
        np.fill_diagonal(durations, 0.0)
        np.fill_diagonal(distances, 0.0)
        if good:
            table = engine.table([points[i] for i in good])
            durations[np.ix_(good, good)] = table.durations_s
            distances[np.ix_(good, good)] = table.distances_m
        return TravelMatrix(durations, distances)

    def path(self, points: Sequence[LatLng], profile: str) -> list[tuple[float, float]]:
        """The road line through ``points`` as (lat, lng) pairs; empty when it cannot be routed."""
        engine = self._engine(profile)
        if engine is None or len(points) < 2:
            return []
        return _route_path(engine, points)


def _route_path(engine: RoutingEngine, points: Sequence[LatLng]) -> list[tuple[float, float]]:
    try:
        route = engine.route(list(points), geometry=True)
    except RoutingError:
        return []
    return [(float(lat), float(lng)) for lat, lng in route.geometry]


def _snaps(engine: RoutingEngine, point: LatLng) -> bool:
    try:
        engine.snap(point)
    except RoutingError:
        return False
    return True


class StraightLineMatrix:
    """Haversine distance x ``detour_factor``, driven at ``speed_m_s``: no road network needed."""

    def __init__(self, speed_m_s: float = 8.0, detour_factor: float = 1.3) -> None:
        if speed_m_s <= 0 or detour_factor < 1:
            raise ValueError("speed_m_s must be > 0 and detour_factor >= 1")
        self.speed_m_s = speed_m_s
        self.detour_factor = detour_factor

    def matrix(self, points: Sequence[LatLng], profile: str) -> TravelMatrix:
        n = len(points)
        distances = np.zeros((n, n), dtype=np.float64)
        for i, a in enumerate(points):
            for j in range(i + 1, n):
                distances[i, j] = distances[j, i] = haversine_m(a, points[j]) * self.detour_factor
        return TravelMatrix(distances / self.speed_m_s, distances)
