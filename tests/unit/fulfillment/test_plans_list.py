"""``GET /fulfillment/v1/plans``: courier routes as GeoJSON for the dashboard (real app, SQLite)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hexcity.api import create_app
from hexcity.fulfillment.adapters.pyvrp_solver import PyVrpSolver
from hexcity.fulfillment.adapters.road_matrix import StraightLineMatrix
from hexcity.fulfillment.adapters.sql_store import SqlAllocationStore
from hexcity.fulfillment.domain.delivery import PlanStop, RoutePlan
from hexcity.fulfillment.domain.network import Warehouse
from hexcity.fulfillment.http import (
    MAX_GEOMETRY_POINTS,
    FulfillmentApi,
    ShapeCache,
    build_fulfillment_router,
    plan_shape,
    simplify,
)
from hexcity.fulfillment.lastmile import LastMilePlanner
from hexcity.fulfillment.service import AllocationService, VrpService
from hexcity.fulfillment.settings import FulfillmentSettings
from hexcity.infra.auth import AuthSettings, Role, mint_demo_token
from hexcity.infra.sql import make_engine
from hexcity.kernel import LatLng
from hexcity.platform import ModuleRuntime
from hexcity.routing import Limits, RoutingService

AUTH = AuthSettings(jwt_secret="fulfillment-plans-list-" + "s" * 40, demo_mode=True)
NORTH = LatLng(42.51, 1.53)
SOUTH = LatLng(42.46, 1.49)
STOPS = {
    "north": (LatLng(42.52, 1.53), LatLng(42.52, 1.54)),
    "south": (LatLng(42.47, 1.49), LatLng(42.47, 1.5)),
}


def token(role: Role, subject: str, scopes: set[str] | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_demo_token(AUTH, role, subject, scopes=scopes)}"}


ADMIN = token(Role.ADMIN, "ops")
DASHBOARD = token(Role.ADMIN, "dashboard", {"fulfillment:read", "routing:read", "trips:read"})
RIDER = token(Role.RIDER, "r1")
NO_FULFILLMENT = token(Role.ADMIN, "dashboard", {"routing:read", "trips:read"})


def stop(plan_id: str, position: int, order_id: str, warehouse_id: str, at: LatLng, eta_s: int) -> PlanStop:
    return PlanStop(
        f"{plan_id}.{position}", plan_id, position, order_id, warehouse_id, at, eta_s, eta_s + 600
    )


def route(plan_id: str, warehouse_id: str, courier_id: str, geometry: list[tuple[float, float]]) -> RoutePlan:
    a, b = STOPS[warehouse_id]
    stops = (
        stop(plan_id, 1, f"{plan_id}-o1", warehouse_id, a, 30_000),
        stop(plan_id, 2, f"{plan_id}-o2", warehouse_id, b, 30_300),
    )
    return RoutePlan(plan_id, warehouse_id, courier_id, 29_000, 31_000, 2_000, 4_321, tuple(geometry), stops)


# an L-shaped road path with a point in the middle of each leg (dropped by the 5 m simplification)
L_PATH = [(42.51, 1.53), (42.515, 1.53), (42.52, 1.53), (42.52, 1.535), (42.52, 1.54123456)]


@pytest.fixture
def store(tmp_path: Path) -> SqlAllocationStore:
    s = SqlAllocationStore(make_engine(f"sqlite:///{tmp_path / 'f.db'}"))
    s.create_schema()
    s.put_warehouse(Warehouse("north", NORTH))
    s.put_warehouse(Warehouse("south", SOUTH))
    return s


@pytest.fixture
def client(store: SqlAllocationStore) -> Iterator[TestClient]:
    road = StraightLineMatrix(speed_m_s=10.0)
    api = FulfillmentApi(
        VrpService(FulfillmentSettings(), PyVrpSolver(), road),
        AllocationService(store, road),
        LastMilePlanner(road, PyVrpSolver()),
    )
    app = create_app(
        RoutingService(Limits()), AUTH, None, [ModuleRuntime("fulfillment", [build_fulfillment_router(api)])]
    )
    with TestClient(app) as c:
        yield c


def ids(body: dict[str, Any]) -> list[str]:
    return [f["id"] for f in body["features"]]


def test_a_known_plan_is_listed_as_exact_geojson(client: TestClient, store: SqlAllocationStore) -> None:
    store.save_plans([route("plan-a", "north", "north-courier-1", L_PATH)])
    r = client.get("/fulfillment/v1/plans", headers=DASHBOARD)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": "plan-a",
                "geometry": {
                    "type": "LineString",
                    "coordinates": [[1.53, 42.51], [1.53, 42.52], [1.54123, 42.52]],
                },
                "properties": {
                    "plan_id": "plan-a",
                    "warehouse_id": "north",
                    "courier_id": "north-courier-1",
                    "status": "active",
                    "start_s": 29_000,
                    "end_s": 31_000,
                    "duration_s": 2_000,
                    "distance_m": 4_321,
                    "geometry_source": "road",
                    "stops_left": 2,
                    "stops": [
                        {"stop_id": "plan-a.1", "position": 1, "order_id": "plan-a-o1", "lat": 42.52,
                         "lng": 1.53, "eta_s": 30_000, "deadline_s": 30_600, "status": "planned"},
                        {"stop_id": "plan-a.2", "position": 2, "order_id": "plan-a-o2", "lat": 42.52,
                         "lng": 1.54, "eta_s": 30_300, "deadline_s": 30_900, "status": "planned"},
                    ],
                },
            }
        ],
        "limit": 50,
        "next_after": None,
    }  # fmt: skip


def test_a_plan_without_a_stored_path_is_drawn_depot_stops_depot(
    client: TestClient, store: SqlAllocationStore
) -> None:
    store.save_plans([route("plan-s", "south", "south-courier-1", [])])
    (feature,) = client.get("/fulfillment/v1/plans", headers=DASHBOARD).json()["features"]
    assert feature["properties"]["geometry_source"] == "straight"
    assert feature["geometry"] == {
        "type": "LineString",
        "coordinates": [[1.49, 42.46], [1.49, 42.47], [1.5, 42.47], [1.49, 42.46]],
    }


def test_status_and_warehouse_filters(client: TestClient, store: SqlAllocationStore) -> None:
    store.save_plans(
        [
            route("plan-1", "north", "north-courier-1", L_PATH),
            route("plan-2", "south", "south-courier-1", L_PATH),
            route("plan-3", "north", "north-courier-2", L_PATH),
        ]
    )
    store.cancel_plan("plan-3", "van broke down")

    def get(query: str) -> Any:
        return client.get(f"/fulfillment/v1/plans{query}", headers=DASHBOARD)

    assert ids(get("").json()) == ["plan-1", "plan-2"]  # active by default
    assert ids(get("?status=active").json()) == ["plan-1", "plan-2"]
    assert ids(get("?status=cancelled").json()) == ["plan-3"]
    assert ids(get("?status=completed").json()) == []
    assert ids(get("?status=any").json()) == ["plan-1", "plan-2", "plan-3"]
    assert ids(get("?warehouse_id=north").json()) == ["plan-1"]
    assert ids(get("?warehouse_id=north&status=any").json()) == ["plan-1", "plan-3"]
    assert ids(get("?warehouse_id=nowhere").json()) == []
    cancelled = get("?status=cancelled").json()["features"][0]["properties"]
    assert (cancelled["status"], cancelled["stops_left"]) == ("cancelled", 0)
    assert [s["status"] for s in cancelled["stops"]] == ["cancelled", "cancelled"]


def test_pages_follow_the_cursor(client: TestClient, store: SqlAllocationStore) -> None:
    store.save_plans([route(f"plan-{i}", "north", f"c{i}", L_PATH) for i in range(5)])
    first = client.get("/fulfillment/v1/plans?limit=2", headers=DASHBOARD).json()
    assert (ids(first), first["limit"], first["next_after"]) == (["plan-0", "plan-1"], 2, "plan-1")
    second = client.get("/fulfillment/v1/plans?limit=2&after=plan-1", headers=DASHBOARD).json()
    assert (ids(second), second["next_after"]) == (["plan-2", "plan-3"], "plan-3")
    last = client.get("/fulfillment/v1/plans?limit=2&after=plan-3", headers=DASHBOARD).json()
    assert (ids(last), last["next_after"]) == (["plan-4"], None)
    assert len(client.get("/fulfillment/v1/plans?limit=200", headers=DASHBOARD).json()["features"]) == 5


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=ten", "limit"),
        ("status=lost", "status"),
        ("warehouse_id=", "warehouse_id"),
        ("warehouse_id=" + "w" * 65, "warehouse_id"),
        ("after=" + "p" * 65, "after"),
    ],
)
def test_bad_parameters_get_the_stable_error_shape(client: TestClient, query: str, field: str) -> None:
    r = client.get(f"/fulfillment/v1/plans?{query}", headers=DASHBOARD)
    assert r.status_code == 400  # the app's answer to every invalid query parameter
    body = r.json()
    assert set(body) == {"code", "message"}
    assert body["code"] == "InvalidQuery"
    assert f"'{field}'" in body["message"]


def test_reading_plans_needs_the_fulfillment_read_scope(
    client: TestClient, store: SqlAllocationStore
) -> None:
    store.save_plans([route("plan-a", "north", "north-courier-1", L_PATH)])
    assert client.get("/fulfillment/v1/plans").status_code == 401
    for headers in (RIDER, NO_FULFILLMENT):
        r = client.get("/fulfillment/v1/plans", headers=headers)
        assert r.status_code == 403
        assert r.json()["code"] == "Forbidden"
    assert ids(client.get("/fulfillment/v1/plans", headers=ADMIN).json()) == ["plan-a"]


def test_store_refuses_out_of_bounds_listing(store: SqlAllocationStore) -> None:
    with pytest.raises(ValueError, match="limit"):
        store.list_plans(limit=0)
    with pytest.raises(ValueError, match="limit"):
        store.list_plans(limit=201)
    with pytest.raises(ValueError, match="status"):
        store.list_plans(status="lost")


def test_simplify_keeps_corners_and_drops_points_on_a_straight_leg() -> None:
    assert simplify(L_PATH, 5.0) == [L_PATH[0], L_PATH[2], L_PATH[4]]
    bend = [(42.5, 1.5), (42.5, 1.501), (42.50002, 1.502), (42.5, 1.503)]  # a 2.2 m bump
    assert simplify(bend, 5.0) == [bend[0], bend[3]]
    assert simplify(bend, 1.5) == [bend[0], bend[2], bend[3]]
    assert simplify(bend, 0.5) == bend  # bend[1] is 1.1 m off the line bend[0] -> bend[2]
    assert simplify(bend[:2], 5.0) == bend[:2]


def test_long_paths_are_capped_and_shapes_cached_per_plan() -> None:
    zigzag = [(42.5 + 0.001 * (i % 2), 1.5 + 0.001 * i) for i in range(3 * MAX_GEOMETRY_POINTS)]
    plan = route("plan-z", "north", "c", zigzag)
    coords, source = plan_shape(plan)
    assert source == "road"
    assert len(coords) == MAX_GEOMETRY_POINTS
    assert coords[0] == [1.5, 42.5] and coords[-1] == [round(1.5 + 0.001 * (len(zigzag) - 1), 5), 42.501]
    cache = ShapeCache(size=2)
    assert cache.get("plan-z") is None
    first = cache.put(plan, None)
    assert first == (coords, "road")
    assert cache.get("plan-z") is first and cache.ids() == {"plan-z"}
    cache.put(route("plan-0", "north", "c", L_PATH), None)
    assert cache.get("plan-z") is first  # used last: plan-0 goes first
    cache.put(route("plan-1", "north", "c", L_PATH), None)
    assert cache.ids() == {"plan-z", "plan-1"} and len(cache) == 2


def test_listing_again_reads_no_stored_path_and_answers_the_same(
    client: TestClient, store: SqlAllocationStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.save_plans([route("plan-a", "north", "c1", L_PATH), route("plan-b", "south", "c2", [])])
    first = client.get("/fulfillment/v1/plans", headers=DASHBOARD).json()
    asked: list[frozenset[str]] = []
    real = store.list_plans

    def spy(*args: Any, without_geometry: Any = (), **kwargs: Any) -> Any:
        asked.append(frozenset(without_geometry))
        return real(*args, without_geometry=without_geometry, **kwargs)

    monkeypatch.setattr(store, "list_plans", spy)
    assert client.get("/fulfillment/v1/plans", headers=DASHBOARD).json() == first
    assert asked == [{"plan-a", "plan-b"}]  # both shapes cached: no path read again
    assert [p.geometry for p in real(without_geometry={"plan-a"})] == [(), ()]  # plan-b has none
    assert [p.geometry for p in real()] == [tuple(L_PATH), ()]
