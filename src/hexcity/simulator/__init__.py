"""A seeded city simulation that drives hexcity only through its public wire APIs.

Drivers report positions over MQTT, the HTTP intake or its WebSocket, and take offers from the
push WebSocket; riders use the HTTP API; shop customers order through fulfillment and pay through
payments (:class:`ShopSim`); a crowd buys in a flash sale (:class:`FlashSale`); :mod:`.kpis` and
:mod:`.report` turn what the APIs answer at the end into the ``hexcity simulate`` report.
:class:`CitySim` plays a seeded plan of driver shifts and rider requests (NYC trip lengths and
time profile). Nothing here imports a business module: the
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
from hexcity.simulator.clock import Clock, SimClock, VirtualClock, VirtualClockError
from hexcity.simulator.drivers import BotConfig, DriverBot, DriverStats, route_path, spread
from hexcity.simulator.flash import FlashParams, FlashSale, FlashStats, PlannedBuyer, plan_buyers
from hexcity.simulator.kpis import (
    REPORT_KEYS,
    DeliveryOutcome,
    LedgerCheck,
    check_ledger,
    delivery_kpis,
    events_lost,
    percentile,
    pickup_eta_kpis,
)
from hexcity.simulator.report import LedgerWatch
from hexcity.simulator.riders import RiderResult, ride
from hexcity.simulator.shop import PlannedOrder, ShopParams, ShopSim, ShopStats, plan_orders

__all__ = [
    "REPORT_KEYS",
    "BotConfig",
    "CityParams",
    "CitySim",
    "CityStats",
    "Clock",
    "DeliveryOutcome",
    "DriverBot",
    "DriverStats",
    "FlashParams",
    "FlashSale",
    "FlashStats",
    "LedgerCheck",
    "LedgerWatch",
    "PlannedBuyer",
    "PlannedOrder",
    "PlannedRequest",
    "PlannedShift",
    "RiderResult",
    "ShopParams",
    "ShopSim",
    "ShopStats",
    "SimClock",
    "TripSample",
    "VirtualClock",
    "VirtualClockError",
    "check_ledger",
    "delivery_kpis",
    "events_lost",
    "hourly_profile",
    "load_trip_samples",
    "percentile",
    "pickup_eta_kpis",
    "plan_buyers",
    "plan_orders",
    "plan_requests",
    "plan_shifts",
    "ride",
    "route_path",
    "spread",
]
