"""Last-mile planning on the road network: routes with stop ETAs and geometry, urgent insertions,
re-planning a courier that fell behind.

The day's parcels become a VRP on the *road* matrix of the couriers' profile (durations in
seconds, distances in metres, from the ``RoadMatrix`` port) solved by the configured backend:
minimise driving time, respect capacities, delivery windows and shifts. Every parcel is served
or reported with its reason (unreachable address, window impossible, too big, no courier time
left). Geometry comes from the ``RouteGeometry`` port (``RoutingEngine.route``).

Dynamic changes keep the plan running: :meth:`LastMilePlanner.insert_urgent` puts a new
pickup-and-delivery (shop -> customer) into the running routes by cheapest feasible insertion;
:meth:`LastMilePlanner.replan_late` re-sequences a late courier's parcels from where it is
(they are on board, so they stay with it) and reports those it can no longer make in time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from hexcity.fulfillment.domain.insertion import RouteStop, RunningRoute, best_insertion
from hexcity.fulfillment.domain.problem import I64, UNBOUNDED, Depot, Job, VehicleType, VrpProblem
from hexcity.fulfillment.domain.solution import VrpSolution
from hexcity.fulfillment.domain.solving import UNREACHABLE, SolverParams, must_serve_prize
from hexcity.fulfillment.errors import InvalidOrder
from hexcity.fulfillment.ports import RoadMatrix, VrpSolver
from hexcity.kernel import LatLng

MAX_PARCELS = 2_000
MAX_COURIERS = 500


class RouteGeometry(Protocol):
    def path(self, points: Sequence[LatLng], profile: str) -> list[tuple[float, float]]: ...


@dataclass(frozen=True, slots=True)
class Parcel:
    id: str
    location: LatLng
    size: int = 1
    tw_early_s: int = 0
    tw_late_s: int = UNBOUNDED
    service_s: int = 120


@dataclass(frozen=True, slots=True)
class Courier:
    id: str
    capacity: int
    shift_start_s: int = 8 * 3600
    shift_end_s: int = 20 * 3600


@dataclass(frozen=True, slots=True)
class PlannedStop:
    parcel_id: str
    location: LatLng
    eta_s: int  # service start
    arrival_s: int
    departure_s: int


@dataclass
class CourierRoute:
    courier_id: str
    stops: list[PlannedStop]
    start_s: int
    end_s: int
    duration_s: int
    distance_m: int
    geometry: list[tuple[float, float]] = field(default_factory=list)


@dataclass
class LastMilePlan:
    depot: LatLng
    routes: list[CourierRoute]
    unassigned: dict[str, str]  # parcel id -> reason
    parcels: dict[str, Parcel]
    couriers: dict[str, Courier]
    feasible: bool = True


class LastMilePlanner:
    def __init__(
        self, road: RoadMatrix, solver: VrpSolver, geometry: RouteGeometry | None = None, profile: str = "car"
    ) -> None:
        self.road = road
        self.solver = solver
        self.geometry = geometry
        self.profile = profile

    def plan(
        self, depot: LatLng, couriers: list[Courier], parcels: list[Parcel], params: SolverParams
    ) -> LastMilePlan:
        """Routes for the day's parcels. Raises InvalidOrder on duplicate ids or over the limits."""
        _check(couriers, parcels)
        points = [depot] + [p.location for p in parcels]
        durations, distances = self._matrices(points)
        prize = _prize(durations, parcels, couriers)
        problem = VrpProblem(
            distances=[distances],
            durations=[durations],
            depots=[Depot(0, name="depot")],
            vehicle_types=[_vehicle(c, 0, 0, c.shift_start_s) for c in couriers],
            jobs=[_job(p, i + 1, prize) for i, p in enumerate(parcels)],
        )
        solution = self.solver.solve(problem, params)
        return self._plan(depot, points, couriers, parcels, problem, solution, [0] * len(couriers))

    def insert_urgent(
        self,
        plan: LastMilePlan,
        positions: dict[str, tuple[LatLng, int]],
        pickup: Parcel,
        delivery: Parcel,
    ) -> tuple[LastMilePlan, str | None]:
        """Insert a pickup -> delivery pair into the running routes (cheapest feasible insertion).

        ``positions[courier] = (where it is or will be free, at what time)``; stops before that time
        are done. Returns the new plan and the courier chosen (None: no courier can make it, the
        pair is reported unassigned)."""
        running, points = self._running(plan, positions)
        base = len(points)
        points += [pickup.location, delivery.location]
        durations, _ = self._matrices(points)
        stop_p = RouteStop(
            pickup.id, base, pickup.tw_early_s, pickup.tw_late_s, pickup.service_s, delivery.size
        )
        stop_d = RouteStop(
            delivery.id, base + 1, delivery.tw_early_s, delivery.tw_late_s, delivery.service_s, -delivery.size
        )
        best = best_insertion(running, stop_p, stop_d, durations)
        parcels = {**plan.parcels, pickup.id: pickup, delivery.id: delivery}
        if best is None:
            unassigned = {**plan.unassigned, delivery.id: "no courier can pick it up and deliver it in time"}
            return LastMilePlan(
                plan.depot, plan.routes, unassigned, parcels, plan.couriers, plan.feasible
            ), None
        routes = []
        for route in plan.routes:
            if route.courier_id != best.courier_id:
                routes.append(route)
                continue
            done = [s for s in route.stops if s.departure_s <= positions[route.courier_id][1]]
            new_stops = [
                PlannedStop(s.id, points[s.location], eta, eta, eta + s.service_s)
                for s, eta in zip(best.stops, best.etas_s, strict=True)
            ]
            routes.append(
                CourierRoute(
                    route.courier_id,
                    done + new_stops,
                    route.start_s,
                    route.end_s,
                    route.duration_s,
                    route.distance_m,
                )
            )
        return LastMilePlan(
            plan.depot, routes, dict(plan.unassigned), parcels, plan.couriers, plan.feasible
        ), best.courier_id

    def replan_late(
        self,
        plan: LastMilePlan,
        courier_id: str,
        position: LatLng,
        free_at_s: int,
        delivered: set[str],
        params: SolverParams,
    ) -> LastMilePlan:
        """Re-sequence ``courier_id``'s parcels not in ``delivered`` from ``position`` at ``free_at_s``;
        parcels it can no longer make in time are reported (reason prefixed ``late: ``)."""
        route = next((r for r in plan.routes if r.courier_id == courier_id), None)
        if route is None:
            raise InvalidOrder(f"courier {courier_id} has no route")
        remaining = [plan.parcels[s.parcel_id] for s in route.stops if s.parcel_id not in delivered]
        courier = plan.couriers[courier_id]
        points = [plan.depot, position] + [p.location for p in remaining]
        durations, distances = self._matrices(points)
        prize = _prize(durations, remaining, [courier])
        problem = VrpProblem(
            distances=[distances],
            durations=[durations],
            depots=[Depot(0, name="depot"), Depot(1, name="here")],
            vehicle_types=[_vehicle(courier, 1, 0, free_at_s)],
            jobs=[_job(p, i + 2, prize) for i, p in enumerate(remaining)],
        )
        solution = self.solver.solve(problem, params)
        fresh = self._plan(plan.depot, points, [courier], remaining, problem, solution, [1])
        done = [s for s in route.stops if s.parcel_id in delivered]
        for new in fresh.routes:
            new.stops = done + new.stops
        if not fresh.routes:  # nothing left it can make: keep what it has done
            fresh.routes = [CourierRoute(courier_id, done, route.start_s, free_at_s, 0, 0)]
        routes = [r for r in plan.routes if r.courier_id != courier_id] + fresh.routes
        unassigned = {**plan.unassigned, **{k: f"late: {v}" for k, v in fresh.unassigned.items()}}
        return LastMilePlan(plan.depot, routes, unassigned, plan.parcels, plan.couriers, fresh.feasible)

    # ---- helpers --------------------------------------------------------------------------------
    def _matrices(self, points: list[LatLng]) -> tuple[I64, I64]:
        travel = self.road.matrix(points, self.profile)
        return to_int_matrix(travel.durations_s), to_int_matrix(travel.distances_m)

    def _plan(
        self,
        depot: LatLng,
        points: list[LatLng],
        couriers: list[Courier],
        parcels: list[Parcel],
        problem: VrpProblem,
        solution: VrpSolution,
        starts: list[int],
    ) -> LastMilePlan:
        routes = []
        for r in solution.routes:
            courier = couriers[r.vehicle_type]
            stops = [
                PlannedStop(
                    parcels[s.index].id,
                    points[s.location],
                    s.start,
                    s.arrival,
                    s.start + parcels[s.index].service_s,
                )
                for s in r.stops
            ]
            path: list[tuple[float, float]] = []
            if self.geometry is not None:
                waypoints = [points[starts[r.vehicle_type]]] + [points[s.location] for s in r.stops] + [depot]
                path = self.geometry.path(waypoints, self.profile)
            routes.append(
                CourierRoute(courier.id, stops, r.start_time, r.end_time, r.duration, r.distance, path)
            )
        unassigned = {parcels[u.index].id: u.reason for u in solution.unassigned}
        return LastMilePlan(
            depot,
            routes,
            unassigned,
            {p.id: p for p in parcels},
            {c.id: c for c in couriers},
            solution.feasible,
        )

    def _running(
        self, plan: LastMilePlan, positions: dict[str, tuple[LatLng, int]]
    ) -> tuple[list[RunningRoute], list[LatLng]]:
        points: list[LatLng] = [plan.depot]
        running = []
        for route in plan.routes:
            if route.courier_id not in positions:
                continue
            where, at_s = positions[route.courier_id]
            points.append(where)
            position = len(points) - 1
            stops = []
            for s in route.stops:
                if s.departure_s <= at_s:
                    continue
                parcel = plan.parcels[s.parcel_id]
                points.append(s.location)
                stops.append(
                    RouteStop(
                        s.parcel_id, len(points) - 1, parcel.tw_early_s, parcel.tw_late_s, parcel.service_s
                    )
                )
            courier = plan.couriers[route.courier_id]
            on_board = sum(plan.parcels[s.id].size for s in stops)
            running.append(
                RunningRoute(
                    courier.id,
                    position,
                    at_s,
                    0,
                    courier.shift_end_s,
                    courier.capacity,
                    on_board,
                    tuple(stops),
                )
            )
        return running, points


def _check(couriers: list[Courier], parcels: list[Parcel]) -> None:
    if not couriers or len(couriers) > MAX_COURIERS or len(parcels) > MAX_PARCELS:
        raise InvalidOrder(f"1..{MAX_COURIERS} couriers and at most {MAX_PARCELS} parcels per plan")
    for name, ids in (("courier", [c.id for c in couriers]), ("parcel", [p.id for p in parcels])):
        if len(set(ids)) != len(ids):
            raise InvalidOrder(f"duplicate {name} id")
    for p in parcels:
        if p.size < 0 or p.service_s < 0 or p.tw_early_s > p.tw_late_s:
            raise InvalidOrder(f"parcel {p.id}: size and service must be >= 0 and the window ordered")


def _vehicle(c: Courier, start: int, end: int, free_at_s: int) -> VehicleType:
    return VehicleType(
        count=1,
        capacity=(c.capacity,),
        start_depot=start,
        end_depot=end,
        tw_early=max(free_at_s, c.shift_start_s),
        tw_late=c.shift_end_s,
        unit_distance_cost=0,
        unit_duration_cost=1,
        name=c.id,
    )


def _job(p: Parcel, location: int, prize: int) -> Job:
    return Job(
        location=location,
        delivery=(p.size,),
        service=p.service_s,
        tw_early=p.tw_early_s,
        tw_late=p.tw_late_s,
        required=False,
        prize=prize,
        name=p.id,
    )


def _prize(durations: I64, parcels: list[Parcel], couriers: list[Courier]) -> int:
    vehicles = [_vehicle(c, 0, 0, c.shift_start_s) for c in couriers]
    services = max((p.service_s for p in parcels), default=0)
    waits = max((p.tw_early_s for p in parcels), default=0)
    return must_serve_prize([durations], [durations], vehicles, services, waits)


def to_int_matrix(matrix: object) -> I64:
    """Seconds or metres as int64, rounded; nan/inf become UNREACHABLE."""
    values = np.asarray(matrix, dtype=np.float64)
    out = np.where(np.isfinite(values), np.round(values), float(UNREACHABLE)).astype(np.int64)
    return np.minimum(out, UNREACHABLE)
