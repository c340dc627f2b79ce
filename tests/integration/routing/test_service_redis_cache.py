"""The table cache configured with a real Redis: values land in Redis and are read back."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import redis
from tests.conftest import require_service

from hexcity.bootstrap import attach_table_cache
from hexcity.kernel import LatLng
from hexcity.routing import RoutingEngine, RoutingSettings

REDIS_URL = "redis://127.0.0.1:6379/14"
PLACES = [LatLng(42.5063, 1.5211), LatLng(42.5345, 1.5806), LatLng(42.4633, 1.4913)]

pytestmark = pytest.mark.integration


@pytest.fixture()
def redis_db() -> redis.Redis:
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        require_service("Redis", False, f"{REDIS_URL}: {exc}")
    client.flushdb()
    yield client
    client.flushdb()


def test_table_cells_round_trip_through_redis(
    graph_dir: Callable[[str, str], Path], redis_db: redis.Redis
) -> None:
    path = graph_dir("andorra", "car")
    exact = RoutingEngine.open(path).table(PLACES)
    writer = RoutingEngine.open(path)
    attach_table_cache(writer, RoutingSettings(cache_enabled=True, cache_redis_url=REDIS_URL))
    np.testing.assert_array_equal(writer.table(PLACES).durations_s, exact.durations_s)
    keys = sorted(k.decode() for k in redis_db.keys("*"))
    assert len(keys) == 6  # 3 x 3 pairs minus the diagonal
    assert all(k.startswith(f"hexcity:rt:{writer.graph_version}:car:") and k.endswith(":-") for k in keys)
    assert all(0 < redis_db.pttl(k) <= 86_400_000 for k in keys)
    # a second process (another engine, same Redis) is served from the shared cells
    reader = RoutingEngine.open(path)
    attach_table_cache(reader, RoutingSettings(cache_enabled=True, cache_redis_url=REDIS_URL))
    np.testing.assert_array_equal(reader.table(PLACES).durations_s, exact.durations_s)
    assert reader.cache is not None
    assert reader.cache.stats["hits"] == 6
    assert reader.cache.stats["engine_calls"] == 1  # only the bypassed diagonal is computed
