"""A solver-independent VRP solution, and an independent checker that recomputes everything.

The checker trusts nothing the solver said: it replays every route on the problem's matrices
(arrival, waiting, service start, load after each stop) and reports each violated rule: a stop
served twice, a required stop neither served nor reported unassigned, capacity, time windows,
pickup before its delivery on the same route, shift duration/distance, fleet size, and a cost
that differs from the one recomputed from the matrix.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from hexcity.fulfillment.domain.problem import VrpProblem

StopKind = Literal["job", "pickup", "delivery"]


@dataclass(frozen=True, slots=True)
class Stop:
    """A visit on a route: ``index`` points into ``problem.jobs`` or ``problem.shipments``."""

    kind: StopKind
    index: int
    location: int
    arrival: int = 0
    start: int = 0  # service start = arrival + waiting
    waiting: int = 0
    load: tuple[int, ...] = ()  # load on board after the stop


@dataclass(frozen=True, slots=True)
class Unassigned:
    kind: Literal["job", "shipment"]
    index: int
    reason: str


@dataclass(frozen=True, slots=True)
class PlannedRoute:
    vehicle_type: int
    stops: list[Stop]
    start_time: int = 0
    end_time: int = 0
    distance: int = 0
    duration: int = 0
    cost: int = 0


@dataclass(frozen=True, slots=True)
class SolverStats:
    runtime_s: float
    iterations: int
    seed: int
    backend: str


@dataclass(frozen=True, slots=True)
class VrpSolution:
    routes: list[PlannedRoute]
    unassigned: list[Unassigned]
    cost: int
    feasible: bool
    stats: SolverStats
    violations: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Replay:
    distance: int
    duration: int
    cost: int
    start_time: int
    end_time: int
    stops: list[Stop]
    violations: list[str]


def replay_route(problem: VrpProblem, route: PlannedRoute, route_no: int = 0) -> Replay:
    """Recompute times, loads, distance and cost of one route; list its violations."""
    vtype = problem.vehicle_types[route.vehicle_type]
    dist = problem.distances[vtype.profile]
    dur = problem.durations[vtype.profile]
    dims = max(problem.num_dimensions, 1)
    start_loc = problem.depots[vtype.start_depot].location
    end_loc = problem.depots[vtype.end_depot].location
    load = [0] * dims
    for stop in route.stops:
        if stop.kind == "job":
            for d, qty in enumerate(problem.jobs[stop.index].delivery):
                load[d] += qty
    violations: list[str] = []
    _check_load(load, vtype.capacity, route_no, "at start", violations)
    time = max(vtype.tw_early, route.start_time)
    start_time = time
    here = start_loc
    distance = 0
    on_board: set[int] = set()
    replayed: list[Stop] = []
    for stop in route.stops:
        distance += int(dist[here, stop.location])
        arrival = time + int(dur[here, stop.location])
        early, late, service = _window(problem, stop)
        start = max(arrival, early)
        if start > late:
            violations.append(f"route {route_no}: {stop.kind} {stop.index} starts at {start} > {late}")
        _apply_load(problem, stop, load, on_board, route_no, violations)
        _check_load(load, vtype.capacity, route_no, f"after {stop.kind} {stop.index}", violations)
        replayed.append(
            Stop(stop.kind, stop.index, stop.location, arrival, start, start - arrival, tuple(load))
        )
        time = start + service
        here = stop.location
    distance += int(dist[here, end_loc])
    end_time = time + int(dur[here, end_loc])
    if on_board:
        violations.append(f"route {route_no}: shipments {sorted(on_board)} picked up but not delivered")
    if end_time > vtype.tw_late:
        violations.append(f"route {route_no}: returns at {end_time} > shift end {vtype.tw_late}")
    duration = end_time - start_time
    if duration > vtype.max_duration:
        violations.append(f"route {route_no}: duration {duration} > {vtype.max_duration}")
    if distance > vtype.max_distance:
        violations.append(f"route {route_no}: distance {distance} > {vtype.max_distance}")
    cost = vtype.fixed_cost + vtype.unit_distance_cost * distance + vtype.unit_duration_cost * duration
    return Replay(distance, duration, cost, start_time, end_time, replayed, violations)


def check_solution(problem: VrpProblem, solution: VrpSolution) -> list[str]:
    """Every rule the solution breaks (empty when valid); see the module docstring."""
    violations: list[str] = []
    served: Counter[tuple[str, int]] = Counter()
    total = 0
    used: Counter[int] = Counter()
    for no, route in enumerate(solution.routes):
        used[route.vehicle_type] += 1
        replay = replay_route(problem, route, no)
        violations.extend(replay.violations)
        total += replay.cost
        for stop in route.stops:
            served[("job" if stop.kind == "job" else stop.kind, stop.index)] += 1
    for vtype_index, count in used.items():
        if count > problem.vehicle_types[vtype_index].count:
            limit = problem.vehicle_types[vtype_index].count
            violations.append(f"vehicle type {vtype_index}: {count} routes > {limit}")
    dropped = {(u.kind, u.index) for u in solution.unassigned}
    members = problem.group_members()
    for index, job in enumerate(problem.jobs):
        n = served[("job", index)]
        if n > 1 or (n == 1 and ("job", index) in dropped):
            violations.append(f"job {index} served {n} times")
        group_served = job.group is not None and any(served[("job", m)] for m in members[job.group])
        if n == 0 and not group_served and ("job", index) not in dropped:
            violations.append(f"job {index} neither served nor reported unassigned")
    for group, indices in sorted(members.items()):
        if sum(served[("job", m)] for m in indices) > 1:
            violations.append(f"job group {group}: more than one alternative served")
    for index in range(len(problem.shipments)):
        p, d = served[("pickup", index)], served[("delivery", index)]
        if (p, d) not in {(0, 0), (1, 1)}:
            violations.append(f"shipment {index}: {p} pickups and {d} deliveries")
        if p == 0 and ("shipment", index) not in dropped:
            violations.append(f"shipment {index} neither served nor reported unassigned")
    if total != solution.cost:
        violations.append(f"reported cost {solution.cost} != recomputed {total}")
    return violations


def _window(problem: VrpProblem, stop: Stop) -> tuple[int, int, int]:
    if stop.kind == "job":
        job = problem.jobs[stop.index]
        return job.tw_early, job.tw_late, job.service
    ship = problem.shipments[stop.index]
    if stop.kind == "pickup":
        return ship.pickup_tw_early, ship.pickup_tw_late, ship.pickup_service
    return ship.delivery_tw_early, ship.delivery_tw_late, ship.delivery_service


def _apply_load(
    problem: VrpProblem, stop: Stop, load: list[int], on_board: set[int], route_no: int, violations: list[str]
) -> None:
    if stop.kind == "job":
        job = problem.jobs[stop.index]
        for d, qty in enumerate(job.delivery):
            load[d] -= qty
        for d, qty in enumerate(job.pickup):
            load[d] += qty
        return
    amount = problem.shipments[stop.index].amount
    if stop.kind == "pickup":
        on_board.add(stop.index)
        for d, qty in enumerate(amount):
            load[d] += qty
        return
    if stop.index not in on_board:
        violations.append(f"route {route_no}: delivery of shipment {stop.index} before its pickup")
    on_board.discard(stop.index)
    for d, qty in enumerate(amount):
        load[d] -= qty


def _check_load(
    load: list[int], capacity: tuple[int, ...], route_no: int, where: str, violations: list[str]
) -> None:
    for d, qty in enumerate(load):
        cap = capacity[d] if d < len(capacity) else 0
        if qty > cap:
            violations.append(f"route {route_no}: load {qty} > capacity {cap} (dimension {d}) {where}")
