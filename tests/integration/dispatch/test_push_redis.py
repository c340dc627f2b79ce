"""The Redis push connection directory against a real Redis (127.0.0.1:6379, a unique prefix per test)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import pytest
import redis
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry
from tests.conftest import require_service

from hexcity.dispatch.adapters.push_redis import RedisConnectionDirectory
from hexcity.dispatch.push import PushHub, PushParams

pytestmark = pytest.mark.integration
REDIS_URL = "redis://127.0.0.1:6379/0"

Scenario = Callable[[aioredis.Redis, str], Awaitable[None]]


@pytest.fixture(autouse=True)
def redis_up() -> None:
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        require_service("Redis", False, f"{REDIS_URL}: {exc}")
    finally:
        client.close()


def run(scenario: Scenario) -> None:
    async def main() -> None:
        client = aioredis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
        prefix = f"hxt:push:{uuid.uuid4().hex[:12]}:"
        try:
            await asyncio.wait_for(scenario(client, prefix), 20)
        finally:
            keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
            if keys:
                await client.delete(*keys)
            await client.aclose()

    asyncio.run(main())


def test_register_lookup_ttl_and_compare_and_delete() -> None:
    async def scenario(client: aioredis.Redis, prefix: str) -> None:
        directory = RedisConnectionDirectory(client, prefix, ttl_s=30)
        await directory.register("driver:d1", "node-a")
        assert await directory.lookup("driver:d1") == "node-a"
        assert 29 <= await client.ttl(directory.key("driver:d1")) <= 30
        assert await directory.lookup("driver:nobody") is None
        # the client moved to node-b: node-a's late unregister and refresh leave it alone
        await directory.register("driver:d1", "node-b")
        await directory.unregister("driver:d1", "node-a")
        await client.expire(directory.key("driver:d1"), 5)
        await directory.refresh(["driver:d1"], "node-a")
        assert await directory.lookup("driver:d1") == "node-b"
        assert await client.ttl(directory.key("driver:d1")) <= 5
        await directory.refresh(["driver:d1"], "node-b")
        assert await client.ttl(directory.key("driver:d1")) >= 29
        await directory.unregister("driver:d1", "node-b")
        assert await directory.lookup("driver:d1") is None
        # a refresh re-creates an entry lost to an unregister/register race
        await directory.refresh(["driver:d1"], "node-b")
        assert await directory.lookup("driver:d1") == "node-b"

    run(scenario)


def test_entries_expire_when_the_node_stops_refreshing() -> None:
    async def scenario(client: aioredis.Redis, prefix: str) -> None:
        directory = RedisConnectionDirectory(client, prefix, ttl_s=1)
        await directory.register("rider:r1", "node-a")
        assert await directory.lookup("rider:r1") == "node-a"
        await asyncio.sleep(1.3)
        assert await directory.lookup("rider:r1") is None

    run(scenario)


def test_two_hubs_share_the_directory() -> None:
    async def scenario(client: aioredis.Redis, prefix: str) -> None:
        params = PushParams(directory_refresh_s=0.2)
        registry_a = CollectorRegistry()
        hub_a = PushHub(
            params, directory=RedisConnectionDirectory(client, prefix, 1), node_id="a", registry=registry_a
        )
        hub_b = PushHub(
            params,
            directory=RedisConnectionDirectory(client, prefix, 1),
            node_id="b",
            registry=CollectorRegistry(),
        )
        directory = RedisConnectionDirectory(client, prefix)
        conn_a = await hub_a.connect("driver:d1", 0)
        assert await directory.lookup("driver:d1") == "a"
        hub_a.start()
        await asyncio.sleep(1.5)  # past the 1 s TTL: kept alive by hub a's refresh
        assert await directory.lookup("driver:d1") == "a"
        conn_b = await hub_b.connect("driver:d1", 0)  # the driver reconnected through node b
        assert await directory.lookup("driver:d1") == "b"
        await hub_a.disconnect(conn_a)  # node a notices late: must not erase b's entry
        assert await directory.lookup("driver:d1") == "b"
        await hub_b.disconnect(conn_b)
        assert await directory.lookup("driver:d1") is None
        await hub_a.aclose()
        await hub_b.aclose()
        assert registry_a.get_sample_value("dispatch_push_directory_errors_total") == 0

    run(scenario)
