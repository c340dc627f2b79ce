"""VROOM's solution JSON from our solution (see :mod:`hexcity.fulfillment.vroom` for the format notes).

Steps carry arrival, waiting_time, setup/service, load after the step and the cumulated travel
duration and distance; unassigned tasks carry a ``reason`` (our extension); a job with several time
windows is reported once.
"""

from __future__ import annotations

from typing import Any

from hexcity.fulfillment.domain.problem import VrpProblem
from hexcity.fulfillment.domain.solution import PlannedRoute, Stop, VrpSolution, replay_route
from hexcity.fulfillment.vroom import VroomIndex
from hexcity.fulfillment.vroom_schema import VroomStep, VroomVehicle


def solution_to_vroom(
    problem: VrpProblem, index: VroomIndex, solution: VrpSolution, solving_s: float
) -> dict[str, Any]:
    """VROOM's solution JSON (plus ``reason`` per unassigned task and hexcity ``stats``)."""
    routes = [_route_out(problem, index, r) for r in solution.routes]
    unassigned = []
    reported: set[int] = set()
    for u in sorted(solution.unassigned, key=lambda u: (u.kind, u.index)):
        if u.kind == "job":
            vi = index.job_of[u.index]
            if vi in reported:  # another time window of the same job
                continue
            reported.add(vi)
            job = index.jobs[vi]
            unassigned.append(_unassigned_out(job, "job", u.reason, index, problem.jobs[u.index].location))
        else:
            ship = index.shipments[u.index]
            unassigned.append(
                _unassigned_out(
                    ship.pickup, "pickup", u.reason, index, problem.shipments[u.index].pickup_location
                )
            )
            unassigned.append(
                _unassigned_out(
                    ship.delivery, "delivery", u.reason, index, problem.shipments[u.index].delivery_location
                )
            )
    dims = max(problem.num_dimensions, 1)
    summary = {
        "cost": sum(r["cost"] for r in routes),
        "routes": len(routes),
        "unassigned": len(unassigned),
        "delivery": [sum(r["delivery"][d] for r in routes) for d in range(dims)],
        "pickup": [sum(r["pickup"][d] for r in routes) for d in range(dims)],
        "setup": sum(r["setup"] for r in routes),
        "service": sum(r["service"] for r in routes),
        "duration": sum(r["duration"] for r in routes),
        "waiting_time": sum(r["waiting_time"] for r in routes),
        "priority": sum(r["priority"] for r in routes),
        "distance": sum(r["distance"] for r in routes),
        "violations": [],
        "computing_times": {"loading": 0, "solving": round(solving_s * 1000), "routing": 0},
    }
    return {
        "code": 0,
        "summary": summary,
        "unassigned": unassigned,
        "routes": routes,
        "stats": {
            "backend": solution.stats.backend,
            "seed": solution.stats.seed,
            "iterations": solution.stats.iterations,
            "runtime_s": round(solution.stats.runtime_s, 3),
            "feasible": solution.feasible,
            "violations": solution.violations,
        },
    }


def _route_out(problem: VrpProblem, index: VroomIndex, route: PlannedRoute) -> dict[str, Any]:
    vtype = problem.vehicle_types[route.vehicle_type]
    vehicle = index.vehicles[route.vehicle_type]
    replay = replay_route(problem, route)
    dur = problem.durations[vtype.profile]
    dist = problem.distances[vtype.profile]
    dims = max(problem.num_dimensions, 1)
    initial = [0] * dims
    for stop in route.stops:
        if stop.kind == "job":
            for d, q in enumerate(problem.jobs[stop.index].delivery):
                initial[d] += q
    steps: list[dict[str, Any]] = []
    here = problem.depots[vtype.start_depot].location
    travel = distance = 0
    if here != index.virtual:
        steps.append(
            {
                "type": "start",
                **index.location_out[here],
                "setup": 0,
                "service": 0,
                "waiting_time": 0,
                "load": initial,
                "arrival": replay.start_time,
                "duration": 0,
                "distance": 0,
            }
        )
    totals = {"setup": 0, "service": 0, "waiting_time": 0, "priority": 0}
    delivered = [0] * dims
    picked = [0] * dims
    for stop in replay.stops:
        travel += int(dur[here, stop.location])
        distance += int(dist[here, stop.location])
        here = stop.location
        source, task_type, amounts = _task(index, problem, stop)
        priority = (
            index.jobs[index.job_of[stop.index]].priority
            if stop.kind == "job"
            else index.shipments[stop.index].priority
        )
        for d, q in enumerate(amounts[0]):
            delivered[d] += q
        for d, q in enumerate(amounts[1]):
            picked[d] += q
        totals["setup"] += source.setup
        totals["service"] += source.service
        totals["waiting_time"] += stop.waiting
        totals["priority"] += priority if stop.kind != "delivery" else 0
        step = {
            "type": task_type,
            "id": source.id,
            **index.location_out[stop.location],
            "setup": source.setup,
            "service": source.service,
            "waiting_time": stop.waiting,
            "load": list(stop.load) or [0] * dims,
            "arrival": stop.arrival,
            "duration": travel,
            "distance": distance,
        }
        if source.description is not None:
            step["description"] = source.description
        steps.append(step)
    end = problem.depots[vtype.end_depot].location
    travel += int(dur[here, end])
    distance += int(dist[here, end])
    if end != index.virtual:
        steps.append(
            {
                "type": "end",
                **index.location_out[end],
                "setup": 0,
                "service": 0,
                "waiting_time": 0,
                "load": list(replay.stops[-1].load) if replay.stops else initial,
                "arrival": replay.end_time,
                "duration": travel,
                "distance": distance,
            }
        )
    out: dict[str, Any] = {
        "vehicle": vehicle.id,
        "cost": _travel_cost(vehicle, travel, distance),
        "delivery": delivered,
        "pickup": picked,
        **totals,
        "duration": travel,
        "distance": distance,
        "steps": steps,
        "violations": [],
    }
    if vehicle.description is not None:
        out["description"] = vehicle.description
    return out


def _task(
    index: VroomIndex, problem: VrpProblem, stop: Stop
) -> tuple[VroomStep, str, tuple[tuple[int, ...], tuple[int, ...]]]:
    if stop.kind == "job":
        job = problem.jobs[stop.index]
        return index.jobs[index.job_of[stop.index]], "job", (job.delivery, job.pickup)
    ship = index.shipments[stop.index]
    amount = problem.shipments[stop.index].amount
    if stop.kind == "pickup":
        return ship.pickup, "pickup", ((), amount)
    return ship.delivery, "delivery", (amount, ())


def _unassigned_out(
    step: VroomStep, task_type: str, reason: str, index: VroomIndex, location: int
) -> dict[str, Any]:
    out: dict[str, Any] = {"id": step.id, "type": task_type, **index.location_out[location], "reason": reason}
    if step.description is not None:
        out["description"] = step.description
    return out


def _travel_cost(vehicle: VroomVehicle, duration_s: int, distance_m: int) -> int:
    """VROOM's route cost: fixed + per_hour on travel time + per_km on distance (no service, no wait)."""
    costs = vehicle.costs
    return costs.fixed + round(costs.per_hour * duration_s / 3600 + costs.per_km * distance_m / 1000)
