"""Typed settings of the routing module (environment prefix ``HEXCITY_ROUTING_``)."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hexcity" / "graphs"


class RoutingSettings(BaseSettings):
    """Limits and knobs of the routing engine and its HTTP API."""

    model_config = SettingsConfigDict(env_prefix="HEXCITY_ROUTING_", extra="ignore")

    profiles: list[str] = Field(
        default=["car", "bike", "foot"], description="profiles served by `serve --map`"
    )
    cache_dir: Path = Field(
        default_factory=_default_cache_dir, description="where built artefacts are cached"
    )
    verify_checksums: bool = True
    max_table_size: int = Field(
        default=100, ge=1, le=100_000, description="max sources and destinations per side over HTTP"
    )
    max_route_points: int = Field(default=500, ge=2, le=100_000)
    max_nearest_number: int = Field(default=100, ge=1, le=10_000)
    max_snap_distance_m: float = Field(default=1000.0, gt=0, le=1_000_000)
    max_isochrone_contours: int = Field(default=4, ge=1, le=32)
    max_isochrone_minutes: float = Field(default=60.0, gt=0, le=24 * 60)
    isochrone_buffer_m: float = Field(default=40.0, gt=0, le=1000)
    workers: int = Field(
        default=8, ge=1, le=256, description="concurrent queries per profile (workspace pool)"
    )
    queue_timeout_s: float = Field(
        default=5.0, gt=0, le=60, description="wait for a free workspace, then 429"
    )
    cache_enabled: bool = Field(default=False, description="H3 semantic cache for table cells (approximate)")
    cache_resolution: int = Field(default=9, ge=0, le=15)
    cache_ttl_s: float = Field(default=86_400.0, gt=0)
    cache_max_entries: int = Field(default=1_000_000, ge=1)
    cache_redis_url: str | None = Field(
        default=None, description="use Redis as the cell store, e.g. redis://127.0.0.1:6379/0"
    )
