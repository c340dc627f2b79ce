"""Contract suite for the live driver index, run against both backends (dispatch.md §2.4).

The in-memory backend always runs; the Redis one is an integration test (127.0.0.1:6379, a unique
key prefix per test, keys deleted afterwards): it fails in CI and skips on a laptop when Redis is
down.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Awaitable, Callable

import pytest
import redis
import redis.asyncio as aioredis
from tests.conftest import require_service

from hexcity.dispatch.adapters.index_memory import InMemoryDriverIndex
from hexcity.dispatch.adapters.index_redis import RedisDriverIndex
from hexcity.dispatch.domain.index import (
    DriverIndexFull,
    IndexParams,
    InvalidIndexInput,
    cell_of,
    k_for_radius,
)
from hexcity.kernel import LatLng, haversine_m

REDIS_URL = "redis://127.0.0.1:6379/0"
HEIDELBERG = LatLng(49.4094, 8.6937)
BOX_DEG = 0.05  # ±0.05° lat (±5.6 km) and ±0.075° lng (±5.4 km) around Heidelberg

Index = InMemoryDriverIndex | RedisDriverIndex
Scenario = Callable[[Index], Awaitable[None]]


@pytest.fixture(
    params=[
        pytest.param("memory", id="memory"),
        pytest.param("redis", id="redis", marks=pytest.mark.integration),
    ]
)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name == "redis":
        client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
        try:
            client.ping()
        except redis.RedisError as exc:
            require_service("Redis", False, f"{REDIS_URL}: {exc}")
        finally:
            client.close()
    return name


def run(backend: str, scenario: Scenario, params: IndexParams | None = None) -> None:
    async def main() -> None:
        if backend == "memory":
            await scenario(InMemoryDriverIndex(params))
            return
        client = aioredis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
        prefix = f"hxt:dix:{uuid.uuid4().hex[:12]}:"
        try:
            await scenario(RedisDriverIndex(client, prefix, params))
        finally:
            keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
            if keys:
                await client.delete(*keys)
            await client.aclose()

    asyncio.run(main())


async def cells_of(index: Index, driver_id: str) -> list[str]:
    if isinstance(index, InMemoryDriverIndex):
        return index.cells_of(driver_id)
    return await index.cells_of(driver_id)


def random_point(rng: random.Random, box_deg: float = BOX_DEG) -> LatLng:
    return LatLng(
        HEIDELBERG.lat + rng.uniform(-box_deg, box_deg),
        HEIDELBERG.lng + rng.uniform(-1.5 * box_deg, 1.5 * box_deg),
    )


def test_k_for_radius_has_one_ring_of_margin() -> None:
    assert [k_for_radius(r) for r in (500.0, 1_000.0, 3_000.0)] == [2, 3, 5]


def test_upsert_moves_between_cells_never_two_or_none(backend: str) -> None:
    async def scenario(ix: Index) -> None:
        rng = random.Random(1)
        for step_s in range(25):
            p = random_point(rng)
            await ix.upsert("d1", p.lat, p.lng, "online", float(step_s))
            assert await cells_of(ix, "d1") == [cell_of(p.lat, p.lng)]
            assert await ix.count() == 1
        # a move inside the same cell keeps it there too
        await ix.upsert("d1", p.lat + 1e-6, p.lng, "online", 30.0)
        assert await cells_of(ix, "d1") == [cell_of(p.lat + 1e-6, p.lng)]

    run(backend, scenario)


@pytest.mark.parametrize(
    "box_deg",
    [
        pytest.param(BOX_DEG, id="sparse-2-per-km2"),
        pytest.param(0.01, id="dense-110-per-km2-early-stop"),
    ],
)
def test_nearby_equals_brute_force(backend: str, box_deg: float) -> None:
    async def scenario(ix: Index) -> None:
        rng = random.Random(42)
        drivers: dict[str, tuple[LatLng, str]] = {}
        for i in range(300):
            p = random_point(rng, box_deg)
            status = "online" if rng.random() < 0.8 else "busy"
            drivers[f"drv-{i:03d}"] = (p, status)
            await ix.upsert(f"drv-{i:03d}", p.lat, p.lng, status, 100.0)
        for q_i in range(20):
            q = random_point(rng, box_deg)
            radius_m = rng.uniform(500.0, 3_000.0)
            limit = 30 if q_i % 2 == 0 else 1_000
            oracle = sorted(
                (haversine_m(q, p), d)
                for d, (p, status) in drivers.items()
                if status == "online" and haversine_m(q, p) <= radius_m
            )[:limit]
            got = await ix.nearby(q.lat, q.lng, radius_m, limit=limit)
            assert [(n.distance_m, n.driver_id) for n in got] == oracle
            for n in got:
                assert (LatLng(n.lat, n.lng), n.status) == drivers[n.driver_id]
                assert n.seen_at_s == 100.0

    run(backend, scenario)


def test_status_filter(backend: str) -> None:
    async def scenario(ix: Index) -> None:
        await ix.upsert("on", HEIDELBERG.lat, HEIDELBERG.lng, "online", 1.0)
        await ix.upsert("busy", HEIDELBERG.lat + 0.001, HEIDELBERG.lng, "busy", 1.0)
        await ix.upsert("off", HEIDELBERG.lat + 0.002, HEIDELBERG.lng, "offline", 1.0)
        lat, lng = HEIDELBERG

        async def ids(statuses: set[str]) -> list[str]:
            return [n.driver_id for n in await ix.nearby(lat, lng, 1_000.0, statuses=statuses)]

        assert [n.driver_id for n in await ix.nearby(lat, lng, 1_000.0)] == ["on"]
        assert await ids({"busy", "offline"}) == ["busy", "off"]
        assert await ids({"online", "busy", "offline"}) == ["on", "busy", "off"]
        assert await ids(set()) == []
        await ix.upsert("busy", HEIDELBERG.lat + 0.001, HEIDELBERG.lng, "online", 2.0)
        assert [n.driver_id for n in await ix.nearby(lat, lng, 1_000.0)] == ["on", "busy"]

    run(backend, scenario)


def test_expire_removes_exactly_the_stale(backend: str) -> None:
    async def scenario(ix: Index) -> None:
        rng = random.Random(7)
        now_s = 1_000.0
        ages_s = {f"d{i}": float(rng.choice([0, 3, 11, 11.5, 12, 12.5, 30])) for i in range(60)}
        points = {d: random_point(rng) for d in ages_s}
        for d, age_s in ages_s.items():
            await ix.upsert(d, points[d].lat, points[d].lng, "online", now_s - age_s)
        stale = {d for d, age_s in ages_s.items() if age_s >= 12.0}
        assert 0 < len(stale) < len(ages_s)
        assert await ix.expire(now_s) == len(stale)
        assert await ix.count() == len(ages_s) - len(stale)
        for d in ages_s:
            want = [] if d in stale else [cell_of(points[d].lat, points[d].lng)]
            assert await cells_of(ix, d) == want
        assert await ix.expire(now_s) == 0
        got = await ix.nearby(HEIDELBERG.lat, HEIDELBERG.lng, 20_000.0, limit=1_000)
        assert {n.driver_id for n in got} == set(ages_s) - stale

    run(backend, scenario)


def test_concurrent_moves_end_in_one_cell(backend: str) -> None:
    async def scenario(ix: Index) -> None:
        rng = random.Random(3)
        points = [random_point(rng) for _ in range(50)]
        await asyncio.gather(
            *(ix.upsert("d1", p.lat, p.lng, "online", float(i)) for i, p in enumerate(points))
        )
        assert await ix.count() == 1
        [last] = await ix.nearby(HEIDELBERG.lat, HEIDELBERG.lng, 20_000.0)
        assert LatLng(last.lat, last.lng) in points
        assert last.seen_at_s == float(points.index(LatLng(last.lat, last.lng)))
        assert await cells_of(ix, "d1") == [cell_of(last.lat, last.lng)]
        if isinstance(ix, InMemoryDriverIndex):  # one loop, no awaits inside: list order
            assert LatLng(last.lat, last.lng) == points[-1]

    run(backend, scenario)


def test_remove(backend: str) -> None:
    async def scenario(ix: Index) -> None:
        lat, lng = HEIDELBERG
        await ix.upsert("d1", lat, lng, "online", 1.0)
        await ix.upsert("d2", lat + 0.001, lng, "online", 1.0)
        assert await ix.remove("d1") is True
        assert await ix.remove("d1") is False
        assert await cells_of(ix, "d1") == []
        assert await ix.count() == 1
        assert [n.driver_id for n in await ix.nearby(lat, lng, 1_000.0)] == ["d2"]
        assert await ix.expire(1_000.0) == 1
        assert await ix.count() == 0

    run(backend, scenario)


def test_cap_refuses_new_drivers(backend: str) -> None:
    async def scenario(ix: Index) -> None:
        lat, lng = HEIDELBERG
        for i in range(3):
            await ix.upsert(f"d{i}", lat + i * 0.01, lng, "online", 1.0)
        with pytest.raises(DriverIndexFull):
            await ix.upsert("d3", lat, lng, "online", 1.0)
        assert await cells_of(ix, "d3") == []
        await ix.upsert("d0", lat + 0.05, lng, "online", 2.0)  # moving a known driver is fine
        assert await ix.count() == 3
        await ix.remove("d1")
        await ix.upsert("d3", lat, lng, "online", 1.0)
        assert await ix.count() == 3

    run(backend, scenario, IndexParams(max_drivers=3))


def test_invalid_input_rejected(backend: str) -> None:
    async def scenario(ix: Index) -> None:
        with pytest.raises(InvalidIndexInput):
            await ix.upsert("d1", 91.0, 8.0, "online", 1.0)
        with pytest.raises(InvalidIndexInput):
            await ix.upsert("", 49.0, 8.0, "online", 1.0)
        with pytest.raises(InvalidIndexInput):
            await ix.nearby(49.0, 8.0, 0.0)
        with pytest.raises(InvalidIndexInput):
            await ix.nearby(49.0, 8.0, 1_000.0, limit=0)
        assert await ix.count() == 0

    run(backend, scenario)
