"""Ride-hailing dispatch: driver location ingestion, live H3 driver index, batched matching, surge.

Work in progress (issue 4): the domain pieces and the driver index are in; the HTTP, MQTT and
WebSocket surfaces, trips and offers come next (see docs/dispatch.md). Other modules may import
only from here.
"""

from hexcity.dispatch.adapters.index_memory import InMemoryDriverIndex
from hexcity.dispatch.adapters.index_redis import RedisDriverIndex
from hexcity.dispatch.domain.index import (
    DriverIndex,
    DriverIndexFull,
    IndexParams,
    InvalidIndexInput,
    NearbyDriver,
    k_for_radius,
)
from hexcity.dispatch.domain.matching import (
    AdaptiveWindow,
    AdaptiveWindowParams,
    Assignment,
    Driver,
    EtaMatrix,
    MatchParams,
    MatchStats,
    Rider,
    greedy_match,
    match_batch,
)
from hexcity.dispatch.domain.pings import (
    Gcra,
    KalmanFilter2D,
    Ping,
    PingOutcome,
    PingParams,
    PingPipeline,
    Verdict,
    parse_osmand,
    parse_owntracks,
    parse_ping,
)
from hexcity.dispatch.domain.surge import Quote, SurgeModel, SurgeParams, Tariff, sigmoid_multiplier
from hexcity.dispatch.errors import DispatchError, InvalidPing

__all__ = [
    "AdaptiveWindow",
    "AdaptiveWindowParams",
    "Assignment",
    "DispatchError",
    "Driver",
    "DriverIndex",
    "DriverIndexFull",
    "EtaMatrix",
    "Gcra",
    "InMemoryDriverIndex",
    "IndexParams",
    "InvalidIndexInput",
    "InvalidPing",
    "KalmanFilter2D",
    "MatchParams",
    "MatchStats",
    "NearbyDriver",
    "Ping",
    "PingOutcome",
    "PingParams",
    "PingPipeline",
    "Quote",
    "RedisDriverIndex",
    "Rider",
    "SurgeModel",
    "SurgeParams",
    "Tariff",
    "Verdict",
    "greedy_match",
    "k_for_radius",
    "match_batch",
    "parse_osmand",
    "parse_owntracks",
    "parse_ping",
    "sigmoid_multiplier",
]
