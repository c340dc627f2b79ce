"""IngestService over the Redis driver index: Redis faults never kill intake, and it resumes.

The shared Redis is never restarted: its connections *of this test* are killed with CLIENT KILL
(found by client name), which is what a restart looks like to the client.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Awaitable, Callable

import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry
from tests.conftest import require_service

from hexcity.dispatch.adapters.index_redis import RedisDriverIndex
from hexcity.dispatch.domain.index import (
    DriverIndexFull,
    IndexParams,
    InvalidIndexInput,
    cell_of,
)
from hexcity.dispatch.domain.pings import Ping, PingPipeline
from hexcity.dispatch.ingest import ERROR, IngestService
from hexcity.dispatch.settings import IngestSettings

pytestmark = pytest.mark.integration

REDIS_URL = "redis://127.0.0.1:6379/0"
LAT, LNG = 49.4094, 8.6937
T0 = 1_700_000_000.0


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coro(), 60))


def ping(driver: str, seq: int = 0) -> Ping:
    return Ping(driver, seq, T0 + seq, LAT + seq * 1e-4, LNG, 5.0)


def make_service(index: RedisDriverIndex, clock: Callable[[], float]) -> IngestService:
    return IngestService(
        PingPipeline(),
        index,
        settings=IngestSettings(partitions=2, expire_interval_s=3600),
        registry=CollectorRegistry(),
        clock=clock,
    )


def test_killed_redis_connections_are_survived_and_intake_resumes() -> None:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1.0):
            pass
    except OSError as exc:
        require_service("Redis", False, f"{REDIS_URL}: {exc}")

    async def scenario() -> None:
        name = f"hxt-ingest-{uuid.uuid4().hex[:10]}"
        prefix = f"hxt:ingest:{uuid.uuid4().hex[:12]}:"
        client = aioredis.Redis.from_url(
            REDIS_URL, socket_timeout=2, socket_connect_timeout=2, client_name=name
        )
        admin = aioredis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
        now = [T0]
        service = make_service(RedisDriverIndex(client, prefix), lambda: now[0])
        try:
            async with service:
                assert await service.ingest(ping("d0")) == "accepted"
                killed = 0
                for entry in await admin.client_list():
                    if entry.get("name") == name:
                        await admin.client_kill_filter(_id=entry["id"])
                        killed += 1
                assert killed >= 1
                results = []
                for i in range(1, 6):
                    now[0] += 1
                    results.append(await service.ingest(ping(f"d{i}")))
                # at most the first write after the kill may fail; then the client reconnects
                assert set(results) <= {"accepted", ERROR}
                assert results[-3:] == ["accepted"] * 3
                assert service.counts[ERROR] == results.count(ERROR)
                index = service.index
                assert await index.count() == 6 - results.count(ERROR)
                near = await index.nearby(LAT, LNG, 1000.0)
                assert "d5" in {d.driver_id for d in near}
        finally:
            keys = [k async for k in admin.scan_iter(match=f"{prefix}*", count=1000)]
            if keys:
                await admin.delete(*keys)
            await client.aclose()
            await admin.aclose()

    run(scenario)


def test_redis_down_counts_errors_and_never_kills_a_worker() -> None:
    async def scenario() -> None:
        client = aioredis.Redis.from_url(
            "redis://127.0.0.1:1/0", socket_timeout=0.5, socket_connect_timeout=0.5
        )
        service = make_service(RedisDriverIndex(client, "hxt:down:"), lambda: T0)
        try:
            async with service:
                results = [await service.ingest(ping(f"d{i}")) for i in range(3)]
                assert results == [ERROR] * 3
                assert await service.expire_now() == 0  # logged, counted, not raised
                assert service.stats["expire_errors"] == 1
                assert all(not t.done() for t in service._tasks)  # workers alive
        finally:
            await client.aclose()
        assert service.counts[ERROR] == 3 and service.counts["accepted"] == 3

    run(scenario)


def test_batched_upserts_on_redis() -> None:
    """The proposed ``RedisDriverIndex.upsert_many``: one pipelined round trip, per-row outcomes,
    the same keys as ``upsert``."""
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1.0):
            pass
    except OSError as exc:
        require_service("Redis", False, f"{REDIS_URL}: {exc}")

    async def scenario() -> None:
        prefix = f"hxt:ingest:{uuid.uuid4().hex[:12]}:"
        client = aioredis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
        index = RedisDriverIndex(client, prefix, IndexParams(max_drivers=3))
        try:
            outcomes = await index.upsert_many(
                [
                    ("a", LAT, LNG, "online", T0),
                    ("b", 95.0, LNG, "online", T0),  # invalid
                    ("c", LAT + 0.001, LNG, "busy", T0),
                    ("d", LAT, LNG + 0.001, "online", T0),
                    ("e", LAT, LNG, "online", T0),  # a 4th driver: full
                ]
            )
            assert [type(o) for o in outcomes] == [
                type(None),
                InvalidIndexInput,
                type(None),
                type(None),
                DriverIndexFull,
            ]
            assert await index.count() == 3
            assert [d.driver_id for d in await index.nearby(LAT, LNG, 500.0)] == ["a", "d"]
            assert await index.upsert_many([("a", LAT + 0.01, LNG, "online", T0 + 1)]) == [None]
            assert await index.cells_of("a") == [cell_of(LAT + 0.01, LNG)]  # moved, in one cell
            now = [T0 + 2]
            service = make_service(index, lambda: now[0])
            async with service:
                for i in range(3):
                    service.submit(ping("a", i + 2))
                    service.submit(ping("c", i + 2))
                await service.join()
            assert service.counts["accepted"] == 6 and service.counts[ERROR] == 0
            state = service.driver_state("c")
            assert state is not None and state.status == "online" and state.last_seen_s == T0 + 2
        finally:
            keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
            if keys:
                await client.delete(*keys)
            await client.aclose()

    run(scenario)
