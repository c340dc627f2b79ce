"""MQTT intake against the real Mosquitto (localhost:1883), into the in-memory and Redis indexes.

Topic filters carry a per-test prefix so parallel runs and other users of the broker never mix.
Reconnect is tested without touching the shared broker: a second client with the same client id
takes the session over (the broker drops ours), then leaves; the intake must reconnect and resume.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiomqtt
import orjson
import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry
from tests.conftest import require_service

from hexcity.dispatch.adapters.index_memory import InMemoryDriverIndex
from hexcity.dispatch.adapters.index_redis import RedisDriverIndex
from hexcity.dispatch.adapters.mqtt_intake import MqttIntake
from hexcity.dispatch.domain.pings import PingPipeline
from hexcity.dispatch.ingest import IngestService
from hexcity.dispatch.settings import IngestSettings

pytestmark = pytest.mark.integration

MQTT_HOST, MQTT_PORT = "127.0.0.1", 1883
REDIS_URL = "redis://127.0.0.1:6379/0"
LAT, LNG = 49.4094, 8.6937
T0 = 1_700_000_000.0


def _reachable(port: int) -> tuple[bool, str]:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True, ""
    except OSError as exc:
        return False, str(exc)


@pytest.fixture(autouse=True)
def mosquitto() -> None:
    ok, detail = _reachable(MQTT_PORT)
    require_service("Mosquitto", ok, f"mqtt://{MQTT_HOST}:{MQTT_PORT}: {detail}")


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coro(), 60))


def make_service(index: Any) -> IngestService:
    return IngestService(
        PingPipeline(),
        index,
        settings=IngestSettings(partitions=2, expire_interval_s=3600),
        registry=CollectorRegistry(),
    )


@asynccontextmanager
async def publisher() -> AsyncIterator[aiomqtt.Client]:
    async with aiomqtt.Client(MQTT_HOST, MQTT_PORT, identifier=f"hxt-pub-{uuid.uuid4().hex[:10]}") as client:
        yield client


def json_ping(i: int, seq: int = 0) -> bytes:
    return orjson.dumps(
        {"seq": seq, "timestamp": T0 + seq, "lat": LAT + i * 1e-4, "lon": LNG, "accuracy": 5.0}
    )


async def until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.02)


async def feed_and_check(index: Any) -> None:
    run_id = uuid.uuid4().hex[:10]
    base = f"hxt{run_id}"
    service = make_service(index)
    intake = MqttIntake(
        service,
        f"mqtt://{MQTT_HOST}:{MQTT_PORT}",
        topics=[f"{base}/drivers/+/location", "owntracks/+/+"],
        client_id=f"hxt-intake-{run_id}",
    )
    async with service, intake, publisher() as pub:
        await intake.wait_connected()
        for i in range(50):
            await pub.publish(f"{base}/drivers/d{i}/location", json_ping(i), qos=0)
        for i in range(5):
            payload = {"_type": "location", "lat": LAT, "lon": LNG + i * 1e-3, "tst": int(T0), "acc": 8}
            await pub.publish(f"owntracks/{base}-u{i}/phone", orjson.dumps(payload), qos=0)
        await pub.publish(f"{base}/drivers/d0/location", b"garbage", qos=0)
        await pub.publish(f"{base}/drivers/d1/location", orjson.dumps({"driver_id": "d2"}), qos=0)
        await pub.publish(f"{base}/drivers/d2/location", orjson.dumps({"seq": 1}), qos=0)
        await until(lambda: service.counts["accepted"] == 55 and service.counts["invalid"] == 3)
        await service.join()
        assert await index.count() == 55
        near = await index.nearby(LAT, LNG, 2000.0, limit=100)
        ids = {d.driver_id for d in near}
        assert {f"d{i}" for i in range(50)} <= ids
        assert {f"{base}-u{i}" for i in range(5)} <= ids
        d7 = next(d for d in near if d.driver_id == "d7")
        assert abs(d7.lat - (LAT + 7e-4)) < 1e-9 and abs(d7.lng - LNG) < 1e-9
    assert intake.stats["submitted"] == 55
    assert service.counts["dropped"] == 0 and service.counts["errors"] == 0


def test_pings_over_mqtt_reach_the_memory_index() -> None:
    run(lambda: feed_and_check(InMemoryDriverIndex()))


def test_pings_over_mqtt_reach_the_redis_index() -> None:
    ok, detail = _reachable(6379)
    require_service("Redis", ok, f"{REDIS_URL}: {detail}")

    async def scenario() -> None:
        client = aioredis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
        prefix = f"hxt:ingest:{uuid.uuid4().hex[:12]}:"
        try:
            await feed_and_check(RedisDriverIndex(client, prefix))
        finally:
            keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
            if keys:
                await client.delete(*keys)
            await client.aclose()

    run(scenario)


def test_intake_reconnects_after_the_broker_drops_it() -> None:
    async def scenario() -> None:
        run_id = uuid.uuid4().hex[:10]
        base = f"hxt{run_id}"
        client_id = f"hxt-intake-{run_id}"
        service = make_service(InMemoryDriverIndex())
        intake = MqttIntake(
            service,
            f"mqtt://{MQTT_HOST}:{MQTT_PORT}",
            topics=[f"{base}/drivers/+/location"],
            client_id=client_id,
            reconnect_min_s=0.2,
            reconnect_max_s=0.5,
        )
        async with service, intake, publisher() as pub:
            await intake.wait_connected()
            await pub.publish(f"{base}/drivers/before/location", json_ping(0), qos=0)
            await until(lambda: service.counts["accepted"] == 1)
            # session takeover: the broker disconnects the intake, which must come back
            try:
                async with aiomqtt.Client(MQTT_HOST, MQTT_PORT, identifier=client_id):
                    await until(lambda: intake.stats["disconnects"] >= 1, 5.0)
            except aiomqtt.MqttError:
                pass  # the intake may already have taken the session back
            await until(lambda: intake.stats["connects"] >= 2 and intake.connected.is_set(), 10.0)
            for attempt in range(20):  # QoS 0: publish until the resubscribed intake sees it
                await pub.publish(f"{base}/drivers/after/location", json_ping(1, seq=attempt), qos=0)
                await asyncio.sleep(0.1)
                if service.driver_state("after") is not None:
                    break
            await service.join()
            assert service.driver_state("before") is not None
            assert service.driver_state("after") is not None
        assert intake.stats["disconnects"] >= 1 and intake.stats["connects"] >= 2
        assert service.counts["errors"] == 0

    run(scenario)
