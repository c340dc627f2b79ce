"""OSRM v5 compatible HTTP API: ``/route``, ``/table``, ``/nearest``, plus ``/isochrone``.

Thin: parse the URL → call RoutingService → shape OSRM's JSON. Every error is a JSON body
``{"code": ..., "message": ...}`` with OSRM's codes; nothing reaches the caller as a stack trace.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route as HttpRoute

from hexcity.infra.http import json_response
from hexcity.kernel import LatLng
from hexcity.routing.domain.engine import Route
from hexcity.routing.domain.isochrone import to_geojson
from hexcity.routing.domain.polyline import decode, encode_array
from hexcity.routing.domain.snapping import Snap
from hexcity.routing.errors import InvalidOptions, InvalidQuery, InvalidValue, TooBig
from hexcity.routing.service import RoutingEngine, RoutingService

MAX_URL_COORDINATES = 10_000  # checked before parsing, so a huge URL costs no work
SIMPLIFY_TOLERANCE_DEG = 5e-5  # ~5 m, for overview=simplified
INLINE_ROUTE_POINTS = 10  # small routes run on the event loop; bigger work goes to the thread pool

ROUTE_OPTIONS = {
    "alternatives",
    "steps",
    "annotations",
    "geometries",
    "overview",
    "continue_straight",
    "radiuses",
    "bearings",
    "hints",
    "approaches",
    "exclude",
    "snapping",
    "skip_waypoints",
    "generate_hints",
    "waypoints",
}
TABLE_OPTIONS = {
    "sources",
    "destinations",
    "annotations",
    "fallback_speed",
    "fallback_coordinate",
    "scale_factor",
    "radiuses",
    "bearings",
    "hints",
    "approaches",
    "exclude",
    "snapping",
    "skip_waypoints",
    "generate_hints",
}
NEAREST_OPTIONS = {
    "number",
    "radiuses",
    "bearings",
    "hints",
    "approaches",
    "exclude",
    "snapping",
    "generate_hints",
}
ISOCHRONE_OPTIONS = {"contours_minutes", "contours_seconds", "radiuses", "generate_hints"}


def build_routes(service: RoutingService) -> list[HttpRoute]:
    """The routing endpoints bound to ``service``, as plain Starlette routes.

    Plain routes skip FastAPI's per-request parameter machinery (about 0.3 ms a request here);
    every parameter is parsed and validated below instead.
    """

    async def route(request: Request) -> Response:
        profile, coordinates = request.path_params["profile"], request.path_params["coordinates"]
        engine = service.get(profile)
        params = _params(request, ROUTE_OPTIONS)
        points = parse_coordinates(coordinates)
        radiuses = _radiuses(params, len(points))
        options = route_options(params)  # every option is checked before the search runs
        geometry = options.wants_geometry
        if len(points) <= INLINE_ROUTE_POINTS:
            result = engine.route(points, radiuses, geometry=geometry)
        else:
            result = await run_in_threadpool(lambda: engine.route(points, radiuses, geometry=geometry))
        return json_response(route_body(result, options, engine))

    async def table(request: Request) -> Response:
        profile, coordinates = request.path_params["profile"], request.path_params["coordinates"]
        engine = service.get(profile)
        params = _params(request, TABLE_OPTIONS)
        points = parse_coordinates(coordinates)
        sources = _indices(params.get("sources", "all"), len(points), "sources")
        destinations = _indices(params.get("destinations", "all"), len(points), "destinations")
        annotations = set(params.get("annotations", "duration").split(","))
        if not annotations <= {"duration", "distance"}:
            raise InvalidValue("annotations must be duration, distance or duration,distance")
        limit = engine.limits.max_table_size
        if len(sources) > limit or len(destinations) > limit:
            raise TooBig(f"Too many table coordinates: at most {limit} sources and {limit} destinations")
        radiuses = _radiuses(params, len(points))
        src_pts = [points[i] for i in sources]
        dst_pts = [points[i] for i in destinations]
        rad = (
            None
            if radiuses is None
            else ([radiuses[i] for i in sources], [radiuses[i] for i in destinations])
        )
        result = await run_in_threadpool(engine.table, src_pts, dst_pts, rad)
        body: dict[str, Any] = {"code": "Ok"}
        if "duration" in annotations:
            body["durations"] = _matrix(result.durations_s)
        if "distance" in annotations:
            body["distances"] = _matrix(result.distances_m)
        body["sources"] = waypoints(result.sources, engine)
        body["destinations"] = (
            body["sources"]
            if result.destinations is result.sources
            else waypoints(result.destinations, engine)
        )
        body["graph_version"] = engine.graph_version
        return json_response(body)

    async def nearest(request: Request) -> Response:
        profile, coordinates = request.path_params["profile"], request.path_params["coordinates"]
        engine = service.get(profile)
        params = _params(request, NEAREST_OPTIONS)
        points = parse_coordinates(coordinates)
        if len(points) != 1:
            raise InvalidOptions("nearest takes exactly one coordinate")
        number = _int(params.get("number", "1"), "number")
        radiuses = _radiuses(params, 1)
        snaps = engine.nearest(points[0], number, radiuses[0] if radiuses else None)
        return json_response(
            {
                "code": "Ok",
                "waypoints": waypoints(snaps, engine),
                "graph_version": engine.graph_version,
            }
        )

    async def isochrone(request: Request) -> Response:
        profile, coordinates = request.path_params["profile"], request.path_params["coordinates"]
        engine = service.get(profile)
        params = _params(request, ISOCHRONE_OPTIONS)
        points = parse_coordinates(coordinates)
        if len(points) != 1:
            raise InvalidOptions("isochrone takes exactly one coordinate")
        limits_s = _contours_s(params)
        contours = await run_in_threadpool(engine.isochrone, points[0], limits_s)
        body = to_geojson(contours)
        body["code"] = "Ok"
        body["graph_version"] = engine.graph_version
        return json_response(body)

    return [
        HttpRoute("/route/v1/{profile}/{coordinates:path}", route, methods=["GET"]),
        HttpRoute("/table/v1/{profile}/{coordinates:path}", table, methods=["GET"]),
        HttpRoute("/nearest/v1/{profile}/{coordinates:path}", nearest, methods=["GET"]),
        HttpRoute("/isochrone/v1/{profile}/{coordinates:path}", isochrone, methods=["GET"]),
    ]


# -- parsing -------------------------------------------------------------------------------------
def parse_coordinates(text: str) -> list[LatLng]:
    """``lon,lat;lon,lat`` or ``polyline(...)`` / ``polyline6(...)``; optional ``.json`` suffix."""
    if text.count(";") >= MAX_URL_COORDINATES:
        raise TooBig(f"at most {MAX_URL_COORDINATES} coordinates per request")
    if text.endswith(".json"):
        text = text[: -len(".json")]
    if text.startswith(("polyline(", "polyline6(")) and text.endswith(")"):
        precision = 6 if text.startswith("polyline6(") else 5
        body = text[text.index("(") + 1 : -1]
        try:
            points = decode(body, precision)
        except ValueError as exc:
            raise InvalidQuery(f"Query string malformed: {exc}") from None
    else:
        parts = text.split(";")
        points = []
        for pos, part in enumerate(parts):
            pieces = part.split(",")
            if len(pieces) != 2:
                raise InvalidQuery(f"Query string malformed close to coordinate {pos}: expected 'lon,lat'")
            try:
                lon, lat = float(pieces[0]), float(pieces[1])
            except ValueError:
                raise InvalidQuery(
                    f"Query string malformed close to coordinate {pos}: not a number"
                ) from None
            points.append(LatLng(lat, lon))
    if not points:
        raise InvalidQuery("no coordinates given")
    if len(points) > MAX_URL_COORDINATES:
        raise TooBig(f"at most {MAX_URL_COORDINATES} coordinates per request")
    for pos, p in enumerate(points):
        if not (math.isfinite(p.lat) and math.isfinite(p.lng)):
            raise InvalidValue(f"Invalid coordinate value at index {pos}: not finite")
        if not (-90 <= p.lat <= 90 and -180 <= p.lng <= 180):
            raise InvalidValue(
                f"Invalid coordinate value at index {pos}: longitude must be in [-180, 180] and latitude "
                "in [-90, 90] (OSRM order is lon,lat)"
            )
    return points


def _params(request: Request, allowed: set[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        if key not in allowed:
            raise InvalidQuery(f"Query string malformed: unknown option {key!r}")
        if key in params:
            raise InvalidQuery(f"Query string malformed: option {key!r} given twice")
        params[key] = value
    exclude = params.get("exclude")
    if exclude:
        raise InvalidValue("exclude classes are not supported by this server")
    return params


def _int(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InvalidValue(f"{name} must be an integer") from None


def _bool(params: dict[str, str], name: str, default: bool) -> bool:
    value = params.get(name)
    if value is None:
        return default
    if value not in ("true", "false"):
        raise InvalidValue(f"{name} must be true or false")
    return value == "true"


def _indices(text: str, n: int, name: str) -> list[int]:
    if text == "all":
        return list(range(n))
    out = []
    for part in text.split(";"):
        value = _int(part, name)
        if not 0 <= value < n:
            raise InvalidOptions(f"{name} index {value} is out of range (0..{n - 1})")
        out.append(value)
    return out


def _radiuses(params: dict[str, str], n: int) -> list[float | None] | None:
    text = params.get("radiuses")
    if text is None:
        return None
    parts = text.split(";")
    if len(parts) != n:
        raise InvalidOptions("Number of radiuses does not match number of coordinates")
    out: list[float | None] = []
    for part in parts:
        if part in ("", "unlimited"):
            out.append(None)
            continue
        try:
            value = float(part)
        except ValueError:
            raise InvalidValue("radiuses must be numbers of metres") from None
        if not (value > 0 and math.isfinite(value)):
            raise InvalidValue("radiuses must be positive")
        out.append(value)
    return out


def _contours_s(params: dict[str, str]) -> list[float]:
    if "contours_seconds" in params:
        raw, scale = params["contours_seconds"], 1.0
    else:
        raw, scale = params.get("contours_minutes", "10"), 60.0
    try:
        values = [float(v) * scale for v in raw.split(",")]
    except ValueError:
        raise InvalidValue("contours must be comma-separated numbers") from None
    if any(not math.isfinite(v) for v in values):
        raise InvalidValue("contours must be finite")
    return values


# -- shaping -------------------------------------------------------------------------------------
def waypoints(snaps: list[Snap], engine: RoutingEngine) -> list[dict[str, Any]]:
    """OSRM waypoint objects (location rounded to 6 decimals, like OSRM), built in bulk."""
    net = engine.engine.network
    names = net.names
    values = np.array([(s.distance_m, s.location.lng, s.location.lat) for s in snaps], dtype=np.float64)
    values = np.round(values.reshape(-1, 3), 6).tolist()
    name_ids = net.chain_name[
        np.fromiter((s.chain for s in snaps), dtype=np.int64, count=len(snaps))
    ].tolist()
    return [
        {
            "hint": "",
            "distance": d,
            "name": names[k] if 0 <= k < len(names) else "",
            "location": [lng, lat],
        }
        for (d, lng, lat), k in zip(values, name_ids, strict=True)
    ]


@dataclass(frozen=True, slots=True)
class RouteOptions:
    """The route options that shape the answer, validated before any search runs."""

    geometries: str
    overview: str
    steps: bool

    @property
    def wants_geometry(self) -> bool:
        return self.overview != "false" or self.steps


def route_options(params: dict[str, str]) -> RouteOptions:
    """Validate OSRM's route options; raises InvalidValue."""
    geometries = params.get("geometries", "polyline")
    overview = params.get("overview", "simplified")
    if geometries not in ("polyline", "polyline6", "geojson"):
        raise InvalidValue("geometries must be polyline, polyline6 or geojson")
    if overview not in ("simplified", "full", "false"):
        raise InvalidValue("overview must be simplified, full or false")
    alternatives = params.get("alternatives", "false")
    if alternatives not in ("true", "false") and not alternatives.isdigit():
        raise InvalidValue("alternatives must be true, false or a number")
    _bool(params, "continue_straight", True)
    return RouteOptions(geometries, overview, _bool(params, "steps", False))


def route_body(route: Route, options: RouteOptions, engine: RoutingEngine) -> dict[str, Any]:
    """OSRM's route response."""
    geometries, overview, steps = options.geometries, options.overview, options.steps
    body_route: dict[str, Any] = {
        "legs": [
            {
                "steps": [_step(leg.geometry, geometries, leg.duration_s, leg.distance_m)] if steps else [],
                "summary": "",
                "weight": _r1(leg.duration_s),
                "duration": _r1(leg.duration_s),
                "distance": _r1(leg.distance_m),
            }
            for leg in route.legs
        ],
        "weight_name": "duration",
        "weight": _r1(route.duration_s),
        "duration": _r1(route.duration_s),
        "distance": _r1(route.distance_m),
    }
    if overview != "false":
        coords = route.geometry
        if overview == "simplified" and len(coords) > 2:
            simple = shapely.LineString(coords[:, ::-1]).simplify(SIMPLIFY_TOLERANCE_DEG)
            coords = np.asarray(simple.coords)[:, ::-1]
        body_route["geometry"] = _geometry(coords, geometries)
    return {
        "code": "Ok",
        "routes": [body_route],
        "waypoints": waypoints(route.waypoints, engine),
        "graph_version": engine.graph_version,
    }


def _step(coords: Any, geometries: str, duration_s: float, distance_m: float) -> dict[str, Any]:
    """One step per leg: this engine does not generate turn-by-turn guidance (yet)."""
    return {
        "geometry": _geometry(coords, geometries),
        "maneuver": {"type": "depart", "location": [float(coords[0, 1]), float(coords[0, 0])]},
        "mode": "driving",
        "duration": _r1(duration_s),
        "distance": _r1(distance_m),
        "weight": _r1(duration_s),
        "name": "",
    }


def _geometry(coords: Any, geometries: str) -> Any:
    """``coords`` is an (n, 2) array of (lat, lng) rows."""
    if geometries == "geojson":
        return {"type": "LineString", "coordinates": np.round(coords[:, ::-1], 6)}
    return encode_array(coords, 6 if geometries == "polyline6" else 5)


def _matrix(values: Any) -> Any:
    """Rounded to 0.1 like OSRM (half up); orjson writes the array directly and nan as null."""
    return np.floor(values * 10.0 + 0.5) / 10.0


def _r1(value: float) -> float:
    """The same float operations as ``_matrix``, so a route and a table cell print the same number."""
    return math.floor(value * 10.0 + 0.5) / 10.0
