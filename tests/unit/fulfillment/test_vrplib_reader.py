from __future__ import annotations

import math
from pathlib import Path

import pytest

from hexcity.fulfillment.adapters.vrplib_reader import read_vrplib, read_vrplib_solution
from hexcity.fulfillment.domain.solution import check_solution, replay_route
from hexcity.fulfillment.errors import InvalidProblem

VRP = Path(__file__).resolve().parents[2] / "data" / "vrp"  # copies of the instances, see PROVENANCE.md


def test_solomon_uses_dimacs_truncation() -> None:
    problem = read_vrplib(VRP / "vrptw" / "C101.vrp")
    assert problem.objective.convention == "dimacs"
    assert problem.objective.scale == 10
    assert len(problem.jobs) == 100
    assert problem.vehicle_types[0].count == 25
    assert problem.vehicle_types[0].capacity == (200,)
    # depot (40, 50) -> client 1 (45, 68): sqrt(349) = 18.68 -> 186 in tenths, truncated
    assert problem.distances[0][0, 1] == math.floor(10 * math.hypot(5, 18)) == 186
    assert problem.jobs[0].service == 900
    assert (problem.jobs[0].tw_early, problem.jobs[0].tw_late) == (9120, 9670)
    assert problem.vehicle_types[0].tw_late == 12360


def test_x_instance_rounds_and_has_unlimited_fleet() -> None:
    problem = read_vrplib(VRP / "cvrp" / "X-n101-k25.vrp")
    assert problem.objective.convention == "round"
    assert len(problem.jobs) == 100
    assert problem.vehicle_types[0].count == 100
    assert problem.vehicle_types[0].capacity == (206,)


def test_li_lim_pairs_are_shipments_scaled_by_1000() -> None:
    problem = read_vrplib(VRP / "pdptw" / "lc101.vrp")
    assert problem.objective.convention == "exact"
    assert len(problem.shipments) == 53
    assert problem.jobs == []
    first = problem.shipments[0]
    assert first.amount[0] > 0
    assert problem.objective.text(828937) == "828.937"


@pytest.mark.parametrize(
    ("folder", "name", "cost"),
    [
        ("cvrp", "X-n101-k25", 27591),
        ("vrptw", "C101", 8273),
        ("vrptw", "R101", 16377),
        ("pdptw", "lc101", 828937),
    ],
)
def test_published_solutions_pass_the_independent_checker(folder: str, name: str, cost: int) -> None:
    problem = read_vrplib(VRP / folder / f"{name}.vrp")
    solution = read_vrplib_solution(VRP / folder / f"{name}.sol", problem)
    assert solution.cost == cost
    assert sum(replay_route(problem, r).cost for r in solution.routes) == cost
    assert check_solution(problem, solution) == []


def test_unreadable_file_is_an_invalid_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.vrp"
    bad.write_text("NAME : bad\nDIMENSION : 1\n")
    with pytest.raises(InvalidProblem):
        read_vrplib(bad)
    with pytest.raises(InvalidProblem):
        read_vrplib(tmp_path / "missing.vrp")
