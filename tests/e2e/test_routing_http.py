"""The OSRM-compatible HTTP contract, against a real server process on Andorra."""

from __future__ import annotations

import httpx
import pytest
from routingpy import OSRM
from shapely.geometry import Point, shape

from hexcity.routing.domain.polyline import decode

pytestmark = pytest.mark.slow

# Andorra la Vella, Escaldes, Encamp, Sant Julià (lon, lat)
POINTS = [(1.5211, 42.5063), (1.5394, 42.5116), (1.5806, 42.5345), (1.4913, 42.4633)]


def coords(points: list[tuple[float, float]]) -> str:
    return ";".join(f"{lon},{lat}" for lon, lat in points)


def test_liveness_and_readiness(http: httpx.Client) -> None:
    assert http.get("/health/live").json() == {"status": "ok"}
    ready = http.get("/health/ready")
    assert ready.status_code == 200
    body = ready.json()
    assert body["ready"] is True
    assert sorted(body["profiles"]) == ["bike", "car", "foot"]
    assert all(p["state"] == "ready" for p in body["profiles"].values())


def test_route_shape_and_geometry_formats(http: httpx.Client) -> None:
    url = f"/route/v1/driving/{coords(POINTS[:3])}"
    body = http.get(url, params={"overview": "full", "geometries": "geojson"}).json()
    assert body["code"] == "Ok"
    (route,) = body["routes"]
    assert len(route["legs"]) == 2
    assert route["duration"] == pytest.approx(sum(leg["duration"] for leg in route["legs"]), abs=0.11)
    assert route["distance"] == pytest.approx(sum(leg["distance"] for leg in route["legs"]), abs=0.11)
    assert 1000 < route["distance"] < 20_000
    assert route["geometry"]["type"] == "LineString"
    line = route["geometry"]["coordinates"]
    assert line[0] == body["waypoints"][0]["location"]
    assert line[-1] == body["waypoints"][-1]["location"]
    assert len(body["waypoints"]) == 3
    # the same route as polyline and polyline6 decodes to the same line (within precision)
    for fmt, precision, tol in (("polyline", 5, 1.01e-5), ("polyline6", 6, 1.01e-6)):
        encoded = http.get(url, params={"overview": "full", "geometries": fmt}).json()["routes"][0][
            "geometry"
        ]
        decoded = decode(encoded, precision)
        assert len(decoded) == len(line)
        assert all(
            abs(p.lng - c[0]) <= tol and abs(p.lat - c[1]) <= tol for p, c in zip(decoded, line, strict=True)
        )
    no_geometry = http.get(url, params={"overview": "false"}).json()["routes"][0]
    assert "geometry" not in no_geometry
    assert no_geometry["duration"] == route["duration"]


def test_table_equals_routes(http: httpx.Client) -> None:
    table = http.get(f"/table/v1/car/{coords(POINTS)}", params={"annotations": "duration,distance"}).json()
    assert table["code"] == "Ok"
    n = len(POINTS)
    assert [len(r) for r in table["durations"]] == [n] * n
    for i in range(n):
        assert table["durations"][i][i] == 0
        assert table["distances"][i][i] == 0
        for j in range(n):
            if i == j:
                continue
            route = http.get(
                f"/route/v1/car/{coords([POINTS[i], POINTS[j]])}", params={"overview": "false"}
            ).json()
            assert table["durations"][i][j] == route["routes"][0]["duration"]
            assert table["distances"][i][j] == route["routes"][0]["distance"]


def test_table_is_directed_and_asymmetric(http: httpx.Client) -> None:
    body = http.get(
        f"/table/v1/car/{coords(POINTS)}", params={"sources": "0;1", "destinations": "2;3;0"}
    ).json()
    assert body["code"] == "Ok"
    assert [len(r) for r in body["durations"]] == [3, 3]
    assert len(body["sources"]) == 2 and len(body["destinations"]) == 3
    assert body["durations"][0][2] == 0
    assert "distances" not in body  # OSRM's default annotations=duration
    full = http.get(f"/table/v1/car/{coords(POINTS)}").json()["durations"]
    assert body["durations"][1][0] == full[1][2]
    assert full[0][1] != full[1][0]  # one-ways and slopes make A→B differ from B→A


def test_nearest_returns_distinct_points_on_roads(http: httpx.Client) -> None:
    body = http.get("/nearest/v1/walking/1.5211,42.5063", params={"number": 3}).json()
    assert body["code"] == "Ok"
    waypoints = body["waypoints"]
    assert len(waypoints) == 3
    distances = [w["distance"] for w in waypoints]
    assert distances == sorted(distances)
    assert len({tuple(w["location"]) for w in waypoints}) == 3


def test_isochrone_polygons_grow_with_time(http: httpx.Client) -> None:
    body = http.get(f"/isochrone/v1/car/{coords(POINTS[:1])}", params={"contours_minutes": "3,6"}).json()
    assert body["code"] == "Ok"
    assert body["type"] == "FeatureCollection"
    areas = {f["properties"]["contour_minutes"]: shape(f["geometry"]) for f in body["features"]}
    assert set(areas) == {3.0, 6.0}
    assert areas[6.0].area > areas[3.0].area > 0
    assert (
        areas[3.0].buffer(1e-9).contains(Point(POINTS[0]).buffer(1e-9).centroid)
        or areas[3.0].distance(Point(POINTS[0])) < 0.002
    )


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/route/v1/car/1.52,42.50", 400, "InvalidValue"),
        ("/route/v1/car/1.52;42.50", 400, "InvalidQuery"),
        ("/route/v1/car/abc,42.5;1.5,42.5", 400, "InvalidQuery"),
        ("/route/v1/car/1.52,95;1.53,42.5", 400, "InvalidValue"),
        ("/route/v1/car/200,42.5;1.53,42.5", 400, "InvalidValue"),
        ("/route/v1/car/nan,42.5;1.53,42.5", 400, "InvalidValue"),
        ("/route/v1/car/42.5063,1.5211;1.5394,42.5116", 400, "NoSegment"),  # swapped lat/lon: in the sea
        ("/route/v1/car/0,0;1.5394,42.5116", 400, "NoSegment"),
        ("/route/v1/truck/1.52,42.50;1.53,42.51", 400, "InvalidProfile"),
        ("/route/v1/car/1.52,42.50;1.53,42.51?geometries=wkt", 400, "InvalidValue"),
        ("/route/v1/car/1.52,42.50;1.53,42.51?bogus=1", 400, "InvalidQuery"),
        ("/route/v1/car/1.52,42.50;1.53,42.51?radiuses=10", 400, "InvalidOptions"),
        ("/table/v1/car/1.52,42.50;1.53,42.51?sources=5", 400, "InvalidOptions"),
        ("/table/v1/car/1.52,42.50;1.53,42.51?annotations=speed", 400, "InvalidValue"),
        ("/nearest/v1/car/1.52,42.50?number=0", 400, "InvalidValue"),
        ("/nearest/v1/car/1.52,42.50?number=many", 400, "InvalidValue"),
        ("/isochrone/v1/car/1.52,42.50?contours_minutes=0", 400, "InvalidValue"),
        ("/isochrone/v1/car/1.52,42.50?contours_minutes=1,2,3,4,5", 400, "InvalidValue"),
        ("/matrix/v1/car/1.52,42.50", 400, "InvalidUrl"),
        ("/route/v1/car/", 400, "InvalidQuery"),
    ],
)
def test_bad_input_gets_a_code_and_the_server_keeps_serving(
    http: httpx.Client, path: str, status: int, code: str
) -> None:
    response = http.get(path)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert "Traceback" not in response.text
    assert http.get("/route/v1/car/1.5211,42.5063;1.5394,42.5116").json()["code"] == "Ok"


def test_table_over_the_limit_is_too_big(http: httpx.Client) -> None:
    points = [(1.50 + 0.0005 * i, 42.50) for i in range(101)]
    response = http.get(f"/table/v1/car/{coords(points)}")
    assert response.status_code == 413
    assert response.json()["code"] == "TooBig"
    exactly = http.get(f"/table/v1/car/{coords(points[:100])}", params={"sources": "0", "destinations": "1"})
    assert exactly.json()["code"] == "Ok"


def test_a_huge_coordinate_list_is_refused_before_parsing(http: httpx.Client) -> None:
    response = http.get("/route/v1/car/" + ";".join(["1,2"] * 10_001))  # 40 kB: under URL limits
    assert response.status_code == 413
    assert response.json()["code"] == "TooBig"


def test_every_routing_endpoint_needs_a_key(server: str, api_key: str) -> None:
    for path in (
        "/route/v1/car/1.5211,42.5063;1.5394,42.5116",
        "/table/v1/car/1.5211,42.5063;1.5394,42.5116",
        "/nearest/v1/car/1.5211,42.5063",
        "/isochrone/v1/car/1.5211,42.5063",
    ):
        for headers in ({}, {"X-API-Key": api_key[:-2] + "xx"}, {"Authorization": "Bearer not.a.jwt"}):
            response = httpx.get(server + path, headers=headers, timeout=10)
            assert response.status_code == 401, (path, headers)
            assert response.json()["code"] == "Unauthenticated"
            assert "WWW-Authenticate" in response.headers
    assert httpx.get(server + "/health/ready", timeout=10).status_code == 200  # probes stay public
    spec = httpx.get(server + "/openapi.json", timeout=10).json()
    assert spec["paths"]["/route/v1/{profile}/{coordinates}"]["get"]["security"]


def test_routingpy_osrm_client_gets_routes_and_matrices(server: str, api_key: str) -> None:
    client = OSRM(base_url=server, timeout=30, headers={"X-API-Key": api_key})
    locations = [list(p) for p in POINTS[:3]]
    direction = client.directions(locations=locations, profile="driving")
    assert direction.duration > 0 and direction.distance > 1000
    assert len(direction.geometry) >= 2
    assert abs(direction.geometry[0][0] - POINTS[0][0]) < 0.01
    matrix = client.matrix(locations=locations, profile="driving")
    assert len(matrix.durations) == 3 and len(matrix.distances) == 3
    assert matrix.durations[0][0] == 0
    leg = client.directions(locations=[list(POINTS[0]), list(POINTS[1])], profile="driving")
    assert leg.raw["routes"][0]["duration"] == matrix.durations[0][1]  # routingpy truncates .duration to int
    assert leg.duration == int(matrix.durations[0][1])
