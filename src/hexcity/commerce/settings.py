"""Typed settings of the commerce module (environment prefix ``HEXCITY_COMMERCE_``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommerceSettings(BaseSettings):
    """Limits and knobs of the flash-sale engine (commerce.md §2)."""

    model_config = SettingsConfigDict(env_prefix="HEXCITY_COMMERCE_", extra="ignore")

    enabled: bool = Field(default=True, description="serve the commerce routes (serve and demo)")
    # -- stores -------------------------------------------------------------------------------------
    redis_url: str | None = Field(default=None, description="None: in-process engine and limiter")
    redis_cluster: bool = Field(
        default=False, description="redis_url names a node of a Redis Cluster: use a cluster client"
    )
    redis_timeout_s: float = Field(default=0.5, gt=0, le=10, description="socket timeout of every Redis call")
    redis_max_connections: int = Field(default=64, ge=1, le=10_000)
    key_prefix: str = Field(default="hexcity:commerce:", min_length=1, max_length=64)
    # -- reservations -------------------------------------------------------------------------------
    hold_ttl_s: float = Field(default=900.0, gt=0, le=86_400, description="reservation TTL before release")
    retention_s: float = Field(default=86_400.0, ge=60, le=30 * 86_400, description="keep outcomes this long")
    default_shards: int = Field(default=8, ge=1, le=64, description="stock shards of a new campaign")
    sold_out_flag_ttl_s: float = Field(default=2.0, gt=0, le=60, description="local sold-out flag lifetime")
    gate_multiple: float = Field(default=2.0, ge=1, le=100, description="attempts in flight ≤ k × remaining")
    # -- rate limits (token buckets) ----------------------------------------------------------------
    user_capacity: int = Field(default=5, ge=1, le=1_000_000)
    user_refill_per_s: float = Field(default=1.0, gt=0, le=1_000_000)
    ip_capacity: int = Field(default=50, ge=1, le=1_000_000)
    ip_refill_per_s: float = Field(default=20.0, gt=0, le=1_000_000)
    global_capacity: int = Field(default=20_000, ge=1, le=1_000_000)
    global_refill_per_s: float = Field(default=10_000.0, gt=0, le=1_000_000)
    rate_limit_fail_open: bool = Field(
        default=False, description="Redis down: True lets requests through (trusted callers only)"
    )
    # -- waiting room -------------------------------------------------------------------------------
    waiting_room_enabled: bool = False
    admissions_per_s: float = Field(default=500.0, ge=0, le=1_000_000)
    admission_ttl_s: float = Field(default=900.0, gt=0, le=86_400)
    admission_secret: SecretStr | None = Field(
        default=None, description="HMAC key (≥ 16 bytes); None: random per process (one instance only)"
    )
    max_queue: int = Field(default=1_000_000, ge=1, le=100_000_000)
    waiting_room_store: Literal["auto", "memory", "redis"] = Field(
        default="auto", description="auto: shared in Redis when the engine uses Redis, else in-process"
    )
    waiting_room_rate_refresh_s: float = Field(
        default=1.0, ge=0, le=60, description="a rate change reaches every process within this time"
    )
    # -- asynchronous persistence -------------------------------------------------------------------
    persist_batch_size: int = Field(default=500, ge=1, le=10_000, description="orders per SQL batch")
    persist_flush_s: float = Field(default=0.2, gt=0, le=60, description="flush a partial batch after this")
    persist_max_attempts: int = Field(default=3, ge=1, le=20, description="then the event goes to the DLQ")
    # -- reconciliation -----------------------------------------------------------------------------
    reconcile_interval_s: float = Field(default=60.0, gt=0, le=3600)
    reconcile_grace_s: float = Field(default=5.0, ge=0, le=3600, description="age before re-publishing")
    reconcile_batch: int = Field(default=1000, ge=1, le=100_000)
    expiry_sweep_interval_s: float = Field(
        default=1.0, gt=0, le=3600, description="virtual clock only: release expired holds this often"
    )
    list_limit: int = Field(default=100, ge=1, le=1000, description="max items per list page")
