"""Coordinates and great-circle distance."""

from __future__ import annotations

import math
from typing import NamedTuple

EARTH_RADIUS_M = 6_371_008.8  # mean Earth radius (IUGG), metres


class LatLng(NamedTuple):
    """A WGS84 point in degrees, latitude first (the h3 convention).

    OSRM's HTTP API speaks ``lon,lat``; the HTTP layer converts at the boundary.
    """

    lat: float
    lng: float


def haversine_m(a: LatLng, b: LatLng) -> float:
    """Great-circle distance between two points, in metres."""
    lat1, lat2 = math.radians(a.lat), math.radians(b.lat)
    dlat = lat2 - lat1
    dlng = math.radians(b.lng - a.lng)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlng / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))
