"""The fulfillment HTTP API through the real app (auth middleware, error mapping)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hexcity.api import create_app
from hexcity.fulfillment.adapters.pyvrp_solver import PyVrpSolver
from hexcity.fulfillment.adapters.road_matrix import StraightLineMatrix
from hexcity.fulfillment.adapters.sql_store import SqlAllocationStore
from hexcity.fulfillment.http import FulfillmentApi, build_fulfillment_router
from hexcity.fulfillment.lastmile import LastMilePlanner
from hexcity.fulfillment.service import AllocationService, VrpService
from hexcity.fulfillment.settings import FulfillmentSettings
from hexcity.infra.auth import AuthSettings, Role, mint_demo_token
from hexcity.infra.sql import make_engine
from hexcity.kernel import LatLng
from hexcity.platform import ModuleRuntime
from hexcity.routing import Limits, RoutingService

AUTH = AuthSettings(jwt_secret="fulfillment-http-test-" + "s" * 40, demo_mode=True)


def token(role: Role, subject: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_demo_token(AUTH, role, subject)}"}


ADMIN, RIDER = token(Role.ADMIN, "ops"), token(Role.RIDER, "r1")
LINE = [[abs(a - b) * 60 for b in range(4)] for a in range(4)]
PROBLEM = {
    "vehicles": [{"id": 1, "start_index": 0, "end_index": 0, "capacity": [2]}],
    "jobs": [{"id": j, "location_index": j, "delivery": [1]} for j in (1, 2, 3)],
    "matrices": {"car": {"durations": LINE}},
}


CLOCK_S = 1_767_600_000.0  # 2026-01-05T08:00:00Z: an order without placed_at_s is placed at 28,800 s


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = FulfillmentSettings(vrp_max_time_limit_s=5)
    road = StraightLineMatrix(speed_m_s=10.0)
    store = SqlAllocationStore(make_engine(f"sqlite:///{tmp_path / 'f.db'}"))
    store.create_schema()
    api = FulfillmentApi(
        VrpService(settings, PyVrpSolver(), road),
        AllocationService(store, road, clock=lambda: CLOCK_S),
        LastMilePlanner(road, PyVrpSolver()),
        max_body_bytes=50_000,
    )
    module = ModuleRuntime("fulfillment", [build_fulfillment_router(api)])
    app = create_app(RoutingService(Limits()), AUTH, None, [module])
    with TestClient(app) as c:
        yield c


def test_vroom_solve_over_http(client: TestClient) -> None:
    r = client.post("/vrp/v1/solve?time_limit_s=0.3&seed=2", json=PROBLEM, headers=ADMIN)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["code"] == 0
    # capacity 2: one job (the farthest, 3) is left out; serving 1 and 2 costs 2 x 120 = 240
    assert [u["id"] for u in out["unassigned"]] == [3]
    assert out["summary"]["cost"] == 240


def test_vroom_solve_refuses_bad_requests(client: TestClient) -> None:
    assert client.post("/vrp/v1/solve", json=PROBLEM, headers=RIDER).status_code == 403
    assert client.post("/vrp/v1/solve", json=PROBLEM).status_code == 401
    too_long = client.post("/vrp/v1/solve?time_limit_s=50", json=PROBLEM, headers=ADMIN)
    assert too_long.status_code == 400
    assert too_long.json()["code"] == "InvalidProblem"
    bad = client.post("/vrp/v1/solve", content=b"{nope", headers=ADMIN)
    assert (bad.status_code, bad.json()["code"]) == (400, "InvalidProblem")
    big = client.post("/vrp/v1/solve", content=b" " * 60_000, headers=ADMIN)
    assert (big.status_code, big.json()["code"]) == (413, "ProblemTooBig")
    no_vehicles = client.post("/vrp/v1/solve", json={"jobs": []}, headers=ADMIN)
    assert no_vehicles.status_code == 400
    assert "vehicles" in no_vehicles.json()["message"]


def test_order_placed_through_the_api_is_allocated_and_explained(client: TestClient) -> None:
    for wid, lat in (("north", 49.42), ("south", 49.38)):
        r = client.put(
            f"/fulfillment/v1/warehouses/{wid}", json={"location": {"lat": lat, "lng": 8.69}}, headers=ADMIN
        )
        assert r.status_code == 200, r.text
    assert client.put(
        "/fulfillment/v1/warehouses/north/stock/tea", json={"on_hand": 3}, headers=ADMIN
    ).json() == {
        "warehouse_id": "north",
        "sku": "tea",
        "on_hand": 3,
        "reserved": 0,
        "atp": 3,
    }
    order = {
        "id": "o1",
        "lines": [{"sku": "tea", "qty": 2}],
        "destination": {"lat": 49.41, "lng": 8.69},
        "sla": "2h",
    }
    r = client.post("/fulfillment/v1/orders", json=order, headers=ADMIN)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "allocated"
    assert body["allocation"]["label"] == "single:north"
    assert body["allocation"]["costs"]["total_minor"] == sum(
        body["allocation"]["costs"][k]
        for k in ("freight_minor", "labour_minor", "transfer_minor", "split_penalty_minor")
    )
    explained = client.get("/fulfillment/v1/orders/o1", headers=ADMIN).json()
    assert {k: explained[k] for k in body} == body
    assert explained["shipments"] == [
        {"parcel_id": "o1@north", "warehouse_id": "north", "status": "unplanned", "stop": None,
         "earlier_stops": []}
    ]  # fmt: skip
    assert explained["delivery"] == {
        "status": "allocated", "parcels": 1, "parcels_delivered": 0, "deadline_s": 28_800 + 7200,
        "delivered_at_s": None, "on_time": None,
    }  # fmt: skip
    assert [h["status"] for h in explained["history"]] == ["allocated"]
    assert explained["history"][0]["detail"]["decision"] == "single:north"
    listing = client.get("/fulfillment/v1/warehouses", headers=ADMIN).json()
    assert listing["items"][0]["stock"] == {"tea": {"on_hand": 3, "reserved": 2, "atp": 1}}
    picked = client.post("/fulfillment/v1/orders/o1/picked", headers=ADMIN).json()
    assert picked["status"] == "picked"
    report = client.post("/fulfillment/v1/reoptimise", json={"time_limit_s": 1}, headers=ADMIN).json()
    assert report["orders"] == 0


def test_bad_orders_are_refused_and_change_nothing(client: TestClient) -> None:
    client.put(
        "/fulfillment/v1/warehouses/north", json={"location": {"lat": 49.42, "lng": 8.69}}, headers=ADMIN
    )
    client.put("/fulfillment/v1/warehouses/north/stock/tea", json={"on_hand": 1}, headers=ADMIN)
    base = {"id": "o9", "destination": {"lat": 49.41, "lng": 8.69}, "sla": "standard"}
    zero = client.post(
        "/fulfillment/v1/orders", json={**base, "lines": [{"sku": "tea", "qty": 0}]}, headers=ADMIN
    )
    assert (zero.status_code, zero.json()["code"]) == (400, "InvalidOrder")
    unknown = client.post(
        "/fulfillment/v1/orders", json={**base, "lines": [{"sku": "mug", "qty": 1}]}, headers=ADMIN
    )
    assert (unknown.status_code, unknown.json()["code"]) == (400, "UnknownSku")
    assert client.get("/fulfillment/v1/orders/o9", headers=ADMIN).status_code == 404
    short = client.post(
        "/fulfillment/v1/orders", json={**base, "lines": [{"sku": "tea", "qty": 5}]}, headers=ADMIN
    )
    assert short.status_code == 201
    assert (short.json()["status"], short.json()["reason"]) == (
        "unallocated",
        "order o9: no warehouse holds enough of tea",
    )
    negative = client.put("/fulfillment/v1/warehouses/north/stock/tea", json={"on_hand": -1}, headers=ADMIN)
    assert negative.status_code == 400
    assert client.get("/fulfillment/v1/orders/o9", headers=RIDER).status_code == 403


def test_order_to_route_end_to_end(client: TestClient) -> None:
    client.put(
        "/fulfillment/v1/warehouses/north", json={"location": {"lat": 49.42, "lng": 8.69}}, headers=ADMIN
    )
    client.put("/fulfillment/v1/warehouses/north/stock/tea", json={"on_hand": 5}, headers=ADMIN)
    for oid, lat in (("a", 49.41), ("b", 49.40)):
        order = {
            "id": oid,
            "lines": [{"sku": "tea", "qty": 1}],
            "destination": {"lat": lat, "lng": 8.69},
            "sla": "2h",
        }
        assert (
            client.post("/fulfillment/v1/orders", json=order, headers=ADMIN).json()["status"] == "allocated"
        )
    body = {"couriers": [{"id": "c1", "capacity": 5, "shift_start_s": 0}], "time_limit_s": 0.5, "seed": 1}
    r = client.post("/fulfillment/v1/warehouses/north/plan", json=body, headers=ADMIN)
    assert r.status_code == 200, r.text
    plan = r.json()
    (route,) = plan["routes"]
    # straight line x1.3 at 10 m/s; both visiting orders drive the same, either may come out
    north, a, b = LatLng(49.42, 8.69), LatLng(49.41, 8.69), LatLng(49.40, 8.69)
    leg = StraightLineMatrix(speed_m_s=10.0).matrix([north, a, b], "car").durations_s
    first_a = [round(leg[0, 1]), round(leg[0, 1]) + 120 + round(leg[1, 2])]
    first_b = [round(leg[0, 2]), round(leg[0, 2]) + 120 + round(leg[2, 1])]
    stops = [(s["parcel_id"], s["arrival_s"]) for s in route["stops"]]
    assert stops in (
        [("a@north", first_a[0]), ("b@north", first_a[1])],
        [("b@north", first_b[0]), ("a@north", first_b[1])],
    )
    assert plan["unassigned"] == []
    missing = client.post("/fulfillment/v1/warehouses/east/plan", json=body, headers=ADMIN)
    assert (missing.status_code, missing.json()["code"]) == (404, "WarehouseNotFound")


def test_order_planned_delivered_and_explained_over_http(client: TestClient) -> None:
    client.put(
        "/fulfillment/v1/warehouses/north", json={"location": {"lat": 49.42, "lng": 8.69}}, headers=ADMIN
    )
    client.put("/fulfillment/v1/warehouses/north/stock/tea", json={"on_hand": 5}, headers=ADMIN)
    order = {
        "id": "a",
        "lines": [{"sku": "tea", "qty": 1}],
        "destination": {"lat": 49.41, "lng": 8.69},
        "sla": "2h",
        "placed_at_s": 30_000,
    }
    assert client.post("/fulfillment/v1/orders", json=order, headers=ADMIN).status_code == 201
    couriers = [{"id": "c1", "capacity": 5, "shift_start_s": 30_000}]
    body = {"couriers": couriers, "time_limit_s": 0.3, "seed": 1}
    (route,) = client.post("/fulfillment/v1/warehouses/north/plan", json=body, headers=ADMIN).json()["routes"]
    (stop,) = route["stops"]
    assert route["plan_id"] and stop["stop_id"] == f"{route['plan_id']}.1"
    stored = client.get(f"/fulfillment/v1/plans/{route['plan_id']}", headers=ADMIN).json()
    assert (stored["courier_id"], stored["status"], len(stored["stops"])) == ("c1", "active", 1)
    assert stored["stops"][0]["eta_s"] == stop["eta_s"]
    assert client.post("/fulfillment/v1/orders/a/picked", headers=ADMIN).status_code == 200

    url = f"/fulfillment/v1/stops/{stop['stop_id']}/delivered"
    at = {"delivered_at_s": stop["eta_s"]}
    assert client.post(url, json=at, headers=token(Role.DRIVER, "c2")).status_code == 403
    assert client.post(url, json=at, headers=RIDER).status_code == 403
    bad = client.post(url, json={"delivered_at_s": -5}, headers=ADMIN)
    assert bad.status_code == 400
    missing = client.post("/fulfillment/v1/stops/plan-x.1/delivered", json=at, headers=ADMIN)
    assert (missing.status_code, missing.json()["code"]) == (404, "StopNotFound")
    r = client.post(url, json=at, headers=token(Role.DRIVER, "c1"))
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["repeated"] is False
    assert done["order"] == {
        "id": "a", "status": "delivered", "parcels": 1, "parcels_delivered": 1,
        "deadline_s": 37_200, "delivered_at_s": stop["eta_s"], "on_time": True,
    }  # fmt: skip
    assert client.post(url, json=at, headers=ADMIN).json()["repeated"] is True

    explained = client.get("/fulfillment/v1/orders/a", headers=ADMIN).json()
    assert explained["status"] == "delivered"
    (shipment,) = explained["shipments"]
    assert shipment["status"] == "delivered"
    assert shipment["stop"]["courier_id"] == "c1"
    assert (shipment["stop"]["position"], shipment["stop"]["eta_s"]) == (1, stop["eta_s"])
    assert shipment["stop"]["plan_status"] == "completed"
    assert explained["delivery"]["on_time"] is True
    assert [h["status"] for h in explained["history"]] == [
        "allocated", "planned", "picked", "parcel_delivered", "delivered",
    ]  # fmt: skip
    cancel = client.post(
        f"/fulfillment/v1/plans/{route['plan_id']}/cancel", json={"reason": "x"}, headers=ADMIN
    )
    assert (cancel.status_code, cancel.json()["code"]) == (409, "DeliveryConflict")
    unknown = client.post("/fulfillment/v1/plans/nope/cancel", json={"reason": "x"}, headers=ADMIN)
    assert (unknown.status_code, unknown.json()["code"]) == (404, "PlanNotFound")
