"""A seeded city simulation that drives hexcity only through its public wire APIs.

Drivers report positions over MQTT, the HTTP intake or its WebSocket, and take offers from the
push WebSocket; riders use the HTTP API. :class:`CitySim` plays a seeded plan of driver shifts and
rider requests (NYC trip lengths and time profile). Nothing here imports a business module: the
simulator is a client, like a real app.
"""

from hexcity.simulator.city import (
    CityParams,
    CitySim,
    CityStats,
    PlannedRequest,
    PlannedShift,
    TripSample,
    hourly_profile,
    load_trip_samples,
    plan_requests,
    plan_shifts,
)
from hexcity.simulator.drivers import BotConfig, DriverBot, DriverStats, SimClock, route_path, spread
from hexcity.simulator.riders import RiderResult, ride

__all__ = [
    "BotConfig",
    "CityParams",
    "CitySim",
    "CityStats",
    "DriverBot",
    "DriverStats",
    "PlannedRequest",
    "PlannedShift",
    "RiderResult",
    "SimClock",
    "TripSample",
    "hourly_profile",
    "load_trip_samples",
    "plan_requests",
    "plan_shifts",
    "ride",
    "route_path",
    "spread",
]
