"""Ride-hailing dispatch: driver location ingestion, live H3 driver index, batched matching, surge.

Location intake (MQTT, WebSocket, HTTP), the H3 driver index, batched matching, trips and offers,
push, surge (see docs/dispatch.md). Other modules may import
only from here.
"""

from hexcity.dispatch.adapters.index_memory import InMemoryDriverIndex
from hexcity.dispatch.adapters.index_redis import RedisDriverIndex
from hexcity.dispatch.adapters.mqtt_intake import MqttIntake
from hexcity.dispatch.adapters.push_memory import InMemoryConnectionDirectory, LoggingFallbackPusher
from hexcity.dispatch.adapters.push_redis import RedisConnectionDirectory
from hexcity.dispatch.adapters.ride_payments import LedgerTripPayments
from hexcity.dispatch.adapters.road_router import LazyRoadSnapper, RoadRouter
from hexcity.dispatch.adapters.trip_queries import RIDE_STATUS_TOPIC, TripQueries
from hexcity.dispatch.adapters.trip_store_sql import SqlTripStore
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
from hexcity.dispatch.http import build_dispatch_router
from hexcity.dispatch.http_ingest import build_ingest_router
from hexcity.dispatch.http_push import build_push_router, push_principal
from hexcity.dispatch.ingest import (
    LOCATION_TOPIC,
    DriverState,
    IngestCapacityError,
    IngestService,
    RoutingSnapper,
    Snapper,
)
from hexcity.dispatch.push import (
    ConnectionDirectory,
    FallbackPusher,
    InvalidAck,
    InvalidPush,
    PushCapacityExceeded,
    PushHub,
    PushMessage,
    PushParams,
    client_id_for,
)
from hexcity.dispatch.service import DispatchService, DispatchSettings, TripPayments
from hexcity.dispatch.settings import IngestSettings, PushSettings
from hexcity.dispatch.surge_feed import SurgeFeedingIndex

__all__ = [
    "LOCATION_TOPIC",
    "RIDE_STATUS_TOPIC",
    "AdaptiveWindow",
    "AdaptiveWindowParams",
    "Assignment",
    "ConnectionDirectory",
    "DispatchError",
    "DispatchService",
    "DispatchSettings",
    "Driver",
    "DriverIndex",
    "DriverIndexFull",
    "DriverState",
    "EtaMatrix",
    "FallbackPusher",
    "Gcra",
    "InMemoryConnectionDirectory",
    "InMemoryDriverIndex",
    "IndexParams",
    "IngestCapacityError",
    "IngestService",
    "IngestSettings",
    "InvalidAck",
    "InvalidIndexInput",
    "InvalidPing",
    "InvalidPush",
    "KalmanFilter2D",
    "LazyRoadSnapper",
    "LedgerTripPayments",
    "LoggingFallbackPusher",
    "MatchParams",
    "MatchStats",
    "MqttIntake",
    "NearbyDriver",
    "Ping",
    "PingOutcome",
    "PingParams",
    "PingPipeline",
    "PushCapacityExceeded",
    "PushHub",
    "PushMessage",
    "PushParams",
    "PushSettings",
    "Quote",
    "RedisConnectionDirectory",
    "RedisDriverIndex",
    "Rider",
    "RoadRouter",
    "RoutingSnapper",
    "Snapper",
    "SqlTripStore",
    "SurgeFeedingIndex",
    "SurgeModel",
    "SurgeParams",
    "Tariff",
    "TripPayments",
    "TripQueries",
    "Verdict",
    "build_dispatch_router",
    "build_ingest_router",
    "build_push_router",
    "client_id_for",
    "greedy_match",
    "k_for_radius",
    "match_batch",
    "parse_osmand",
    "parse_owntracks",
    "parse_ping",
    "push_principal",
    "sigmoid_multiplier",
]
