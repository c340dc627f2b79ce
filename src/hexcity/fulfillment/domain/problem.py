"""Our own vehicle-routing problem model, independent of any solver.

Everything is an integer in *scaled units*: a problem read from VRPLIB keeps the instance's
convention (``Objective.scale`` 1 for CVRPLIB rounding, 10 for DIMACS truncation to 0.1, 1000 for
the "exact" Li & Lim convention); a road problem uses seconds and metres. Locations are indices
into the matrices; each profile has one distance and one duration matrix (n x n, int64).

Variants covered: capacities (several dimensions), time windows, service times, several vehicle
types and depots, optional jobs with prizes (dropped ones are reported), pickup-and-delivery
pairs (shipments), groups of alternative jobs (one per time window: at most one is served),
open routes (a depot location with zero-cost edges), per-type profiles.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
UNBOUNDED = int(np.iinfo(np.int64).max)


@dataclass(frozen=True, slots=True)
class Objective:
    """How a solver cost maps to the reported objective: ``cost / scale`` with ``decimals``."""

    scale: int = 1
    decimals: int = 0
    convention: str = "integer"

    def value(self, cost: int) -> float:
        return round(cost / self.scale, self.decimals) if self.scale != 1 else float(cost)

    def text(self, cost: int) -> str:
        if self.decimals == 0:
            return str(cost // self.scale) if self.scale == 1 else f"{cost / self.scale:.0f}"
        return f"{cost / self.scale:.{self.decimals}f}"


@dataclass(frozen=True, slots=True)
class Depot:
    location: int
    tw_early: int = 0
    tw_late: int = UNBOUNDED
    name: str = ""


@dataclass(frozen=True, slots=True)
class Job:
    """One stop: delivers ``delivery`` (loaded at the depot) and/or picks up ``pickup``."""

    location: int
    delivery: tuple[int, ...] = ()
    pickup: tuple[int, ...] = ()
    service: int = 0
    tw_early: int = 0
    tw_late: int = UNBOUNDED
    required: bool = True
    prize: int = 0
    name: str = ""
    group: int | None = None  # alternatives (e.g. one per time window): at most one is served


@dataclass(frozen=True, slots=True)
class Shipment:
    """A pickup-and-delivery pair served by one vehicle, pickup first."""

    pickup_location: int
    delivery_location: int
    amount: tuple[int, ...] = ()
    pickup_service: int = 0
    pickup_tw_early: int = 0
    pickup_tw_late: int = UNBOUNDED
    delivery_service: int = 0
    delivery_tw_early: int = 0
    delivery_tw_late: int = UNBOUNDED
    required: bool = True
    prize: int = 0
    name: str = ""


@dataclass(frozen=True, slots=True)
class VehicleType:
    """``count`` identical vehicles starting at ``start_depot`` and ending at ``end_depot`` (indices)."""

    count: int = 1
    capacity: tuple[int, ...] = ()
    start_depot: int = 0
    end_depot: int = 0
    tw_early: int = 0
    tw_late: int = UNBOUNDED
    max_duration: int = UNBOUNDED
    max_distance: int = UNBOUNDED
    fixed_cost: int = 0
    unit_distance_cost: int = 1
    unit_duration_cost: int = 0
    profile: int = 0
    name: str = ""


@dataclass(frozen=True, slots=True)
class VrpProblem:
    """A complete routing problem. ``coordinates`` (x, y) per location are informative only."""

    distances: list[I64]
    durations: list[I64]
    depots: list[Depot]
    vehicle_types: list[VehicleType]
    jobs: list[Job] = field(default_factory=list)
    shipments: list[Shipment] = field(default_factory=list)
    coordinates: list[tuple[float, float]] = field(default_factory=list)
    objective: Objective = field(default_factory=Objective)
    name: str = ""
    groups: list[bool] = field(default_factory=list)  # per job group: must one member be served

    def group_members(self) -> dict[int, list[int]]:
        members: dict[int, list[int]] = {}
        for index, job in enumerate(self.jobs):
            if job.group is not None:
                members.setdefault(job.group, []).append(index)
        return members

    @property
    def num_locations(self) -> int:
        return int(self.distances[0].shape[0])

    @property
    def num_dimensions(self) -> int:
        sizes = {len(v.capacity) for v in self.vehicle_types}
        sizes |= {len(j.delivery) for j in self.jobs} | {len(j.pickup) for j in self.jobs}
        sizes |= {len(s.amount) for s in self.shipments}
        return max(sizes, default=0)
