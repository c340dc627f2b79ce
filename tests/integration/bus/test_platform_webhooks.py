"""Webhook intake → bus, with the bus chosen by URL like `hexcity serve` does (real brokers)."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from tests.integration.bus.conftest import NATS_URL, REDIS_URL, require

from hexcity.bootstrap import build_bus, build_platform
from hexcity.infra.bus import Delivery
from hexcity.infra.webhooks import WebhookEvent
from hexcity.platform import WEBHOOK_TOPIC, PlatformSettings, webhook_event

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(("kind", "url"), [("memory", "memory://"), ("nats", NATS_URL), ("redis", REDIS_URL)])
def test_accepted_webhooks_reach_a_consumer_group_once(kind: str, url: str) -> None:
    require(kind)
    asyncio.run(asyncio.wait_for(_roundtrip(url), timeout=60))


async def _roundtrip(url: str) -> None:
    platform = build_platform(PlatformSettings(bus_url=url, webhook_workers=4, webhook_queue_size=16))
    group = f"test-{uuid.uuid4().hex[:8]}"
    run = uuid.uuid4().hex[:8]
    seen: list[str] = []

    async def handler(delivery: Delivery) -> None:
        if delivery.event.key.startswith(f"test:{run}-"):
            seen.append(delivery.event.event_id)

    async with platform:
        subscription = await platform.bus.subscribe(WEBHOOK_TOPIC, group, handler)
        events = [WebhookEvent("test", f"{run}-{i}", {"i": i}, time.time()) for i in range(10)]
        for event in events:
            await platform.webhook_pool.submit(event)
        deadline = time.monotonic() + 30
        while len(seen) < len(events) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await subscription.stop()
    assert sorted(seen) == sorted(webhook_event(e).event_id for e in events)


def test_bus_url_picks_the_adapter() -> None:
    assert type(build_bus("memory://")).__name__ == "InProcessBus"
    assert type(build_bus("nats://127.0.0.1:4222")).__name__ == "NatsJetStreamBus"
    assert type(build_bus("redis://127.0.0.1:6379/0")).__name__ == "RedisStreamsBus"
    with pytest.raises(ValueError, match="bus_url"):
        PlatformSettings(bus_url="kafka://nowhere")
