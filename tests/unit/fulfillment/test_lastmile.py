"""Last mile on the real Andorra road network (graph built once per session, about 2 s)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from hexcity.fulfillment.adapters.pyvrp_solver import PyVrpSolver
from hexcity.fulfillment.adapters.road_matrix import RoutingRoadMatrix, StraightLineMatrix
from hexcity.fulfillment.domain.solving import REASON_UNREACHABLE, SolverParams
from hexcity.fulfillment.lastmile import Courier, LastMilePlanner, Parcel
from hexcity.kernel import LatLng, haversine_m
from hexcity.routing import RoutingEngine

pytestmark = pytest.mark.slow

DEPOT = LatLng(42.5063, 1.5218)  # Andorra la Vella
PLACES = {
    "escaldes": LatLng(42.5096, 1.5388),
    "encamp": LatLng(42.5345, 1.5803),
    "santjulia": LatLng(42.4637, 1.4913),
    "massana": LatLng(42.5450, 1.5148),
    "ordino": LatLng(42.5560, 1.5330),
}
PARAMS = SolverParams(time_limit_s=20, seed=1, max_iterations=500)
NINE = 9 * 3600


@pytest.fixture(scope="module")
def road(graph_dir: Callable[[str, str], Path]) -> RoutingRoadMatrix:
    engine = RoutingEngine.open(graph_dir("andorra", "car"))
    return RoutingRoadMatrix({"car": engine})


def parcels() -> list[Parcel]:
    return [Parcel(name, where, size=1, service_s=120) for name, where in PLACES.items()]


def test_routes_on_the_road_network_with_etas_and_geometry(road: RoutingRoadMatrix) -> None:
    planner = LastMilePlanner(road, PyVrpSolver(), road)
    couriers = [Courier("c1", capacity=3, shift_start_s=NINE), Courier("c2", capacity=3, shift_start_s=NINE)]
    plan = planner.plan(DEPOT, couriers, parcels(), PARAMS)
    assert plan.unassigned == {}
    served = sorted(s.parcel_id for r in plan.routes for s in r.stops)
    assert served == sorted(PLACES)
    travel = road.matrix([DEPOT, *PLACES.values()], "car")
    names = list(PLACES)
    for route in plan.routes:
        assert len(route.stops) <= 3
        previous, leave = 0, route.start_s
        for stop in route.stops:
            here = names.index(stop.parcel_id) + 1
            # the ETA is the road duration from the previous stop, not a straight line
            assert stop.arrival_s == leave + round(travel.durations_s[previous, here])
            previous, leave = here, stop.departure_s
        assert len(route.geometry) > 10
        lat, lng = route.geometry[0]
        assert haversine_m(LatLng(lat, lng), DEPOT) < 300


def test_unreachable_address_is_reported_not_dropped(road: RoutingRoadMatrix) -> None:
    planner = LastMilePlanner(road, PyVrpSolver(), road)
    sea = Parcel("sea", LatLng(42.0, 3.5))  # far from any Andorran road
    plan = planner.plan(DEPOT, [Courier("c1", capacity=10, shift_start_s=NINE)], [*parcels(), sea], PARAMS)
    assert plan.unassigned == {"sea": REASON_UNREACHABLE}
    assert sum(len(r.stops) for r in plan.routes) == 5


def test_urgent_order_is_inserted_pickup_before_delivery(road: RoutingRoadMatrix) -> None:
    planner = LastMilePlanner(road, PyVrpSolver(), road)
    couriers = [Courier("c1", capacity=4, shift_start_s=NINE), Courier("c2", capacity=4, shift_start_s=NINE)]
    plan = planner.plan(DEPOT, couriers, parcels(), PARAMS)
    now = NINE + 300
    positions = {r.courier_id: (DEPOT, now) for r in plan.routes}
    shop = Parcel("shop-pickup", LatLng(42.5085, 1.5300), size=0, service_s=60)
    customer = Parcel("urgent", PLACES["escaldes"], size=1, tw_late_s=now + 3600, service_s=60)
    new_plan, courier = planner.insert_urgent(plan, positions, shop, customer)
    assert courier is not None
    route = next(r for r in new_plan.routes if r.courier_id == courier)
    ids = [s.parcel_id for s in route.stops]
    assert ids.index("shop-pickup") < ids.index("urgent")
    assert next(s for s in route.stops if s.parcel_id == "urgent").eta_s <= now + 3600
    impossible = Parcel("too-late", PLACES["santjulia"], size=1, tw_late_s=now + 10, service_s=60)
    same, nobody = planner.insert_urgent(plan, positions, shop, impossible)
    assert nobody is None
    assert same.unassigned["too-late"] == "no courier can pick it up and deliver it in time"


def test_late_courier_is_resequenced_and_misses_are_reported(road: RoutingRoadMatrix) -> None:
    planner = LastMilePlanner(road, PyVrpSolver(), road)
    deadline = NINE + 3600  # every parcel by 10:00; the whole tour takes about 55 min
    tight = [Parcel(n, w, tw_late_s=deadline, service_s=120) for n, w in PLACES.items()]
    plan = planner.plan(DEPOT, [Courier("c1", capacity=10, shift_start_s=NINE)], tight, PARAMS)
    assert plan.unassigned == {}
    first = plan.routes[0].stops[0]
    # stuck in traffic for 40 minutes after its first stop
    late = planner.replan_late(
        plan, "c1", first.location, first.departure_s + 2400, {first.parcel_id}, PARAMS
    )
    (route,) = late.routes
    assert route.stops[0] == first
    served = {s.parcel_id for s in route.stops}
    assert served | set(late.unassigned) == set(PLACES)
    assert late.unassigned, "40 minutes late on a 55 minute tour with a 60 minute deadline"
    assert all(reason.startswith("late: ") for reason in late.unassigned.values())
    assert all(first.departure_s + 2400 < s.eta_s <= deadline for s in route.stops[1:])


def test_road_etas_differ_from_straight_lines(road: RoutingRoadMatrix) -> None:
    points = [DEPOT, PLACES["ordino"]]
    by_road = road.matrix(points, "car").distances_m[0, 1]
    straight = StraightLineMatrix(detour_factor=1.0).matrix(points, "car").distances_m[0, 1]
    assert by_road > 1.2 * straight  # mountain roads wind
