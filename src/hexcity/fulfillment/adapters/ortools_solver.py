"""The OR-Tools routing backend (the alternative to PyVRP, and the benchmark baseline).

First solution by PARALLEL_CHEAPEST_INSERTION (PATH_CHEAPEST_ARC finds nothing on tight windows),
then guided local search, always with a time limit. OR-Tools routing has no RNG seed: runs that
the time limit stops are not bit-reproducible; ``max_iterations`` becomes OR-Tools'
``solution_limit`` (solutions generated), and a search it stops gives the same routes every run.
Supported: capacities (all dimensions), time windows with service times, several depots and
vehicle types, pickup-and-delivery pairs, optional stops with prizes (as disjunction penalties),
max route duration. Not supported here: skills, max distance.
An unlimited fleet (VRPLIB X, count = number of stops) is capped at ``2 * lower bound + 5``
vehicles per type; the lower bound is total demand / capacity.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
from ortools.constraint_solver import pywrapcp, routing_enums_pb2

from hexcity.fulfillment.domain.problem import I64, UNBOUNDED, VrpProblem
from hexcity.fulfillment.domain.solution import (
    PlannedRoute,
    SolverStats,
    Stop,
    StopKind,
    Unassigned,
    VrpSolution,
    check_solution,
    replay_route,
)
from hexcity.fulfillment.domain.solving import REASON_DROPPED, SolverParams
from hexcity.fulfillment.errors import InvalidProblem

HORIZON_CAP = 1 << 40


class OrToolsSolver:
    backend = "ortools"

    def solve(
        self,
        problem: VrpProblem,
        params: SolverParams,
        allowed_vehicle_types: dict[tuple[str, int], tuple[int, ...]] | None = None,
    ) -> VrpSolution:
        """Solve ``problem``; required stops OR-Tools cannot place make the solution infeasible."""
        if allowed_vehicle_types or problem.groups:
            raise InvalidProblem("the OR-Tools backend supports neither skills nor job groups; use pyvrp")
        nodes: list[tuple[StopKind, int, int]] = []  # (kind, index, our location) per non-depot node
        nodes += [("job", i, j.location) for i, j in enumerate(problem.jobs)]
        for i, s in enumerate(problem.shipments):
            nodes += [("pickup", i, s.pickup_location), ("delivery", i, s.delivery_location)]
        n_depots = len(problem.depots)
        node_loc = [d.location for d in problem.depots] + [loc for _, _, loc in nodes]
        vehicles = _fleet(problem)
        starts = [problem.vehicle_types[t].start_depot for t in vehicles]
        ends = [problem.vehicle_types[t].end_depot for t in vehicles]
        manager = pywrapcp.RoutingIndexManager(len(node_loc), len(vehicles), starts, ends)
        routing = pywrapcp.RoutingModel(manager)
        profile = problem.vehicle_types[vehicles[0]].profile if vehicles else 0
        dist = problem.distances[profile][node_loc][:, node_loc]
        dur = problem.durations[profile][node_loc][:, node_loc]
        service = [0] * n_depots + [_service(problem, k, i) for k, i, _ in nodes]
        arc = routing.RegisterTransitMatrix(dist.tolist())
        routing.SetArcCostEvaluatorOfAllVehicles(arc)
        self._capacities(problem, routing, nodes, vehicles, n_depots)
        self._times(problem, routing, manager, nodes, vehicles, n_depots, dur, service)
        self._pairs(routing, manager, nodes, n_depots)
        self._optional(problem, routing, manager, nodes, n_depots)
        search = pywrapcp.DefaultRoutingSearchParameters()
        search.first_solution_strategy = routing_enums_pb2.FirstSolutionStrategy.PARALLEL_CHEAPEST_INSERTION
        search.local_search_metaheuristic = routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH
        search.time_limit.FromMilliseconds(int(params.time_limit_s * 1000))
        if params.max_iterations is not None:  # reproducible when this, not the clock, stops it
            search.solution_limit = params.max_iterations
        started = time.perf_counter()
        assignment = routing.SolveWithParameters(search)
        stats = SolverStats(time.perf_counter() - started, 0, params.seed, self.backend)
        if assignment is None:
            unassigned = [Unassigned("job", i, "solver found no solution") for i in range(len(problem.jobs))]
            unassigned += [
                Unassigned("shipment", i, "solver found no solution") for i in range(len(problem.shipments))
            ]
            return VrpSolution([], unassigned, 0, False, stats, ["no solution found"])
        return _read(problem, routing, manager, assignment, nodes, vehicles, n_depots, stats)

    @staticmethod
    def _capacities(
        problem: VrpProblem,
        routing: Any,
        nodes: list[tuple[StopKind, int, int]],
        vehicles: list[int],
        n_depots: int,
    ) -> None:
        """Load from 0: a job adds what it delivers plus what it picks up (exact for CVRP, where
        only deliveries exist; conservative for mixed jobs); a shipment adds at its pickup and
        frees at its delivery."""
        for d in range(problem.num_dimensions):
            demand = [0] * n_depots
            for kind, i, _ in nodes:
                if kind == "job":
                    job = problem.jobs[i]
                    demand.append(_at(job.pickup, d) + _at(job.delivery, d))
                else:
                    qty = _at(problem.shipments[i].amount, d)
                    demand.append(qty if kind == "pickup" else -qty)
            callback = routing.RegisterUnaryTransitVector(demand)
            caps = [min(_at(problem.vehicle_types[t].capacity, d), HORIZON_CAP) for t in vehicles]
            routing.AddDimensionWithVehicleCapacity(callback, 0, caps, True, f"load{d}")

    @staticmethod
    def _times(
        problem: VrpProblem,
        routing: Any,
        manager: Any,
        nodes: list[tuple[StopKind, int, int]],
        vehicles: list[int],
        n_depots: int,
        dur: I64,
        service: list[int],
    ) -> None:
        transit = (dur + np.asarray(service, dtype=np.int64)[:, None]).tolist()
        callback = routing.RegisterTransitMatrix(transit)
        horizon = min(max(v.tw_late for v in problem.vehicle_types), HORIZON_CAP)
        routing.AddDimension(callback, horizon, horizon, False, "time")
        dim = routing.GetDimensionOrDie("time")
        for node, (kind, i, _) in enumerate(nodes, start=n_depots):
            early, late = _window(problem, kind, i)
            dim.CumulVar(manager.NodeToIndex(node)).SetRange(early, min(late, horizon))
        for v, t in enumerate(vehicles):
            vt = problem.vehicle_types[t]
            dim.CumulVar(routing.Start(v)).SetRange(vt.tw_early, min(vt.tw_late, horizon))
            dim.CumulVar(routing.End(v)).SetRange(vt.tw_early, min(vt.tw_late, horizon))
            if vt.max_duration != UNBOUNDED:
                routing.solver().Add(
                    dim.CumulVar(routing.End(v)) - dim.CumulVar(routing.Start(v)) <= vt.max_duration
                )

    @staticmethod
    def _pairs(routing: Any, manager: Any, nodes: list[tuple[StopKind, int, int]], n_depots: int) -> None:
        time_dim = routing.GetDimensionOrDie("time")
        solver = routing.solver()
        for node, (kind, _, _) in enumerate(nodes, start=n_depots):
            if kind != "pickup":
                continue
            p, d = manager.NodeToIndex(node), manager.NodeToIndex(node + 1)
            routing.AddPickupAndDelivery(p, d)
            solver.Add(routing.VehicleVar(p) == routing.VehicleVar(d))
            solver.Add(time_dim.CumulVar(p) <= time_dim.CumulVar(d))

    @staticmethod
    def _optional(
        problem: VrpProblem, routing: Any, manager: Any, nodes: list[tuple[StopKind, int, int]], n_depots: int
    ) -> None:
        for node, (kind, i, _) in enumerate(nodes, start=n_depots):
            if kind == "job" and not problem.jobs[i].required:
                routing.AddDisjunction([manager.NodeToIndex(node)], problem.jobs[i].prize)
            elif kind == "pickup" and not problem.shipments[i].required:
                pair = [manager.NodeToIndex(node), manager.NodeToIndex(node + 1)]
                routing.AddDisjunction(pair, problem.shipments[i].prize, 2)


def _fleet(problem: VrpProblem) -> list[int]:
    """Vehicle type per OR-Tools vehicle; an unlimited VRPLIB fleet is capped (module docstring)."""
    n_stops = len(problem.jobs) + 2 * len(problem.shipments)
    out: list[int] = []
    for t, vt in enumerate(problem.vehicle_types):
        count = vt.count
        if count >= n_stops and vt.capacity:
            total = sum(_at(j.delivery, 0) + _at(j.pickup, 0) for j in problem.jobs)
            lower = math.ceil(total / max(vt.capacity[0], 1))
            count = min(count, 2 * lower + 5)
        out += [t] * count
    return out


def _at(amount: tuple[int, ...], d: int) -> int:
    return amount[d] if d < len(amount) else 0


def _service(problem: VrpProblem, kind: StopKind, index: int) -> int:
    if kind == "job":
        return problem.jobs[index].service
    ship = problem.shipments[index]
    return ship.pickup_service if kind == "pickup" else ship.delivery_service


def _window(problem: VrpProblem, kind: StopKind, index: int) -> tuple[int, int]:
    if kind == "job":
        return problem.jobs[index].tw_early, problem.jobs[index].tw_late
    ship = problem.shipments[index]
    if kind == "pickup":
        return ship.pickup_tw_early, ship.pickup_tw_late
    return ship.delivery_tw_early, ship.delivery_tw_late


def _read(
    problem: VrpProblem,
    routing: Any,
    manager: Any,
    assignment: Any,
    nodes: list[tuple[StopKind, int, int]],
    vehicles: list[int],
    n_depots: int,
    stats: SolverStats,
) -> VrpSolution:
    routes: list[PlannedRoute] = []
    served: set[tuple[str, int]] = set()
    for v, t in enumerate(vehicles):
        index = assignment.Value(routing.NextVar(routing.Start(v)))
        stops: list[Stop] = []
        while not routing.IsEnd(index):
            kind, i, loc = nodes[manager.IndexToNode(index) - n_depots]
            stops.append(Stop(kind, i, loc))
            served.add(("job" if kind == "job" else "shipment", i))
            index = assignment.Value(routing.NextVar(index))
        if stops:
            draft = PlannedRoute(t, stops, start_time=problem.vehicle_types[t].tw_early)
            replay = replay_route(problem, draft)
            routes.append(
                PlannedRoute(
                    t,
                    replay.stops,
                    replay.start_time,
                    replay.end_time,
                    replay.distance,
                    replay.duration,
                    replay.cost,
                )
            )
    unassigned = [
        Unassigned("job", i, REASON_DROPPED) for i in range(len(problem.jobs)) if ("job", i) not in served
    ]
    unassigned += [
        Unassigned("shipment", i, REASON_DROPPED)
        for i in range(len(problem.shipments))
        if ("shipment", i) not in served
    ]
    cost = sum(r.cost for r in routes)
    draft_solution = VrpSolution(routes, unassigned, cost, True, stats)
    violations = check_solution(problem, draft_solution)
    required_missing = any(
        (u.kind == "job" and problem.jobs[u.index].required)
        or (u.kind == "shipment" and problem.shipments[u.index].required)
        for u in unassigned
    )
    feasible = not violations and not required_missing
    return VrpSolution(routes, unassigned, cost, feasible, stats, violations)
