"""Routing use cases: several profiles in one process, readiness, limits, optional table cache.

The HTTP layer and in-process callers both go through ``RoutingService``; it validates sizes
against the configured limits before any search runs, so a rejected request costs nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from hexcity.infra import get_logger
from hexcity.kernel import LatLng
from hexcity.routing.adapters.artefact import Artefact, load_artefact
from hexcity.routing.domain.engine import Engine, Route, Table
from hexcity.routing.domain.isochrone import Contour, isochrone
from hexcity.routing.domain.profiles import canonical_profile_name
from hexcity.routing.domain.snapping import Snap
from hexcity.routing.errors import InvalidValue, NotReady, TooBig, UnknownProfile
from hexcity.routing.table_cache import SemanticTableCache

log = get_logger(__name__)
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Limits:
    """Request limits (see RoutingSettings for the defaults)."""

    max_table_size: int = 100
    max_route_points: int = 500
    max_nearest_number: int = 100
    max_snap_distance_m: float = 1000.0
    max_isochrone_contours: int = 4
    max_isochrone_minutes: float = 60.0
    isochrone_buffer_m: float = 40.0


@dataclass
class LoadedProfile:
    """One served profile: its artefact, engine and optional cache."""

    artefact: Artefact
    engine: Engine
    cache: SemanticTableCache | None = None
    loaded_at: float = field(default_factory=time.time)

    @property
    def graph_version(self) -> str:
        return self.artefact.graph_version


class RoutingEngine:
    """In-process API over one artefact: the simplest way to route from Python.

    >>> engine = RoutingEngine.open(Path("graphs/andorra-car"))  # doctest: +SKIP
    >>> engine.table([LatLng(42.5, 1.52)], [LatLng(42.51, 1.53)]).durations_s  # doctest: +SKIP
    """

    def __init__(self, loaded: LoadedProfile, limits: Limits) -> None:
        self._p = loaded
        self.limits = limits

    @classmethod
    def open(
        cls,
        path: Path | str,
        *,
        limits: Limits | None = None,
        verify: bool = True,
        workers: int = 8,
        queue_timeout_s: float = 5.0,
    ) -> RoutingEngine:
        """Load an artefact directory (memory-mapped). In process, the table limit is 10,000.

        ``workers`` concurrent searches run at once; a further caller waits up to
        ``queue_timeout_s`` and then gets Overloaded (HTTP 429).
        """
        artefact = load_artefact(Path(path), verify=verify)
        engine = Engine(
            artefact.network, artefact.query, max_workspaces=workers, queue_timeout_s=queue_timeout_s
        )
        return cls(LoadedProfile(artefact, engine), limits or Limits(max_table_size=10_000))

    @property
    def graph_version(self) -> str:
        return self._p.graph_version

    @property
    def profile(self) -> str:
        return self._p.artefact.profile

    @property
    def engine(self) -> Engine:
        return self._p.engine

    def snap(self, point: LatLng, radius_m: float | None = None) -> Snap:
        _check_point(point)
        return self._p.engine.snap(point, self._radius(radius_m))

    def nearest(self, point: LatLng, number: int = 1, radius_m: float | None = None) -> list[Snap]:
        _check_point(point)
        if not 1 <= number <= self.limits.max_nearest_number:
            raise InvalidValue(f"number must be between 1 and {self.limits.max_nearest_number}")
        return self._p.engine.nearest(point, number, self._radius(radius_m))

    def route(
        self,
        points: Sequence[LatLng],
        radiuses_m: Sequence[float | None] | None = None,
        *,
        geometry: bool = True,
    ) -> Route:
        if len(points) < 2:
            raise InvalidValue("a route needs at least two coordinates")
        if len(points) > self.limits.max_route_points:
            raise TooBig(f"at most {self.limits.max_route_points} coordinates per route")
        snaps = self._snap_all(points, radiuses_m)
        return self._p.engine.route(snaps, geometry=geometry)

    def table(
        self,
        sources: Sequence[LatLng],
        destinations: Sequence[LatLng] | None = None,
        radiuses_m: tuple[Sequence[float | None], Sequence[float | None]] | None = None,
    ) -> Table:
        """Durations (s) and distances (m) from every source to every destination; nan if none."""
        destinations = sources if destinations is None else destinations
        limit = self.limits.max_table_size
        if not sources or not destinations:
            raise InvalidValue("a table needs at least one source and one destination")
        if len(sources) > limit or len(destinations) > limit:
            raise TooBig(f"at most {limit} sources and {limit} destinations per table")
        src_radii, dst_radii = radiuses_m if radiuses_m else (None, None)
        src = self._snap_all(sources, src_radii)
        same = destinations is sources or (
            list(destinations) == list(sources)
            and (dst_radii is None if src_radii is None else list(dst_radii or []) == list(src_radii))
        )
        dst = src if same else self._snap_all(destinations, dst_radii)
        cache = self._p.cache
        if cache is None:
            return self._p.engine.table(src, dst)
        cached = cache.table([s.location for s in src], [d.location for d in dst])
        return Table(cached.durations_s, cached.distances_m, src, dst)

    def exact_table_arrays(
        self, sources: Sequence[LatLng], destinations: Sequence[LatLng]
    ) -> tuple[F64, F64]:
        """The engine's exact many-to-many on already-snapped locations (the cache's compute)."""
        src = self._snap_all(sources, None)
        dst = self._snap_all(destinations, None)
        t = self._p.engine.table(src, dst)
        return t.durations_s, t.distances_m

    def isochrone(self, point: LatLng, limits_s: Sequence[float]) -> list[Contour]:
        """Polygons reachable within each time limit (seconds), smallest first."""
        if not limits_s or len(limits_s) > self.limits.max_isochrone_contours:
            raise InvalidValue(f"give 1 to {self.limits.max_isochrone_contours} time limits")
        max_s = self.limits.max_isochrone_minutes * 60
        if any(not (0 < t <= max_s) for t in limits_s):
            raise InvalidValue(f"time limits must be in (0, {max_s:.0f}] seconds")
        snap = self.snap(point)
        engine = self._p.engine
        return isochrone(
            engine.network,
            engine.forward_graph,
            engine.phantom(snap),
            sorted(limits_s),
            self.limits.isochrone_buffer_m,
        )

    def attach_cache(self, factory: Callable[[RoutingEngine], SemanticTableCache]) -> None:
        self._p.cache = factory(self)

    @property
    def cache(self) -> SemanticTableCache | None:
        return self._p.cache

    def _radius(self, radius_m: float | None) -> float:
        if radius_m is None:
            return self.limits.max_snap_distance_m
        if not (radius_m > 0):
            raise InvalidValue("radius must be a positive number of metres")
        return float(radius_m)

    def _snap_all(self, points: Sequence[LatLng], radiuses_m: Sequence[float | None] | None) -> list[Snap]:
        if radiuses_m is not None and len(radiuses_m) != len(points):
            raise InvalidValue("radiuses must have one entry per coordinate")
        for p in points:
            _check_point(p)
        radii = [self._radius(radiuses_m[i] if radiuses_m else None) for i in range(len(points))]
        return self._p.engine.snap_many(points, radii)


class RoutingService:
    """Every served profile, with readiness: a profile answers only once its graph is loaded."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._engines: dict[str, RoutingEngine] = {}
        self._expected: set[str] = set()
        self._errors: dict[str, str] = {}
        self._lock = threading.Lock()

    def expect(self, profiles: Sequence[str]) -> None:
        """Declare the profiles that will be served (readiness waits for all of them)."""
        with self._lock:
            self._expected.update(canonical_profile_name(p) for p in profiles)

    def add(self, engine: RoutingEngine) -> None:
        with self._lock:
            self._engines[engine.profile] = engine
            self._expected.add(engine.profile)
        log.info("profile_loaded", profile=engine.profile, graph_version=engine.graph_version)

    def fail(self, profile: str, message: str) -> None:
        with self._lock:
            self._errors[canonical_profile_name(profile)] = message

    def get(self, profile: str) -> RoutingEngine:
        """The engine of a profile (OSRM names accepted); raises UnknownProfile or NotReady."""
        try:
            name = canonical_profile_name(profile)
        except UnknownProfile:
            raise UnknownProfile(
                f"unknown profile {profile!r}; served: {', '.join(self.profiles())}"
            ) from None
        engine = self._engines.get(name)
        if engine is not None:
            return engine
        if name in self._expected:
            raise NotReady(f"profile {name!r} is still loading")
        raise UnknownProfile(f"profile {name!r} is not served here; served: {', '.join(self.profiles())}")

    def profiles(self) -> list[str]:
        return sorted(self._expected)

    @property
    def ready(self) -> bool:
        return bool(self._expected) and all(p in self._engines for p in self._expected) and not self._errors

    def status(self) -> dict[str, object]:
        return {
            "ready": self.ready,
            "profiles": {
                p: (
                    {"state": "ready", "graph_version": self._engines[p].graph_version}
                    if p in self._engines
                    else {"state": "failed", "error": self._errors[p]}
                    if p in self._errors
                    else {"state": "loading"}
                )
                for p in sorted(self._expected)
            },
        }


def _check_point(p: LatLng) -> None:
    lat, lng = float(p.lat), float(p.lng)
    if not (np.isfinite(lat) and np.isfinite(lng)):
        raise InvalidValue("coordinates must be finite numbers")
    if not -90.0 <= lat <= 90.0:
        raise InvalidValue(f"latitude {lat} must be within [-90, 90]")
    if not -180.0 <= lng <= 180.0:
        raise InvalidValue(f"longitude {lng} must be within [-180, 180]")
