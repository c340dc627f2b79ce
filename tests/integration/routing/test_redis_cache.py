"""RedisCellStore and SemanticTableCache against the real Redis at 127.0.0.1:6379."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from hexcity.kernel import LatLng, haversine_m
from hexcity.routing.adapters.cache_stores import MGET_CHUNK_KEYS, RedisCellStore, encode_cell
from hexcity.routing.domain.cache_keys import CachedCell
from hexcity.routing.ports import CellStoreUnavailable
from hexcity.routing.table_cache import SemanticTableCache

pytestmark = pytest.mark.integration

GRID = [LatLng(49.38 + 0.02 * r, 8.64 + 0.03 * c) for r in range(4) for c in range(4)]


class CountingRedis(redis.Redis):
    """Counts round trips: one per plain command, one per pipeline execute."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands: list[str] = []

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.commands.append(str(args[0]))
        return super().execute_command(*args, **options)

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        pipe = super().pipeline(transaction, shard_hint)
        original = pipe.execute

        def execute(raise_on_error: bool = True) -> Any:
            names = sorted({str(cmd[0][0]) for cmd in pipe.command_stack})
            self.commands.append("PIPELINE[" + ",".join(names) + "]")
            return original(raise_on_error)

        pipe.execute = execute  # type: ignore[method-assign]
        return pipe


@pytest.fixture(scope="module")
def client() -> Iterator[CountingRedis]:
    conn = CountingRedis(host="127.0.0.1", port=6379, socket_timeout=2, socket_connect_timeout=2)
    try:
        conn.ping()
    except redis.RedisError:
        if os.environ.get("CI") == "true":
            pytest.fail("Redis not reachable at 127.0.0.1:6379")
        pytest.skip("Redis not reachable at 127.0.0.1:6379")
    yield conn
    conn.close()


@pytest.fixture
def prefix(client: CountingRedis) -> Iterator[str]:
    key_prefix = f"test:{uuid.uuid4().hex}:"
    client.commands.clear()
    yield key_prefix
    keys = list(client.scan_iter(match=key_prefix + "*", count=1000))
    if keys:
        client.delete(*keys)


class Engine:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, sources: Sequence[LatLng], dests: Sequence[LatLng]) -> tuple[np.ndarray, np.ndarray]:
        self.calls += 1
        distances = np.array([[haversine_m(s, d) * 1.3 for d in dests] for s in sources])
        return distances / 10.0, distances


def test_round_trip_of_positive_and_negative_cells(client: CountingRedis, prefix: str) -> None:
    store = RedisCellStore(client, key_prefix=prefix)
    positive = CachedCell(123.5, 1500.25, 0.01, 1_700_000_000.0, 60.0)
    negative = CachedCell(None, None, 0.02, 1_700_000_000.0, 120.0)
    store.put_many([("a", positive), ("b", negative)])
    assert store.get_many(["a", "b", "missing"]) == [positive, negative, None]
    assert 0 < client.pttl(prefix + "a") <= 60_000
    assert 60_000 < client.pttl(prefix + "b") <= 120_000
    assert len(client.get(prefix + "a") or b"") == 41
    store.put_many([("c", positive)], ttl_s=5.0)  # explicit override
    assert 0 < client.pttl(prefix + "c") <= 5_000


def test_batches_are_one_round_trip(client: CountingRedis, prefix: str) -> None:
    store = RedisCellStore(client, key_prefix=prefix)
    cell = CachedCell(1.0, 2.0, 0.0, 0.0, 30.0)
    store.put_many([(f"k{n}", cell) for n in range(300)])
    store.get_many([f"k{n}" for n in range(300)])
    assert client.commands == ["PIPELINE[SET]", "MGET"]


def test_huge_get_is_one_pipeline_of_mget_chunks(client: CountingRedis, prefix: str) -> None:
    store = RedisCellStore(client, key_prefix=prefix)
    cell = CachedCell(1.0, 2.0, 0.0, 0.0, 30.0)
    n_keys = MGET_CHUNK_KEYS + 5
    store.put_many([(f"k{n}", cell) for n in range(0, n_keys, 1000)])
    client.commands.clear()
    got = store.get_many([f"k{n}" for n in range(n_keys)])
    assert client.commands == ["PIPELINE[MGET]"]
    assert len(got) == n_keys
    assert sum(c is not None for c in got) == len(range(0, n_keys, 1000))


def test_foreign_values_read_as_misses(client: CountingRedis, prefix: str) -> None:
    client.set(prefix + "junk", b"not a cell", px=10_000)
    client.set(prefix + "v9", b"\x09" + encode_cell(CachedCell(1.0, 1.0, 0.0, 0.0, 1.0))[1:], px=10_000)
    assert RedisCellStore(client, key_prefix=prefix).get_many(["junk", "v9"]) == [None, None]


def test_table_request_is_one_mget_and_one_pipeline(client: CountingRedis, prefix: str) -> None:
    engine = Engine()
    cache = SemanticTableCache(engine, RedisCellStore(client, key_prefix=prefix), "v1", "car")
    cold = cache.table(GRID[:8], GRID[8:])
    assert client.commands == ["MGET", "PIPELINE[SET]"]
    assert (cold.misses, engine.calls) == (64, 1)

    client.commands.clear()
    warm = cache.table(GRID[:8], GRID[8:])
    assert client.commands == ["MGET"]
    assert (warm.hits, engine.calls) == (64, 1)
    np.testing.assert_array_equal(warm.durations_s, cold.durations_s)
    np.testing.assert_array_equal(warm.distances_m, cold.distances_m)

    other = SemanticTableCache(engine, RedisCellStore(client, key_prefix=prefix), "v2", "car")
    assert other.table(GRID[:8], GRID[8:]).hits == 0  # graph_version bump


def test_shared_between_cache_instances(client: CountingRedis, prefix: str) -> None:
    engine = Engine()
    first = SemanticTableCache(engine, RedisCellStore(client, key_prefix=prefix), "v1", "car")
    second = SemanticTableCache(engine, RedisCellStore(client, key_prefix=prefix), "v1", "car")
    first.table(GRID[:3], GRID[3:6])
    assert second.table(GRID[:3], GRID[3:6]).hits == 9
    assert engine.calls == 1


def test_unreachable_redis_raises_cell_store_unavailable() -> None:
    no_retry = Retry(NoBackoff(), 0)
    dead = redis.Redis(
        host="127.0.0.1", port=1, socket_timeout=0.2, socket_connect_timeout=0.2, retry=no_retry
    )
    store = RedisCellStore(dead)
    with pytest.raises(CellStoreUnavailable):
        store.get_many(["a"])
    with pytest.raises(CellStoreUnavailable):
        store.put_many([("a", CachedCell(1.0, 1.0, 0.0, 0.0, 1.0))])


def test_decoding_client_is_rejected() -> None:
    with pytest.raises(ValueError):
        RedisCellStore(redis.Redis(host="127.0.0.1", port=6379, decode_responses=True))
