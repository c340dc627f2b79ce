"""Solver parameters and the checks that explain why a stop cannot be served at all.

A stop that no vehicle could serve even alone on an empty route (too big, unreachable, window
impossible) is taken out of the problem before the search and reported with its reason, so the
search never wastes time on it and the caller never sees it silently dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hexcity.fulfillment.domain.problem import I64, UNBOUNDED, Job, Shipment, VehicleType, VrpProblem

# Matrix entries at or above this mean "no road" (the road matrix adapter writes it for nan).
UNREACHABLE = 1 << 40

REASON_CAPACITY = "capacity: the stop's amount exceeds every vehicle's capacity"
REASON_UNREACHABLE = "unreachable: no road between a vehicle's depot and the stop"
REASON_TIME_WINDOW = "time_window: no vehicle can reach the stop within its window and return in its shift"
REASON_SKILLS = "skills: no vehicle has the skills the stop requires"
REASON_DROPPED = (
    "dropped: no vehicle had capacity or time left for it (or serving it costs more than its prize)"
)


@dataclass(frozen=True, slots=True)
class SolverParams:
    """Search budget. ``time_limit_s`` is wall-clock seconds of search; same seed, same input and
    the same iteration count give the same routes."""

    time_limit_s: float = 15.0
    seed: int = 0
    max_iterations: int | None = None

    def __post_init__(self) -> None:
        if not 0 < self.time_limit_s <= 3600:
            raise ValueError("time_limit_s must be in (0, 3600]")
        if self.max_iterations is not None and self.max_iterations <= 0:
            raise ValueError("max_iterations must be positive")


def job_reason(problem: VrpProblem, job: Job, allowed: list[bool] | None = None) -> str | None:
    """Why ``job`` can never be served (None when some vehicle type could serve it alone)."""
    return _first_reason(
        problem,
        allowed,
        lambda v: _fits(job.delivery, v) and _fits(job.pickup, v),
        lambda v: _round_trip(problem, v, [(job.location, job.tw_early, job.tw_late, job.service)]),
    )


def shipment_reason(problem: VrpProblem, ship: Shipment, allowed: list[bool] | None = None) -> str | None:
    """Why ``ship`` can never be served (None when some vehicle type could serve it alone)."""
    stops = [
        (ship.pickup_location, ship.pickup_tw_early, ship.pickup_tw_late, ship.pickup_service),
        (ship.delivery_location, ship.delivery_tw_early, ship.delivery_tw_late, ship.delivery_service),
    ]
    return _first_reason(
        problem, allowed, lambda v: _fits(ship.amount, v), lambda v: _round_trip(problem, v, stops)
    )


def _first_reason(
    problem: VrpProblem,
    allowed: list[bool] | None,
    fits: Callable[[VehicleType], bool],
    timing: Callable[[VehicleType], str | None],
) -> str | None:
    candidates = [
        v for i, v in enumerate(problem.vehicle_types) if v.count > 0 and (allowed is None or allowed[i])
    ]
    if not candidates:
        return REASON_SKILLS
    sized = [v for v in candidates if fits(v)]
    if not sized:
        return REASON_CAPACITY
    outcomes = [timing(v) for v in sized]
    if None in outcomes:
        return None
    return REASON_UNREACHABLE if REASON_UNREACHABLE in outcomes else REASON_TIME_WINDOW


def _fits(amount: tuple[int, ...], vehicle: VehicleType) -> bool:
    capacity = vehicle.capacity
    return all(qty <= (capacity[d] if d < len(capacity) else 0) for d, qty in enumerate(amount) if qty > 0)


def _round_trip(
    problem: VrpProblem, vehicle: VehicleType, stops: list[tuple[int, int, int, int]]
) -> str | None:
    dist = problem.distances[vehicle.profile]
    dur = problem.durations[vehicle.profile]
    here = problem.depots[vehicle.start_depot].location
    end = problem.depots[vehicle.end_depot].location
    time = vehicle.tw_early
    start = time
    for number, (location, early, late, service) in enumerate(stops):
        if dist[here, location] >= UNREACHABLE or dur[here, location] >= UNREACHABLE:
            return REASON_UNREACHABLE
        arrival = time + int(dur[here, location])
        if number == 0 and arrival < early:  # leave the depot later instead of waiting
            start += early - arrival
        time = max(arrival, early)
        if time > late:
            return REASON_TIME_WINDOW
        time += service
        here = location
    if dist[here, end] >= UNREACHABLE or dur[here, end] >= UNREACHABLE:
        return REASON_UNREACHABLE
    time += int(dur[here, end])
    late_ok = vehicle.tw_late == UNBOUNDED or time <= vehicle.tw_late
    duration_ok = vehicle.max_duration == UNBOUNDED or time - start <= vehicle.max_duration
    return None if late_ok and duration_ok else REASON_TIME_WINDOW


def must_serve_prize(
    durations: list[I64],
    distances: list[I64],
    vehicle_types: list[VehicleType],
    max_service: int,
    max_wait: int,
) -> int:
    """A prize larger than anything serving one more stop can add to the cost: a detour (at most two
    of the longest finite edges), its service time and the longest wait, at the dearest unit costs,
    plus the dearest fixed cost. An optional stop carrying it is left out only when it cannot fit."""

    def longest(matrices: list[I64]) -> int:
        return max((int(np.max(np.where(m < UNREACHABLE, m, 0), initial=0)) for m in matrices), default=0)

    unit_duration = max((v.unit_duration_cost for v in vehicle_types), default=0)
    unit_distance = max((v.unit_distance_cost for v in vehicle_types), default=0)
    fixed = max((v.fixed_cost for v in vehicle_types), default=0)
    duration_part = unit_duration * (2 * longest(durations) + max(max_service, 0) + max(max_wait, 0))
    return duration_part + unit_distance * 2 * longest(distances) + fixed + 1
