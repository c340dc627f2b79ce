"""Plans on the manual clock are a pure function of input + seed (issue 8 determinism): an
iteration-limited PyVRP search, CP-SAT without a wall-clock cap, and order times from the clock."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from hexcity.fulfillment import (
    AllocationService,
    BatchParams,
    Courier,
    FulfillmentSettings,
    InvalidProblem,
    LastMilePlanner,
    OrToolsSolver,
    Parcel,
    PyVrpSolver,
    SolverParams,
    SqlAllocationStore,
    StraightLineMatrix,
    VrpProblem,
    VrpService,
    VrpSolution,
    Warehouse,
)
from hexcity.fulfillment.settings import VIRTUAL_VRP_MAX_ITERATIONS
from hexcity.infra.sql import make_engine
from hexcity.kernel import LatLng, ManualClock

DEPOT = LatLng(42.5078, 1.5211)
START = 1_767_600_000.0  # 2026-01-05T08:00:00Z
NORTH, SOUTH, CUSTOMER = LatLng(49.42, 8.69), LatLng(49.38, 8.69), LatLng(49.41, 8.69)


def parcels(n: int, seed: int = 7) -> list[Parcel]:
    rng = random.Random(seed)
    return [
        Parcel(
            f"p{i:02d}",
            LatLng(DEPOT.lat + rng.uniform(-0.03, 0.03), DEPOT.lng + rng.uniform(-0.03, 0.03)),
            1,
            0,
            20 * 3600,
        )
        for i in range(n)
    ]


def test_settings_take_an_iteration_limit_and_the_virtual_clock_defaults_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HEXCITY_FULFILLMENT_VRP_MAX_ITERATIONS", raising=False)
    assert FulfillmentSettings().vrp_max_iterations is None
    virtual = FulfillmentSettings().for_virtual_clock()
    assert virtual.vrp_max_iterations == VIRTUAL_VRP_MAX_ITERATIONS == 500
    monkeypatch.setenv("HEXCITY_FULFILLMENT_VRP_MAX_ITERATIONS", "123")
    assert FulfillmentSettings().for_virtual_clock().vrp_max_iterations == 123  # an explicit value wins
    monkeypatch.setenv("HEXCITY_FULFILLMENT_VRP_MAX_ITERATIONS", "0")
    with pytest.raises(ValueError):
        FulfillmentSettings()


def test_the_same_plan_request_twice_gives_identical_routes_and_etas() -> None:
    settings = FulfillmentSettings(vrp_max_iterations=None).for_virtual_clock()
    params = VrpService(settings, PyVrpSolver()).params(seed=3)
    assert (params.max_iterations, params.seed) == (500, 3)
    planner = LastMilePlanner(StraightLineMatrix(), PyVrpSolver())
    couriers = [Courier(f"c{i}", 8) for i in range(3)]
    todo = parcels(20)

    def routes() -> list[tuple[str, int, int, list[tuple[str, int, int]]]]:
        plan = planner.plan(DEPOT, couriers, todo, params)
        assert not plan.unassigned
        return [
            (r.courier_id, r.start_s, r.end_s, [(s.parcel_id, s.eta_s, s.arrival_s) for s in r.stops])
            for r in plan.routes
        ]

    first, second = routes(), routes()
    assert first == second
    assert sum(len(stops) for *_, stops in first) == 20


def test_on_the_manual_clock_a_short_caller_budget_cannot_cut_the_search() -> None:
    settings = FulfillmentSettings(vrp_max_iterations=None, vrp_max_time_limit_s=60).for_virtual_clock()
    virtual = VrpService(settings, PyVrpSolver(), deterministic=True)
    params = virtual.params(time_limit_s=1.0, seed=2)
    assert (params.time_limit_s, params.max_iterations, params.seed) == (60, 500, 2)  # 60 s safety net
    with pytest.raises(InvalidProblem):
        virtual.params(time_limit_s=61)  # still validated
    wall = VrpService(settings, PyVrpSolver()).params(time_limit_s=1.0)
    assert (wall.time_limit_s, wall.max_iterations) == (1.0, 500)
    with pytest.raises(ValueError):
        VrpService(FulfillmentSettings(vrp_max_iterations=None), PyVrpSolver(), deterministic=True)


def test_ortools_stopped_by_its_solution_limit_repeats_its_routes() -> None:
    planner = LastMilePlanner(StraightLineMatrix(), OrToolsSolver())
    couriers = [Courier(f"c{i}", 8) for i in range(3)]
    params = SolverParams(time_limit_s=60, seed=0, max_iterations=100)
    todo = parcels(20)
    runs = []
    for _ in range(2):
        plan = planner.plan(DEPOT, couriers, todo, params)
        routes = [(r.courier_id, [(s.parcel_id, s.eta_s) for s in r.stops]) for r in plan.routes]
        runs.append((routes, sorted(plan.unassigned)))
    assert runs[0] == runs[1]
    served = sum(len(stops) for _, stops in runs[0][0])
    assert served > 0 and served + len(runs[0][1]) == 20  # every parcel routed or reported


def test_the_search_stops_at_the_iteration_limit_not_the_clock() -> None:
    settings = FulfillmentSettings(vrp_max_iterations=40, vrp_time_limit_s=60)
    service = VrpService(settings, PyVrpSolver())
    planner = LastMilePlanner(StraightLineMatrix(), service.solver)
    seen: list[int] = []

    class Recording(PyVrpSolver):
        def solve(
            self,
            problem: VrpProblem,
            params: SolverParams,
            allowed_vehicle_types: dict[tuple[str, int], tuple[int, ...]] | None = None,
        ) -> VrpSolution:
            solution = super().solve(problem, params, allowed_vehicle_types)
            seen.append(solution.stats.iterations)
            return solution

    planner.solver = Recording()
    planner.plan(DEPOT, [Courier("c0", 30)], parcels(12), service.params(seed=1))
    assert seen == [40]


def allocation_service(
    tmp_path: Path, clock: ManualClock, *, deterministic: bool = True
) -> AllocationService:
    store = SqlAllocationStore(make_engine(f"sqlite:///{tmp_path / 'f.db'}"))
    store.create_schema()
    store.put_warehouse(Warehouse("north", NORTH))
    store.put_warehouse(Warehouse("south", SOUTH))
    store.set_on_hand("north", "tea", 2, "receipt")
    store.set_on_hand("south", "tea", 5, "receipt")
    store.set_on_hand("south", "cup", 1, "receipt")
    return AllocationService(
        store, StraightLineMatrix(speed_m_s=10.0), clock=clock.now, deterministic=deterministic
    )


def test_an_orders_sla_deadline_comes_from_the_virtual_clock(tmp_path: Path) -> None:
    clock = ManualClock(START)  # 08:00 UTC
    svc = allocation_service(tmp_path, clock)
    clock.advance(2 * 3600 + 30)  # 10:00:30
    order = svc.new_order("o1", [("tea", 1)], CUSTOMER, "2h")
    assert order.placed_at_s == 10 * 3600 + 30
    svc.place_order(order)
    assert svc.explain("o1").deadline_s == 12 * 3600 + 30
    explicit = svc.new_order("o2", [("tea", 1)], CUSTOMER, "2h", placed_at_s=100)
    assert explicit.placed_at_s == 100  # a caller's own time still wins


def test_batch_reoptimisation_is_repeatable_without_a_wall_clock_cap(tmp_path: Path) -> None:
    reports = []
    for run in range(2):
        clock = ManualClock(START)
        svc = allocation_service(tmp_path / f"run{run}", clock)
        svc.store.set_on_hand("north", "cup", 0)
        svc.store.set_on_hand("south", "tea", 1)
        svc.store.set_on_hand("north", "tea", 1)
        svc.place_order(svc.new_order("o1", [("tea", 1)], LatLng(49.383, 8.69), "standard", 100))
        svc.place_order(svc.new_order("o2", [("cup", 1), ("tea", 1)], CUSTOMER, "2h", 200))
        report = svc.reoptimise(BatchParams(time_limit_s=5, seed=0))
        report.pop("runtime_s")
        allocations = {oid: svc.store.get_order(oid).allocation for oid in ("o1", "o2")}
        reports.append((report, {k: v.chosen.label() for k, v in allocations.items() if v is not None}))
    assert reports[0] == reports[1]
    assert reports[0][1] == {"o1": "single:north", "o2": "single:south"}
    with pytest.raises(ValueError):
        BatchParams(wall_cap_factor=0.5)
