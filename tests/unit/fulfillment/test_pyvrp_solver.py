from __future__ import annotations

from pathlib import Path

import numpy as np
from tests.unit.fulfillment.helpers import line_matrix, line_problem

from hexcity.fulfillment.adapters.ortools_solver import OrToolsSolver
from hexcity.fulfillment.adapters.pyvrp_solver import PyVrpSolver
from hexcity.fulfillment.adapters.vrplib_reader import read_vrplib
from hexcity.fulfillment.domain.problem import Depot, Job, Shipment, VehicleType, VrpProblem
from hexcity.fulfillment.domain.solution import check_solution
from hexcity.fulfillment.domain.solving import (
    REASON_CAPACITY,
    REASON_SKILLS,
    REASON_TIME_WINDOW,
    REASON_UNREACHABLE,
    UNREACHABLE,
    SolverParams,
)

VRP = Path(__file__).resolve().parents[2] / "data" / "vrp"  # copies of the instances, see PROVENANCE.md
FAST = SolverParams(time_limit_s=20, seed=3, max_iterations=300)


def _routes(solution: object) -> list[list[tuple[str, int]]]:
    return [[(s.kind, s.index) for s in r.stops] for r in solution.routes]  # type: ignore[attr-defined]


def test_capacity_splits_the_line_into_two_optimal_routes() -> None:
    problem = line_problem()  # 4 jobs of 3 on a line, capacity 10 -> at most 3 per vehicle
    solution = PyVrpSolver().solve(problem, FAST)
    assert solution.feasible
    assert check_solution(problem, solution) == []
    # best: {10} alone (20) + {20, 30, 40} (80) = 100
    assert solution.cost == 100
    assert sorted(len(r.stops) for r in solution.routes) == [1, 3]


def test_same_seed_same_iterations_same_routes() -> None:
    problem = read_vrplib(VRP / "vrptw" / "C101.vrp")
    params = SolverParams(time_limit_s=60, seed=7, max_iterations=400)
    first = PyVrpSolver().solve(problem, params)
    second = PyVrpSolver().solve(problem, params)
    assert _routes(first) == _routes(second)
    assert first.cost == second.cost
    assert first.feasible and check_solution(problem, first) == []


def test_stops_no_vehicle_can_serve_are_reported_with_reasons() -> None:
    m = line_matrix()
    m[0, 4] = m[4, 0] = UNREACHABLE
    problem = VrpProblem(
        distances=[m],
        durations=[m],
        depots=[Depot(0)],
        vehicle_types=[VehicleType(count=2, capacity=(10,), tw_late=100)],
        jobs=[
            Job(1, delivery=(11,)),  # too big
            Job(2, delivery=(1,), tw_late=5),  # cannot arrive by 5
            Job(4, delivery=(1,)),  # no road
            Job(3, delivery=(1,)),  # fine
        ],
    )
    solution = PyVrpSolver().solve(problem, FAST)
    reasons = {u.index: u.reason for u in solution.unassigned}
    assert reasons == {0: REASON_CAPACITY, 1: REASON_TIME_WINDOW, 2: REASON_UNREACHABLE}
    assert _routes(solution) == [[("job", 3)]]
    assert check_solution(problem, solution) == []


def test_pickup_before_delivery_on_the_same_route() -> None:
    problem = line_problem(
        jobs=[],
        shipments=[Shipment(4, 1, amount=(5,)), Shipment(2, 3, amount=(5,))],
        vehicles=[VehicleType(count=2, capacity=(5,))],
    )
    solution = PyVrpSolver().solve(problem, FAST)
    assert solution.feasible and check_solution(problem, solution) == []
    for route in solution.routes:
        kinds = [(s.kind, s.index) for s in route.stops]
        for _, index in kinds:
            assert kinds.index(("pickup", index)) < kinds.index(("delivery", index))


def test_two_depots_each_vehicle_serves_its_side() -> None:
    m = line_matrix()
    problem = VrpProblem(
        distances=[m],
        durations=[m],
        depots=[Depot(0), Depot(4)],
        vehicle_types=[VehicleType(1, (10,), 0, 0), VehicleType(1, (10,), 1, 1)],
        jobs=[Job(1, delivery=(5,)), Job(3, delivery=(5,))],
    )
    solution = PyVrpSolver().solve(problem, FAST)
    assert solution.cost == 40  # 0 -> 10 -> 0 and 40 -> 30 -> 40
    assert {(r.vehicle_type, r.stops[0].location) for r in solution.routes} == {(0, 1), (1, 3)}


def test_allowed_vehicle_types_restrict_who_serves_a_stop() -> None:
    problem = line_problem(
        jobs=[Job(1, delivery=(1,)), Job(2, delivery=(1,))],
        vehicles=[VehicleType(1, (10,), name="a"), VehicleType(1, (10,), name="b")],
    )
    solution = PyVrpSolver().solve(problem, FAST, {("job", 0): (1,), ("job", 1): ()})
    assert [u.reason for u in solution.unassigned] == [REASON_SKILLS]
    assert [(r.vehicle_type, [s.index for s in r.stops]) for r in solution.routes] == [(1, [0])]


def test_optional_stop_not_worth_its_prize_is_dropped() -> None:
    problem = line_problem(jobs=[Job(1, delivery=(1,)), Job(4, delivery=(1,), required=False, prize=5)])
    solution = PyVrpSolver().solve(problem, FAST)
    assert [(u.kind, u.index) for u in solution.unassigned] == [("job", 1)]
    assert solution.unassigned[0].reason.startswith("dropped")
    assert solution.cost == 20


def test_ortools_backend_passes_the_checker() -> None:
    problem = line_problem(shipments=[Shipment(1, 2, amount=(1,))], vehicles=[VehicleType(2, (10,))])
    solution = OrToolsSolver().solve(problem, SolverParams(time_limit_s=1, seed=0))
    assert solution.feasible
    assert check_solution(problem, solution) == []
    # {shipment 10->20, 20, 30, 40} (80) + {10} (20): loads 9 + 1 <= 10
    assert solution.cost == 100
    assert np.isfinite(solution.stats.runtime_s)
