"""Shared vocabulary of every module: coordinates, errors. Standard library and h3 only."""

from hexcity.kernel.clock import Clock, ManualClock, SystemClock
from hexcity.kernel.errors import HexcityError, InvalidInput, NotFound, Unavailable
from hexcity.kernel.geo import EARTH_RADIUS_M, LatLng, haversine_m

__all__ = [
    "EARTH_RADIUS_M",
    "Clock",
    "HexcityError",
    "InvalidInput",
    "LatLng",
    "ManualClock",
    "NotFound",
    "SystemClock",
    "Unavailable",
    "haversine_m",
]
