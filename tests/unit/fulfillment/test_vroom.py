from __future__ import annotations

import copy
from typing import Any

import pytest

from hexcity.fulfillment.adapters.pyvrp_solver import PyVrpSolver
from hexcity.fulfillment.adapters.road_matrix import StraightLineMatrix
from hexcity.fulfillment.domain.solving import (
    REASON_CAPACITY,
    REASON_SKILLS,
    REASON_TIME_WINDOW,
    SolverParams,
)
from hexcity.fulfillment.errors import InvalidProblem, ProblemTooBig
from hexcity.fulfillment.service import VrpService
from hexcity.fulfillment.settings import FulfillmentSettings
from hexcity.fulfillment.vroom import VroomLimits, parse_vroom

LINE = [[abs(a - b) * 10 for b in range(5)] for a in range(5)]
PARAMS = SolverParams(time_limit_s=20, seed=1, max_iterations=300)


def problem() -> dict[str, Any]:
    return {
        "vehicles": [
            {"id": 7, "start_index": 0, "end_index": 0, "capacity": [2], "skills": [1]},
            {"id": 8, "start_index": 4, "capacity": [5]},
        ],
        "jobs": [
            {"id": 1, "location_index": 1, "delivery": [1], "service": 5, "description": "first"},
            {"id": 2, "location_index": 2, "delivery": [1], "skills": [1]},
            {"id": 3, "location_index": 3, "delivery": [9]},
            {"id": 4, "location_index": 3, "delivery": [1], "time_windows": [[0, 5]]},
        ],
        "shipments": [
            {
                "amount": [1],
                "pickup": {"id": 10, "location_index": 3},
                "delivery": {"id": 11, "location_index": 1},
            }
        ],
        "matrices": {"car": {"durations": LINE, "distances": [[x * 100 for x in r] for r in LINE]}},
    }


def service(**kw: Any) -> VrpService:
    return VrpService(FulfillmentSettings(), PyVrpSolver(), **kw)


def test_vroom_problem_is_solved_in_vroom_shape() -> None:
    out = service().solve_vroom(problem(), PARAMS)
    assert out["code"] == 0
    assert {(u["id"], u["type"], u["reason"]) for u in out["unassigned"]} == {
        (3, "job", REASON_CAPACITY),
        (4, "job", REASON_TIME_WINDOW),
    }
    served = {(s["type"], s["id"]) for r in out["routes"] for s in r["steps"] if "id" in s}
    assert served == {("job", 1), ("job", 2), ("pickup", 10), ("delivery", 11)}
    for route in out["routes"]:
        steps = route["steps"]
        arrivals = [s["arrival"] for s in steps]
        assert arrivals == sorted(arrivals)
        assert route["duration"] == steps[-1]["duration"]
        assert route["distance"] == steps[-1]["distance"]
        assert route["cost"] == route["duration"]  # default costs: per_hour 3600 on travel time
        ids = [s.get("id") for s in steps]
        if 10 in ids:
            assert ids.index(10) < ids.index(11)
        if 2 in ids:
            assert route["vehicle"] == 7  # only vehicle 7 has skill 1
    summary = out["summary"]
    assert summary["cost"] == sum(r["cost"] for r in out["routes"])
    assert summary["unassigned"] == 2
    assert out["stats"]["feasible"] is True


def test_open_route_has_no_end_step() -> None:
    body = problem()
    body["jobs"] = [{"id": 1, "location_index": 3, "delivery": [1]}]
    body["shipments"] = []
    body["vehicles"] = [{"id": 8, "start_index": 4, "capacity": [5]}]
    out = service().solve_vroom(body, PARAMS)
    (route,) = out["routes"]
    assert [s["type"] for s in route["steps"]] == ["start", "job"]
    assert route["steps"][1]["arrival"] == 10
    assert route["duration"] == 10


def test_long_service_and_late_windows_do_not_make_tasks_droppable() -> None:
    body = problem()
    body["jobs"] = [
        {"id": 1, "location_index": 1, "service": 7200},
        {"id": 2, "location_index": 2, "time_windows": [[50_000, 60_000]]},
    ]
    body["shipments"] = []
    body["vehicles"] = [{"id": 7, "start_index": 0, "end_index": 0}]
    out = service().solve_vroom(body, PARAMS)
    assert out["unassigned"] == []
    (route,) = out["routes"]
    assert sorted(s["id"] for s in route["steps"] if "id" in s) == [1, 2]
    assert route["service"] == 7200
    assert route["cost"] == route["duration"] == 40


def test_several_time_windows_are_alternatives_served_once() -> None:
    body = problem()
    body["shipments"] = []
    body["vehicles"] = [{"id": 7, "start_index": 0, "end_index": 0, "capacity": [5]}]
    body["jobs"] = [
        # reachable at 20 s: only the second window can be met
        {"id": 1, "location_index": 2, "time_windows": [[0, 5], [100, 200], [300, 400]]},
        {"id": 2, "location_index": 3, "time_windows": [[0, 1], [2, 3]]},  # at 30 s: neither
    ]
    out = service().solve_vroom(body, PARAMS)
    assert [(u["id"], u["reason"]) for u in out["unassigned"]] == [(2, REASON_TIME_WINDOW)]
    (route,) = out["routes"]
    jobs = [s for s in route["steps"] if s["type"] == "job"]
    # it leaves the depot at 80 rather than waiting: arrives at 100 when the window opens
    assert [(s["id"], s["arrival"], s["waiting_time"]) for s in jobs] == [(1, 100, 0)]
    assert route["steps"][0]["arrival"] == 80


def test_job_without_a_skilled_vehicle_is_unassigned() -> None:
    body = problem()
    body["jobs"] = [{"id": 5, "location_index": 1, "skills": [9]}]
    body["shipments"] = []
    out = service().solve_vroom(body, PARAMS)
    assert out["unassigned"] == [{"id": 5, "type": "job", "location_index": 1, "reason": REASON_SKILLS}]
    assert out["routes"] == []


def test_coordinates_use_the_road_matrix_port() -> None:
    body: dict[str, Any] = {
        "vehicles": [{"id": 1, "start": [8.69, 49.41], "end": [8.69, 49.41], "capacity": [4]}],
        "jobs": [{"id": i, "location": [8.69 + 0.01 * i, 49.41], "delivery": [1]} for i in (1, 2, 3)],
    }
    out = service(road=StraightLineMatrix(speed_m_s=10.0, detour_factor=1.0)).solve_vroom(body, PARAMS)
    (route,) = out["routes"]
    assert [s.get("id") for s in route["steps"]] in ([None, 1, 2, 3, None], [None, 3, 2, 1, None])
    assert route["steps"][1]["location"] in ([8.70, 49.41], [8.72, 49.41])
    # 3 x 0.01 deg of longitude at 49.41 N out and back: about 4.35 km
    assert 4300 < route["distance"] < 4400


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: b["jobs"].append(dict(b["jobs"][0])), "duplicate job id"),
        (lambda b: b["jobs"][0].update(time_windows=[[0, 5]] * 11), "at most 10 time windows"),
        (lambda b: b["jobs"][0].update(time_windows=[[9, 5]]), "0 <= start <= end"),
        (
            lambda b: b["shipments"][0]["pickup"].update(time_windows=[[0, 5], [6, 9]]),
            "at most one time window",
        ),
        (lambda b: b["jobs"][0].update(location_index=9), "outside the 5x5 matrix"),
        (lambda b: b.pop("matrices"), "no 'matrices' given"),
        (lambda b: b["vehicles"][0].update(breaks=[{"id": 1}]), "not supported"),
        (lambda b: b["jobs"][0].update(delivery=[-1]), "must not be negative"),
        (lambda b: b["matrices"]["car"].update(durations=[[0, 1]]), "square matrix"),
        (lambda b: b.update(vehicles=[]), "vehicles"),
    ],
)
def test_bad_problems_are_refused_with_a_clear_message(change: Any, message: str) -> None:
    body = copy.deepcopy(problem())
    change(body)
    with pytest.raises(InvalidProblem, match=message):
        service().solve_vroom(body, PARAMS)


def test_too_many_tasks_is_refused_before_solving() -> None:
    body = problem()
    body["jobs"] = [{"id": i, "location_index": 1} for i in range(11)]
    with pytest.raises(ProblemTooBig):
        parse_vroom(body, VroomLimits(max_jobs=12))


def test_time_limit_is_clamped_by_settings() -> None:
    svc = VrpService(FulfillmentSettings(vrp_max_time_limit_s=5), PyVrpSolver())
    assert svc.params(2.5, 4) == SolverParams(time_limit_s=2.5, seed=4)
    with pytest.raises(InvalidProblem):
        svc.params(6)
