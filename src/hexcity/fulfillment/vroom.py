"""The VROOM JSON problem and solution format (https://github.com/VROOM-Project/vroom/blob/master/docs/API.md).

In: ``jobs`` (delivery/pickup/amount, service + setup, time windows, skills, priority),
``shipments`` (pickup and delivery steps), ``vehicles`` (start/end, capacity, skills,
time_window, max_travel_time, max_distance, costs.fixed/per_hour/per_km), and either
``matrices`` per profile (durations, optional distances) with ``location_index`` everywhere or
``[lon, lat]`` locations, whose matrix comes from the road network through the ``RoadMatrix``
port. Out: VROOM's ``code/summary/unassigned/routes`` with steps (arrival, waiting_time,
service, load, cumulated duration and distance); each unassigned task also has a ``reason``.

Route costs are reported as VROOM does (fixed + per_hour on travel time + per_km on distance);
the search itself also counts service and waiting time at per_hour (service time is the same
for any plan serving the same tasks, so only waiting is weighed differently).

As in VROOM, every task is optional: the solver serves as many as it can (a large prize per task,
raised by ``priority``) and lists the others as unassigned. Differences: ``setup`` is always
paid (VROOM skips it for consecutive tasks at the same place); a job's several time windows
become alternatives of which at most one is served (PyVRP client groups; up to 10), a shipment
step has at most one; ``breaks``, ``max_tasks``, ``steps`` (plan mode), custom ``costs``
matrices and ``speed_factor`` != 1 are refused with a clear error rather than ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import ValidationError

from hexcity.fulfillment.domain.problem import (
    I64,
    UNBOUNDED,
    Depot,
    Job,
    Objective,
    Shipment,
    VehicleType,
    VrpProblem,
)
from hexcity.fulfillment.domain.solving import UNREACHABLE, must_serve_prize
from hexcity.fulfillment.errors import InvalidProblem, ProblemTooBig
from hexcity.fulfillment.ports import RoadMatrix
from hexcity.fulfillment.vroom_schema import (
    VroomJob,
    VroomMatrix,
    VroomProblem,
    VroomShipment,
    VroomStep,
    VroomVehicle,
)
from hexcity.kernel import LatLng

COST_UNIT = 3_600_000  # per_hour * 1000 and per_km * 3600 share this denominator
MAX_TIME_WINDOWS = 10


@dataclass(frozen=True, slots=True)
class VroomLimits:
    max_jobs: int = 2_000
    max_vehicles: int = 500
    max_locations: int = 2_500


@dataclass
class VroomIndex:
    """Links our model back to VROOM ids and locations."""

    vehicles: list[VroomVehicle]
    jobs: list[VroomJob]
    shipments: list[VroomShipment]
    location_out: list[dict[str, Any]]  # per our location: {"location": [...]} or {"location_index": i}
    virtual: int | None = None  # the zero-cost location of open routes
    allowed: dict[tuple[str, int], tuple[int, ...]] = field(default_factory=dict)
    job_of: list[int] = field(default_factory=list)  # our job -> VROOM job (one per time window)


def parse_vroom(payload: object, limits: VroomLimits | None = None) -> VroomProblem:
    """Validate a VROOM problem dict. Raises InvalidProblem (bad shape) or ProblemTooBig."""
    limits = limits or VroomLimits()
    try:
        problem = VroomProblem.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidProblem(f"invalid VROOM problem at {where or 'top'}: {first['msg']}") from exc
    tasks = len(problem.jobs) + 2 * len(problem.shipments)
    if tasks > limits.max_jobs or len(problem.vehicles) > limits.max_vehicles:
        raise ProblemTooBig(f"at most {limits.max_jobs} tasks and {limits.max_vehicles} vehicles per problem")
    _check_ids(problem)
    return problem


def build_problem(
    vroom: VroomProblem, road: RoadMatrix | None = None, limits: VroomLimits | None = None
) -> tuple[VrpProblem, VroomIndex]:
    """Our model from a VROOM problem; the road matrix is asked only when no matrix was given."""
    limits = limits or VroomLimits()
    profiles = sorted({v.profile for v in vroom.vehicles})
    steps = _all_steps(vroom)
    if vroom.matrices is not None or vroom.matrix is not None:
        durations, distances = _given_matrices(vroom, profiles, steps, limits)
        location_out: list[dict[str, Any]] = [{"location_index": i} for i in range(durations[0].shape[0])]
        loc_of = _Locator(None)
    else:
        durations, distances, location_out, coords = _road_matrices(vroom, profiles, road, limits)
        loc_of = _Locator(coords)
    n = durations[0].shape[0]
    needs_virtual = any(
        not _has(v.start, v.start_index) or not _has(v.end, v.end_index) for v in vroom.vehicles
    )
    virtual: int | None = None
    if needs_virtual:
        durations = [_grow(m) for m in durations]
        distances = [_grow(m) for m in distances]
        virtual = n
        location_out.append({})
    index = VroomIndex(list(vroom.vehicles), list(vroom.jobs), list(vroom.shipments), location_out, virtual)
    depots: list[Depot] = []
    depot_of: dict[int, int] = {}

    def depot(location: int) -> int:
        if location not in depot_of:
            depot_of[location] = len(depots)
            depots.append(Depot(location, name=str(location)))
        return depot_of[location]

    divisor = _cost_divisor(vroom.vehicles)
    vehicle_types = []
    for v in vroom.vehicles:
        start = loc_of(v.start, v.start_index) if _has(v.start, v.start_index) else virtual
        end = loc_of(v.end, v.end_index) if _has(v.end, v.end_index) else virtual
        if start is None or end is None:
            raise InvalidProblem(f"vehicle {v.id}: no start and no end")
        early, late = (v.time_window[0], v.time_window[1]) if v.time_window else (0, UNBOUNDED)
        vehicle_types.append(
            VehicleType(
                count=1,
                capacity=tuple(v.capacity),
                start_depot=depot(start),
                end_depot=depot(end),
                tw_early=early,
                tw_late=late,
                max_duration=UNBOUNDED if v.max_travel_time is None else v.max_travel_time,
                max_distance=UNBOUNDED if v.max_distance is None else v.max_distance,
                fixed_cost=v.costs.fixed * COST_UNIT // divisor,
                unit_distance_cost=v.costs.per_km * 3600 // divisor,
                unit_duration_cost=v.costs.per_hour * 1000 // divisor,
                profile=profiles.index(v.profile),
                name=str(v.id),
            )
        )
    steps_all = _all_steps(vroom)
    waits = [w[0] for s in steps_all for w in (s.time_windows or [])]
    services = [s.setup + s.service for s in steps_all]
    prize = must_serve_prize(
        durations, distances, vehicle_types, max(services, default=0), max(waits, default=0)
    )
    jobs: list[Job] = []
    groups: list[bool] = []
    for vi, j in enumerate(vroom.jobs):
        windows: list[list[int] | None] = list(j.time_windows or []) or [None]
        group = None
        if len(windows) > 1:  # one alternative per window; at most one is served
            group = len(groups)
            groups.append(False)
        for window in windows:
            if j.skills:
                index.allowed[("job", len(jobs))] = _skilled(vroom.vehicles, j.skills)
            jobs.append(_job(j, loc_of(j.location, j.location_index), prize, window, group))
            index.job_of.append(vi)
    shipments = [_shipment(s, loc_of, prize) for s in vroom.shipments]
    for i, s in enumerate(vroom.shipments):
        if s.skills:
            index.allowed[("shipment", i)] = _skilled(vroom.vehicles, s.skills)
    problem = VrpProblem(
        distances=distances,
        durations=durations,
        depots=depots,
        vehicle_types=vehicle_types,
        jobs=jobs,
        shipments=shipments,
        objective=Objective(COST_UNIT // divisor, 0, "vroom"),
        name="vroom",
        groups=groups,
    )
    return problem, index


def _check_ids(problem: VroomProblem) -> None:
    for name, ids in (
        ("vehicle", [v.id for v in problem.vehicles]),
        ("job", [j.id for j in problem.jobs]),
        ("pickup", [s.pickup.id for s in problem.shipments]),
        ("delivery", [s.delivery.id for s in problem.shipments]),
    ):
        if len(set(ids)) != len(ids):
            raise InvalidProblem(f"duplicate {name} id")
    for step in _all_steps(problem):
        windows = step.time_windows or []
        if len(windows) > MAX_TIME_WINDOWS:
            raise InvalidProblem(f"task {step.id}: at most {MAX_TIME_WINDOWS} time windows per task")
        for window in windows:
            if len(window) != 2 or not 0 <= window[0] <= window[1]:
                raise InvalidProblem(f"task {step.id}: a time window is [start, end] with 0 <= start <= end")
    for s in problem.shipments:
        if len(s.pickup.time_windows or []) > 1 or len(s.delivery.time_windows or []) > 1:
            raise InvalidProblem(f"shipment {s.pickup.id}: at most one time window per pickup and delivery")
    for v in problem.vehicles:
        if v.time_window and not 0 <= v.time_window[0] <= v.time_window[1]:
            raise InvalidProblem(f"vehicle {v.id}: time_window is [start, end] with 0 <= start <= end")
        if any(c < 0 for c in v.capacity):
            raise InvalidProblem(f"vehicle {v.id}: capacity must not be negative")
    for j in problem.jobs:
        if any(q < 0 for q in [*j.delivery, *j.pickup, *(j.amount or [])]):
            raise InvalidProblem(f"job {j.id}: amounts must not be negative")
    for s in problem.shipments:
        if any(q < 0 for q in s.amount):
            raise InvalidProblem(f"shipment {s.pickup.id}: amounts must not be negative")


def _all_steps(problem: VroomProblem) -> list[VroomStep]:
    steps: list[VroomStep] = list(problem.jobs)
    for s in problem.shipments:
        steps += [s.pickup, s.delivery]
    return steps


def _by_index(location: list[float] | None, location_index: int | None) -> int:
    if location_index is None:
        raise InvalidProblem("location_index is required on every task and vehicle when matrices are given")
    return location_index


def _given_matrices(
    vroom: VroomProblem, profiles: list[str], steps: list[VroomStep], limits: VroomLimits
) -> tuple[list[I64], list[I64]]:
    given = dict(vroom.matrices or {})
    if vroom.matrix is not None:
        if len(profiles) != 1:
            raise InvalidProblem(
                "the legacy 'matrix' field needs all vehicles on one profile; use 'matrices'"
            )
        given.setdefault(profiles[0], VroomMatrix(durations=vroom.matrix))
    durations: list[I64] = []
    distances: list[I64] = []
    for profile in profiles:
        entry = given.get(profile)
        if entry is None or entry.durations is None:
            raise InvalidProblem(f"matrices.{profile}.durations is missing")
        if entry.costs is not None:
            raise InvalidProblem(
                "custom 'costs' matrices are not supported; use vehicle costs per_hour/per_km"
            )
        dur = _square(entry.durations, f"matrices.{profile}.durations", limits)
        dist = (
            np.zeros_like(dur)
            if entry.distances is None
            else _square(entry.distances, f"matrices.{profile}.distances", limits)
        )
        if dist.shape != dur.shape:
            raise InvalidProblem(f"matrices.{profile}: durations and distances differ in size")
        durations.append(dur)
        distances.append(dist)
    sizes = {m.shape[0] for m in durations}
    if len(sizes) != 1:
        raise InvalidProblem("all profiles' matrices must have the same size")
    n = sizes.pop()
    used = [s.location_index for s in steps] + [
        i for v in vroom.vehicles for i in (v.start_index, v.end_index)
    ]
    if any(i is not None and i >= n for i in used):
        raise InvalidProblem(f"a location_index is outside the {n}x{n} matrix")
    return durations, distances


def _square(rows: list[list[int]], name: str, limits: VroomLimits) -> I64:
    n = len(rows)
    if n > limits.max_locations:
        raise ProblemTooBig(f"{name}: at most {limits.max_locations} locations")
    if n == 0 or any(len(r) != n for r in rows):
        raise InvalidProblem(f"{name} must be a non-empty square matrix")
    out = np.asarray(rows, dtype=np.int64)
    if (out < 0).any():
        raise InvalidProblem(f"{name} must not contain negative values")
    return out


def _road_matrices(
    vroom: VroomProblem, profiles: list[str], road: RoadMatrix | None, limits: VroomLimits
) -> tuple[list[I64], list[I64], list[dict[str, Any]], dict[tuple[float, float], int]]:
    if road is None:
        raise InvalidProblem("no 'matrices' given and no road network configured: send matrices")
    coords: dict[tuple[float, float], int] = {}
    wanted = (
        [v.start for v in vroom.vehicles]
        + [v.end for v in vroom.vehicles]
        + [s.location for s in _all_steps(vroom)]
    )
    for step in _all_steps(vroom):
        if step.location is None:
            raise InvalidProblem(f"task {step.id}: location [lon, lat] is required without matrices")
    for loc in wanted:
        if loc is None:
            continue
        lon, lat = loc
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise InvalidProblem(f"location {loc} is not [lon, lat] in degrees")
        coords.setdefault((lon, lat), len(coords))
    if len(coords) > limits.max_locations:
        raise ProblemTooBig(f"at most {limits.max_locations} distinct locations")
    points = [LatLng(lat, lon) for lon, lat in coords]
    durations: list[I64] = []
    distances: list[I64] = []
    for profile in profiles:
        travel = road.matrix(points, profile)
        durations.append(_to_int(travel.durations_s))
        distances.append(_to_int(travel.distances_m))
    location_out: list[dict[str, Any]] = [{"location": [lon, lat]} for lon, lat in coords]
    return durations, distances, location_out, coords


class _Locator:
    """Our location index of a VROOM location: its location_index, or its [lon, lat]."""

    def __init__(self, coords: dict[tuple[float, float], int] | None) -> None:
        self._coords = coords

    def __call__(self, location: list[float] | None, location_index: int | None) -> int:
        if self._coords is None:
            return _by_index(location, location_index)
        if location is None:
            raise InvalidProblem("location [lon, lat] is required without matrices")
        return self._coords[(location[0], location[1])]


def _to_int(matrix: Any) -> I64:
    values = np.asarray(matrix, dtype=np.float64)
    out = np.where(np.isfinite(values), np.round(values), float(UNREACHABLE)).astype(np.int64)
    return np.minimum(out, UNREACHABLE)


def _grow(matrix: I64) -> I64:
    n = matrix.shape[0]
    out = np.zeros((n + 1, n + 1), dtype=np.int64)
    out[:n, :n] = matrix
    return out


def _cost_divisor(vehicles: list[VroomVehicle]) -> int:
    divisor = COST_UNIT
    for v in vehicles:
        for unit in (v.costs.per_hour * 1000, v.costs.per_km * 3600):
            divisor = math.gcd(divisor, unit)
    return max(divisor, 1)


def _window(step: VroomStep) -> tuple[int, int]:
    return (step.time_windows[0][0], step.time_windows[0][1]) if step.time_windows else (0, UNBOUNDED)


def _job(j: VroomJob, location: int, prize: int, window: list[int] | None, group: int | None) -> Job:
    early, late = (window[0], window[1]) if window else (0, UNBOUNDED)
    delivery = j.delivery or (j.amount or [])
    return Job(
        location=location,
        delivery=tuple(delivery),
        pickup=tuple(j.pickup),
        service=j.setup + j.service,
        tw_early=early,
        tw_late=late,
        required=False,
        prize=prize * (1 + j.priority),
        name=str(j.id),
        group=group,
    )


def _shipment(s: VroomShipment, loc_of: _Locator, prize: int) -> Shipment:
    p_early, p_late = _window(s.pickup)
    d_early, d_late = _window(s.delivery)
    return Shipment(
        pickup_location=loc_of(s.pickup.location, s.pickup.location_index),
        delivery_location=loc_of(s.delivery.location, s.delivery.location_index),
        amount=tuple(s.amount),
        pickup_service=s.pickup.setup + s.pickup.service,
        pickup_tw_early=p_early,
        pickup_tw_late=p_late,
        delivery_service=s.delivery.setup + s.delivery.service,
        delivery_tw_early=d_early,
        delivery_tw_late=d_late,
        required=False,
        prize=2 * prize * (1 + s.priority),
        name=f"{s.pickup.id}->{s.delivery.id}",
    )


def _skilled(vehicles: list[VroomVehicle], skills: list[int]) -> tuple[int, ...]:
    need = set(skills)
    return tuple(i for i, v in enumerate(vehicles) if need <= set(v.skills))


def _has(location: list[float] | None, location_index: int | None) -> bool:
    return location is not None or location_index is not None
