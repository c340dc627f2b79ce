"""Shared vocabulary of every module: coordinates, errors. Standard library and h3 only."""

from hexcity.kernel.errors import HexcityError, InvalidInput, NotFound, Unavailable
from hexcity.kernel.geo import EARTH_RADIUS_M, LatLng, haversine_m

__all__ = [
    "EARTH_RADIUS_M",
    "HexcityError",
    "InvalidInput",
    "LatLng",
    "NotFound",
    "Unavailable",
    "haversine_m",
]
