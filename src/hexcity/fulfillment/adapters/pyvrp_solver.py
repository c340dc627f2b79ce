"""The PyVRP backend (iterated local search, Wouda, Lan & Kool 2024) behind our problem model.

Our :class:`VrpProblem` becomes a ``pyvrp.ProblemData`` built straight from the numpy matrices
(no per-edge Python calls, so a 1,000-stop instance converts in milliseconds). Stops that no
vehicle could serve alone are removed first and reported with their reason; stops the search
leaves out are reported as dropped. Job-to-vehicle restrictions (VROOM skills) become per-type
profiles whose matrices forbid the stops the type may not serve.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pyvrp
from pyvrp.stop import MaxIterations, MaxRuntime, MultipleCriteria, StoppingCriterion

from hexcity.fulfillment.domain.problem import I64, Job, Shipment, VrpProblem
from hexcity.fulfillment.domain.solution import (
    PlannedRoute,
    SolverStats,
    Stop,
    StopKind,
    Unassigned,
    VrpSolution,
    check_solution,
)
from hexcity.fulfillment.domain.solving import (
    REASON_DROPPED,
    SolverParams,
    job_reason,
    shipment_reason,
)

FORBIDDEN = int(pyvrp.constants.MAX_VALUE)


@dataclass
class _Mapping:
    """Which of our stops became which PyVRP client/shipment, and each PyVRP location's origin."""

    locations: list[int] = field(default_factory=list)  # pyvrp location -> our location
    jobs: list[int] = field(default_factory=list)  # pyvrp client -> our job index
    shipments: list[int] = field(default_factory=list)  # pyvrp shipment -> our shipment index
    types: list[int] = field(default_factory=list)  # pyvrp vehicle type -> our vehicle type
    unassigned: list[Unassigned] = field(default_factory=list)


class PyVrpSolver:
    """``solve(problem, params) -> VrpSolution``; seeded and time-limited."""

    backend = "pyvrp"

    def solve(
        self,
        problem: VrpProblem,
        params: SolverParams,
        allowed_vehicle_types: dict[tuple[str, int], tuple[int, ...]] | None = None,
    ) -> VrpSolution:
        """Solve; ``allowed_vehicle_types[("job"|"shipment", i)]`` restricts who may serve a stop."""
        data, mapping = to_problem_data(problem, allowed_vehicle_types)
        stats = SolverStats(0.0, 0, params.seed, self.backend)
        if not mapping.jobs and not mapping.shipments:
            return VrpSolution([], mapping.unassigned, 0, True, stats)
        started = time.perf_counter()
        result = pyvrp.Model.from_data(data).solve(
            _stop(params), seed=params.seed, collect_stats=False, display=False
        )
        stats = SolverStats(
            time.perf_counter() - started, int(result.num_iterations), params.seed, self.backend
        )
        return from_pyvrp(problem, result.best, mapping, stats)


def _stop(params: SolverParams) -> StoppingCriterion:
    runtime = MaxRuntime(params.time_limit_s)
    if params.max_iterations is None:
        return runtime
    return MultipleCriteria([runtime, MaxIterations(params.max_iterations)])


def to_problem_data(
    problem: VrpProblem, allowed: dict[tuple[str, int], tuple[int, ...]] | None = None
) -> tuple[pyvrp.ProblemData, _Mapping]:
    """Translate ``problem`` for PyVRP; stops no vehicle can serve alone are left out (with reason).

    PyVRP locations: one per depot, then one per kept job, then pickup and delivery per kept
    shipment (so a VRPLIB CVRP/VRPTW instance keeps its own order).
    """
    allowed = allowed or {}
    m = _Mapping()
    n_types = len(problem.vehicle_types)
    reasons: dict[int, str] = {}
    for index, job in enumerate(problem.jobs):
        reason = job_reason(problem, job, _mask(allowed.get(("job", index)), n_types))
        if reason is None:
            m.jobs.append(index)
        else:
            reasons[index] = reason
    usable_groups = {problem.jobs[j].group for j in m.jobs}
    for index, reason in reasons.items():
        # an impossible alternative is silently left out while another one of its group remains
        if problem.jobs[index].group is None or problem.jobs[index].group not in usable_groups:
            m.unassigned.append(Unassigned("job", index, reason))
    for index, ship in enumerate(problem.shipments):
        reason = shipment_reason(problem, ship, _mask(allowed.get(("shipment", index)), n_types))
        if reason is None:
            m.shipments.append(index)
        else:
            m.unassigned.append(Unassigned("shipment", index, reason))
    m.locations = [d.location for d in problem.depots] + [problem.jobs[i].location for i in m.jobs]
    for i in m.shipments:
        m.locations += [problem.shipments[i].pickup_location, problem.shipments[i].delivery_location]
    dims = max(problem.num_dimensions, 1)
    n_depots = len(problem.depots)
    depots = [
        pyvrp.Depot(location=i, tw_early=d.tw_early, tw_late=d.tw_late) for i, d in enumerate(problem.depots)
    ]
    groups, group_of = _groups(problem, m)
    clients = [
        _client(problem.jobs[index], n_depots + number, dims, group_of.get(index))
        for number, index in enumerate(m.jobs)
    ]
    first = n_depots + len(m.jobs)
    shipments = [
        _shipment(problem.shipments[index], first + 2 * number, dims)
        for number, index in enumerate(m.shipments)
    ]
    m.types = [i for i, v in enumerate(problem.vehicle_types) if v.count > 0]
    distances, durations, type_profile = _profiles(problem, m, allowed)
    vehicle_types = [_vehicle_type(problem, i, type_profile[i], dims) for i in m.types]
    data = pyvrp.ProblemData(
        locations=[_location(problem, loc) for loc in m.locations],
        clients=clients,
        depots=depots,
        vehicle_types=vehicle_types,
        distance_matrices=list[Any](distances),
        duration_matrices=list[Any](durations),
        groups=groups,
        shipments=shipments,
    )
    return data, m


def _groups(problem: VrpProblem, m: _Mapping) -> tuple[list[pyvrp.ClientGroup], dict[int, int]]:
    """PyVRP mutually exclusive groups over the kept members (clients numbered as in m.jobs)."""
    by_group: dict[int, list[int]] = {}
    for number, index in enumerate(m.jobs):
        group = problem.jobs[index].group
        if group is not None:
            by_group.setdefault(group, []).append(number)
    groups: list[pyvrp.ClientGroup] = []
    group_of: dict[int, int] = {}
    for group, numbers in sorted(by_group.items()):
        for number in numbers:
            group_of[m.jobs[number]] = len(groups)
        groups.append(pyvrp.ClientGroup(numbers, required=problem.groups[group]))
    return groups, group_of


def _client(job: Job, location: int, dims: int, group: int | None = None) -> pyvrp.Client:
    return pyvrp.Client(
        location=location,
        delivery=_pad(job.delivery, dims),
        pickup=_pad(job.pickup, dims),
        service_duration=job.service,
        tw_early=job.tw_early,
        tw_late=job.tw_late,
        prize=job.prize,
        required=job.required and group is None,  # group members are optional; the group decides
        group=group,
        name=job.name,
    )


def _shipment(ship: Shipment, pickup_location: int, dims: int) -> pyvrp.Shipment:
    return pyvrp.Shipment(
        pickup_location=pickup_location,
        delivery_location=pickup_location + 1,
        pickup_tw_early=ship.pickup_tw_early,
        pickup_tw_late=ship.pickup_tw_late,
        pickup_service_duration=ship.pickup_service,
        delivery_tw_early=ship.delivery_tw_early,
        delivery_tw_late=ship.delivery_tw_late,
        delivery_service_duration=ship.delivery_service,
        amount=_pad(ship.amount, dims),
        prize=ship.prize,
        required=ship.required,
        name=ship.name,
    )


def _vehicle_type(problem: VrpProblem, index: int, profile: int, dims: int) -> pyvrp.VehicleType:
    v = problem.vehicle_types[index]
    return pyvrp.VehicleType(
        num_available=v.count,
        capacity=_pad(v.capacity, dims),
        start_depot=v.start_depot,
        end_depot=v.end_depot,
        fixed_cost=v.fixed_cost,
        tw_early=v.tw_early,
        tw_late=v.tw_late,
        shift_duration=v.max_duration,
        max_distance=v.max_distance,
        unit_distance_cost=v.unit_distance_cost,
        unit_duration_cost=v.unit_duration_cost,
        profile=profile,
        name=v.name or str(index),
    )


def _profiles(
    problem: VrpProblem, m: _Mapping, allowed: dict[tuple[str, int], tuple[int, ...]]
) -> tuple[list[I64], list[I64], dict[int, int]]:
    """One PyVRP profile per (our profile, stops forbidden to the type); matrices follow m.locations."""
    idx = np.asarray(m.locations, dtype=np.int64)
    n_depots = len(problem.depots)
    forbidden_by_type: dict[int, frozenset[int]] = {}
    for t in m.types:
        banned = {n_depots + k for k, j in enumerate(m.jobs) if t not in allowed.get(("job", j), (t,))}
        first = n_depots + len(m.jobs)
        for k, s in enumerate(m.shipments):
            if t not in allowed.get(("shipment", s), (t,)):
                banned |= {first + 2 * k, first + 2 * k + 1}
        forbidden_by_type[t] = frozenset(banned)
    keys: dict[tuple[int, frozenset[int]], int] = {}
    distances: list[I64] = []
    durations: list[I64] = []
    type_profile: dict[int, int] = {}
    for t in m.types:
        key = (problem.vehicle_types[t].profile, forbidden_by_type[t])
        if key not in keys:
            keys[key] = len(distances)
            distances.append(_sub(problem.distances[key[0]], idx, key[1]))
            durations.append(_sub(problem.durations[key[0]], idx, key[1]))
        type_profile[t] = keys[key]
    if not distances:  # no vehicles at all: PyVRP still wants one profile
        distances.append(_sub(problem.distances[0], idx, frozenset()))
        durations.append(_sub(problem.durations[0], idx, frozenset()))
    return distances, durations, type_profile


def _sub(matrix: I64, idx: npt.NDArray[np.int64], banned: frozenset[int]) -> I64:
    out: I64 = np.ascontiguousarray(matrix[np.ix_(idx, idx)], dtype=np.int64)
    if banned:
        rows = np.fromiter(banned, dtype=np.int64)
        out[rows, :] = FORBIDDEN
        out[:, rows] = FORBIDDEN
        np.fill_diagonal(out, 0)
    return out


def _mask(types: tuple[int, ...] | None, n_types: int) -> list[bool] | None:
    return None if types is None else [t in types for t in range(n_types)]


def _pad(amount: tuple[int, ...], dims: int) -> list[int]:
    return list(amount) + [0] * (dims - len(amount))


def _location(problem: VrpProblem, loc: int) -> pyvrp.Location:
    if problem.coordinates:
        x, y = problem.coordinates[loc]
        return pyvrp.Location(x=x, y=y)
    return pyvrp.Location(x=0, y=0)


def from_pyvrp(problem: VrpProblem, best: pyvrp.Solution, m: _Mapping, stats: SolverStats) -> VrpSolution:
    """Our solution from PyVRP's, checked by the independent checker."""
    routes: list[PlannedRoute] = []
    for route in best.routes():
        stops: list[Stop] = []
        for activity in route.schedule():
            kind = _KINDS.get(activity.type)
            if kind is None:
                continue
            index = m.jobs[activity.idx] if kind == "job" else m.shipments[activity.idx]
            location = _our_location(problem, kind, index)
            arrival = int(activity.start_time) - int(activity.wait_duration)
            stops.append(
                Stop(kind, index, location, arrival, int(activity.start_time), int(activity.wait_duration))
            )
        routes.append(
            PlannedRoute(
                vehicle_type=m.types[route.vehicle_type()],
                stops=stops,
                start_time=int(route.start_time()),
                end_time=int(route.end_time()),
                distance=int(route.distance()),
                duration=int(route.duration()),
                cost=int(route.distance_cost() + route.duration_cost() + route.fixed_vehicle_cost()),
            )
        )
    unassigned = list(m.unassigned)
    served_jobs = {s.index for r in routes for s in r.stops if s.kind == "job"}
    served_ships = {s.index for r in routes for s in r.stops if s.kind == "pickup"}
    served_groups = {problem.jobs[j].group for j in served_jobs} - {None}
    unassigned += [
        Unassigned("job", j, REASON_DROPPED)
        for j in m.jobs
        if j not in served_jobs and problem.jobs[j].group not in served_groups
    ]
    unassigned += [Unassigned("shipment", s, REASON_DROPPED) for s in m.shipments if s not in served_ships]
    cost = sum(r.cost for r in routes)
    draft = VrpSolution(routes, unassigned, cost, bool(best.is_feasible()), stats)
    violations = check_solution(problem, draft)
    return VrpSolution(routes, unassigned, cost, draft.feasible and not violations, stats, violations)


_KINDS: dict[pyvrp.ActivityType, StopKind] = {
    pyvrp.ActivityType.CLIENT: "job",
    pyvrp.ActivityType.PICKUP: "pickup",
    pyvrp.ActivityType.DELIVERY: "delivery",
}


def _our_location(problem: VrpProblem, kind: StopKind, index: int) -> int:
    if kind == "job":
        return problem.jobs[index].location
    ship = problem.shipments[index]
    return ship.pickup_location if kind == "pickup" else ship.delivery_location
