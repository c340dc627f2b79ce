"""Value types of batched matching (requirements dispatch.md §2.6): riders, drivers, weights, results.

Shared by :mod:`hexcity.dispatch.domain.sharding` (candidates and shards) and
:mod:`hexcity.dispatch.domain.matching` (cost matrix, solver, greedy baseline), which re-exports
everything public here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import h3
import numpy as np
from numpy.typing import NDArray

from hexcity.dispatch.errors import DispatchError
from hexcity.kernel import LatLng

__all__ = [
    "ZONE_RES",
    "Assignment",
    "BoolArray",
    "Driver",
    "EtaMatrix",
    "FloatArray",
    "IntArray",
    "MatchParams",
    "MatchStats",
    "Rider",
    "check_unique",
]

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.int64]

EtaMatrix = Callable[[Sequence[LatLng], Sequence[LatLng]], NDArray[np.float64]]
"""Pickup ETA port: ``eta(drivers, riders)`` → seconds, shape (n_drivers, n_riders), nan = unreachable.

Drivers are the sources and riders the destinations, as in ``RoutingEngine.table(sources,
destinations).durations_s``.
"""

ZONE_RES = 6


def _check_coords(kind: str, id_: str, lat: float, lng: float) -> None:
    if not (math.isfinite(lat) and math.isfinite(lng) and -90.0 <= lat <= 90.0 and -180.0 <= lng <= 180.0):
        raise DispatchError(f"{kind} {id_!r}: coordinates out of range ({lat}, {lng})", code="InvalidInput")


@dataclass(frozen=True, slots=True)
class Rider:
    """A ride request waiting in the current window; ``zone`` is its H3 res-6 cell."""

    id: str
    lat: float
    lng: float
    cancel_risk: float = 0.0
    zone: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        _check_coords("rider", self.id, self.lat, self.lng)
        object.__setattr__(self, "zone", h3.latlng_to_cell(self.lat, self.lng, ZONE_RES))

    @property
    def latlng(self) -> LatLng:
        return LatLng(self.lat, self.lng)


@dataclass(frozen=True, slots=True)
class Driver:
    """A free (unlocked) driver; ``bearing_deg`` is the heading (None when unknown)."""

    id: str
    lat: float
    lng: float
    bearing_deg: float | None = None
    tier_bonus: float = 0.0
    zone: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        _check_coords("driver", self.id, self.lat, self.lng)
        object.__setattr__(self, "zone", h3.latlng_to_cell(self.lat, self.lng, ZONE_RES))

    @property
    def latlng(self) -> LatLng:
        return LatLng(self.lat, self.lng)


@dataclass(frozen=True, slots=True)
class Assignment:
    rider_id: str
    driver_id: str
    eta_s: float
    cost: float


@dataclass(frozen=True, slots=True)
class MatchParams:
    """Weights and limits of §2.6 (all configurable).

    ``w_bearing_s`` is in seconds per unit of mismatch (mismatch ∈ [0, 1]), so with the default a
    driver heading straight away from the rider costs like 60 s of extra ETA.
    """

    w_eta: float = 1.0
    w_bearing_s: float = 60.0
    w_cancel_s: float = 0.0
    w_tier_s: float = 0.0
    max_pickup_eta_s: float = 600.0
    max_riders_per_shard: int = 50
    max_drivers_per_shard: int = 100
    candidates_per_rider: int = 30
    lock_rule: Literal["own_zone", "nearest_rider"] = "nearest_rider"

    def __post_init__(self) -> None:
        if self.max_pickup_eta_s <= 0 or self.w_eta < 0 or self.w_bearing_s < 0:
            raise DispatchError(
                "MatchParams: weights must be >= 0 and max_pickup_eta_s > 0", code="InvalidInput"
            )
        if min(self.max_riders_per_shard, self.max_drivers_per_shard, self.candidates_per_rider) < 1:
            raise DispatchError("MatchParams: shard caps and candidates must be >= 1", code="InvalidInput")
        if self.lock_rule not in ("own_zone", "nearest_rider"):
            raise DispatchError(f"MatchParams: unknown lock_rule {self.lock_rule!r}", code="InvalidInput")


@dataclass(slots=True)
class MatchStats:
    """Where the time went in :func:`match_batch` (seconds), filled when a stats object is passed.

    ``candidates_s`` is candidate selection and sharding, ``eta_s`` the calls to the ETA port,
    ``solve_s`` the assignment solver; the rest of the wall time is cost-matrix building and
    bookkeeping (``cost_s``).
    """

    candidates_s: float = 0.0
    eta_s: float = 0.0
    solve_s: float = 0.0
    shards: int = 0
    max_shard_riders: int = 0
    max_shard_drivers: int = 0
    cost_s: float = 0.0


def check_unique(riders: Sequence[Rider], drivers: Sequence[Driver]) -> None:
    """Raise :class:`DispatchError` ``InvalidInput`` on a duplicate rider or driver id."""
    if len({r.id for r in riders}) != len(riders):
        raise DispatchError("duplicate rider id in batch", code="InvalidInput")
    if len({d.id for d in drivers}) != len(drivers):
        raise DispatchError("duplicate driver id in batch", code="InvalidInput")
