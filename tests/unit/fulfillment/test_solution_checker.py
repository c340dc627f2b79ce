from __future__ import annotations

from dataclasses import replace

from tests.unit.fulfillment.helpers import line_problem

from hexcity.fulfillment.domain.problem import Job, Shipment, VehicleType
from hexcity.fulfillment.domain.solution import (
    PlannedRoute,
    SolverStats,
    Stop,
    Unassigned,
    VrpSolution,
    check_solution,
    replay_route,
)

STATS = SolverStats(0.0, 0, 0, "test")


def _solution(
    routes: list[PlannedRoute], cost: int, unassigned: list[Unassigned] | None = None
) -> VrpSolution:
    return VrpSolution(routes, unassigned or [], cost, True, STATS)


def _job_stop(i: int) -> Stop:
    return Stop("job", i, i + 1)


def test_a_valid_solution_has_no_violations_and_costs_the_matrix() -> None:
    problem = line_problem()
    routes = [PlannedRoute(0, [_job_stop(0), _job_stop(1), _job_stop(2)]), PlannedRoute(0, [_job_stop(3)])]
    # 0 -> 10 -> 20 -> 30 -> 0 is 60; 0 -> 40 -> 0 is 80
    assert check_solution(problem, _solution(routes, 140)) == []


def test_replay_gives_times_waits_and_loads() -> None:
    problem = line_problem(
        jobs=[Job(1, delivery=(3,), service=5, tw_early=25, tw_late=30), Job(2, delivery=(4,))]
    )
    replay = replay_route(problem, PlannedRoute(0, [Stop("job", 0, 1), Stop("job", 1, 2)]))
    first, second = replay.stops
    assert (first.arrival, first.start, first.waiting, first.load) == (10, 25, 15, (4,))
    assert (second.arrival, second.start, second.load) == (40, 40, (0,))
    assert (replay.distance, replay.end_time, replay.cost) == (40, 60, 40)


def test_every_broken_rule_is_reported() -> None:
    problem = line_problem(
        jobs=[Job(1, delivery=(8,), tw_late=5), Job(2, delivery=(8,)), Job(3), Job(4)],
        shipments=[Shipment(1, 3, amount=(1,))],
        vehicles=[VehicleType(count=1, capacity=(10,), tw_late=1000)],
    )
    routes = [
        PlannedRoute(0, [Stop("job", 0, 1), Stop("job", 1, 2), Stop("delivery", 0, 3), Stop("pickup", 0, 1)]),
        PlannedRoute(0, [Stop("job", 2, 3), Stop("job", 2, 3)]),
    ]
    violations = check_solution(problem, _solution(routes, 1))
    assert any("load 16 > capacity 10" in v for v in violations)
    assert any("job 0 starts at 10 > 5" in v for v in violations)
    assert any("delivery of shipment 0 before its pickup" in v for v in violations)
    assert any("job 2 served 2 times" in v for v in violations)
    assert any("job 3 neither served nor reported unassigned" in v for v in violations)
    assert any("vehicle type 0: 2 routes > 1" in v for v in violations)
    assert any(v.startswith("reported cost 1 != recomputed") for v in violations)


def test_reported_unassigned_jobs_are_not_violations() -> None:
    problem = line_problem()
    routes = [PlannedRoute(0, [_job_stop(0)])]
    unassigned = [Unassigned("job", i, "dropped") for i in (1, 2, 3)]
    assert check_solution(problem, _solution(routes, 20, unassigned)) == []


def test_shift_end_and_max_duration_are_checked() -> None:
    problem = line_problem(
        vehicles=[VehicleType(count=1, capacity=(20,), tw_late=70, max_duration=50, max_distance=60)]
    )
    routes = [PlannedRoute(0, [_job_stop(3)])]
    violations = check_solution(problem, _solution(routes, 80, [Unassigned("job", i, "x") for i in range(3)]))
    assert violations == [
        "route 0: returns at 80 > shift end 70",
        "route 0: duration 80 > 50",
        "route 0: distance 80 > 60",
    ]


def test_alternatives_of_a_group_are_served_at_most_once() -> None:
    jobs = [Job(1, group=0, tw_late=5), Job(1, group=0, tw_early=50), Job(2)]
    problem = replace(line_problem(jobs=jobs), groups=[True])
    one = [PlannedRoute(0, [Stop("job", 1, 1), Stop("job", 2, 2)])]
    assert check_solution(problem, _solution(one, 40)) == []  # job 0 needs no report: its group is served
    both = [PlannedRoute(0, [Stop("job", 0, 1), Stop("job", 1, 1), Stop("job", 2, 2)])]
    assert "job group 0: more than one alternative served" in check_solution(problem, _solution(both, 40))
    none = [PlannedRoute(0, [Stop("job", 2, 2)])]
    assert check_solution(problem, _solution(none, 40)) == [
        "job 0 neither served nor reported unassigned",
        "job 1 neither served nor reported unassigned",
    ]
