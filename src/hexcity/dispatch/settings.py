"""Typed settings of the dispatch module.

:class:`IngestSettings` (environment prefix ``HEXCITY_DISPATCH_INGEST_``) configures location
intake: the partitioned bounded queues of :class:`hexcity.dispatch.ingest.IngestService`, the
``driver.location.updates`` sampling, and the HTTP/WebSocket/MQTT transports.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MQTT_TOPICS = ["hexcity/drivers/+/location", "owntracks/+/+"]


class IngestSettings(BaseSettings):
    """Limits and knobs of driver location intake (dispatch.md §2.3)."""

    model_config = SettingsConfigDict(env_prefix="HEXCITY_DISPATCH_INGEST_", extra="ignore")

    # -- the service: partitions, queues, workers ---------------------------------------------------
    partitions: int = Field(
        default=4, ge=1, le=256, description="N of hash(driver_id) % N; one bounded queue + worker each"
    )
    queue_size: int = Field(
        default=10_000, ge=1, le=1_000_000, description="pings waiting per partition; full -> dropped"
    )
    batch_size: int = Field(
        default=64, ge=1, le=4096, description="pings a worker takes per round; index writes coalesced"
    )
    index_write_concurrency: int = Field(
        default=1,
        ge=1,
        le=256,
        description="index writes in flight per partition (1 for in-process; ~16 for Redis round trips)",
    )
    drain_timeout_s: float = Field(
        default=5.0, gt=0, le=300, description="on stop, wait this long for the queues to empty"
    )
    expire_interval_s: float = Field(
        default=2.0, gt=0, le=3600, description="how often stale drivers are expired from the index"
    )
    max_tracked_drivers: int = Field(
        default=200_000, ge=1, le=10_000_000, description="bound of the driver-state and busy maps"
    )
    result_timeout_s: float = Field(
        default=2.0, gt=0, le=60, description="HTTP/WebSocket wait for a ping's verdict ('queued' after)"
    )
    latency_target_s: float = Field(
        default=0.2, gt=0, le=60, description="p99 receipt -> index target (dispatch.md §2.3)"
    )
    snap_max_distance_m: float = Field(
        default=50.0, gt=0, le=10_000, description="RoutingSnapper: farther from a road keeps the raw fix"
    )
    default_accuracy_m: float = Field(
        default=100.0, gt=0, le=100_000, description="accuracy assumed when OwnTracks/OsmAnd omit it"
    )

    # -- driver.location.updates on the bus ---------------------------------------------------------
    publish_locations: bool = Field(default=True, description="publish driver.location.updates if a bus")
    publish_every_s: float = Field(
        default=4.0, ge=0, le=3600, description="at most one event per driver per this (status changes pass)"
    )
    publish_queue_size: int = Field(
        default=10_000, ge=1, le=1_000_000, description="events waiting for the bus; full -> dropped"
    )
    publish_timeout_s: float = Field(default=2.0, gt=0, le=60, description="one bus publish, at most")

    # -- HTTP / WebSocket ---------------------------------------------------------------------------
    max_batch: int = Field(default=100, ge=1, le=10_000, description="pings per POST /dispatch/v1/pings")
    max_body_bytes: int = Field(default=256 * 1024, ge=1024, le=64 << 20, description="HTTP body limit")
    max_frame_bytes: int = Field(default=16 * 1024, ge=256, le=1 << 20, description="WebSocket frame limit")

    # -- MQTT ---------------------------------------------------------------------------------------
    mqtt_enabled: bool = Field(default=False, description="run the MQTT intake (needs a broker)")
    mqtt_url: str = Field(default="mqtt://localhost:1883", pattern=r"^mqtts?://[^/\s]+(:\d+)?/?$")
    mqtt_topics: list[str] = Field(default_factory=lambda: list(DEFAULT_MQTT_TOPICS))
    mqtt_client_id: str = Field(default="", max_length=64, description="empty: random per process")
    mqtt_keepalive_s: int = Field(default=30, ge=5, le=3600)
    mqtt_reconnect_min_s: float = Field(default=0.5, gt=0, le=60)
    mqtt_reconnect_max_s: float = Field(default=10.0, gt=0, le=600)
    mqtt_max_payload_bytes: int = Field(default=16 * 1024, ge=256, le=1 << 20)


class PushSettings(BaseSettings):
    """Push to drivers and riders (dispatch.md §2.8); environment prefix ``HEXCITY_DISPATCH_PUSH_``."""

    model_config = SettingsConfigDict(env_prefix="HEXCITY_DISPATCH_PUSH_", extra="ignore")

    ring_size: int = Field(default=16, ge=1, le=4096, description="unacked messages kept per client")
    queue_size: int = Field(
        default=128, ge=1, le=65_536, description="frames per connection; full -> fallback + close"
    )
    max_clients: int = Field(default=100_000, ge=1, le=10_000_000)
    heartbeat_interval_s: float = Field(default=4.0, ge=0.01, le=300)
    max_payload_bytes: int = Field(default=8192, ge=64, le=1_048_576)
    max_ring_bytes: int = Field(default=256 * 1024 * 1024, ge=64, le=64 * 1024**3)
    directory_url: str = Field(
        default="", description="redis://... to share client->node; empty = in process"
    )
    directory_prefix: str = Field(default="hexcity:")
    directory_ttl_s: int = Field(default=30, ge=1, le=86_400)
    node_id: str = Field(default="", description="this API process in the directory (default hostname:pid)")
