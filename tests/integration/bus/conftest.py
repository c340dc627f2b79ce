"""Builders for the three EventBus adapters against the real local brokers, with test settings."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from tests.conftest import require_service

from hexcity.infra.bus import RetryPolicy
from hexcity.infra.bus.memory import InProcessBus
from hexcity.infra.bus.nats_jetstream import NatsJetStreamBus
from hexcity.infra.bus.redis_streams import RedisStreamsBus

NATS_URL = "nats://127.0.0.1:4222"
REDIS_URL = "redis://127.0.0.1:6379/0"
FAST_RETRY = RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.05)
ACK_WAIT_S = 1.5  # NATS: a killed consumer's message comes back after this
CLAIM_IDLE_S = 1.0  # Redis: a killed consumer's entry is XAUTOCLAIMed after this


def _reachable(port: int) -> tuple[bool, str]:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True, ""
    except OSError as exc:
        return False, str(exc)


def require(kind: str) -> None:
    """Skip (laptop) or fail (CI) when the broker for ``kind`` is down."""
    if kind == "nats":
        ok, detail = _reachable(4222)
        require_service("NATS", ok, f"{NATS_URL}: {detail}")
    elif kind == "redis":
        ok, detail = _reachable(6379)
        require_service("Redis", ok, f"{REDIS_URL}: {detail}")


def make_bus(kind: str, run_id: str) -> Any:
    """A bus of ``kind`` with short timeouts; must be called inside the running loop."""
    if kind == "memory":
        return InProcessBus(publish_timeout_s=2.0, stop_timeout_s=5.0)
    if kind == "nats":
        return NatsJetStreamBus(
            NATS_URL,
            stream_prefix=f"hxt{run_id}",
            partitions=4,
            ack_wait_s=ACK_WAIT_S,
            fetch_timeout_s=0.5,
            request_timeout_s=5.0,
            stop_timeout_s=5.0,
            max_msgs_per_stream=10_000,
            max_bytes_per_stream=16 << 20,
            max_age_s=600.0,
        )
    if kind == "redis":
        return RedisStreamsBus.from_url(
            REDIS_URL,
            timeout_s=5.0,
            prefix=f"hxt:{run_id}",
            partitions=4,
            claim_idle_s=CLAIM_IDLE_S,
            max_len_per_partition=10_000,
            stop_timeout_s=5.0,
        )
    raise ValueError(kind)


async def drop_topics(kind: str, run_id: str, topics: list[str]) -> None:
    """Delete the streams/keys the test created (NATS streams, Redis partition streams)."""
    if kind == "memory":
        return
    bus = make_bus(kind, run_id)
    try:
        for topic in topics:
            await asyncio.wait_for(bus.delete_topic(topic), 10.0)
    finally:
        await asyncio.wait_for(bus.close(), 10.0)


@asynccontextmanager
async def open_bus(kind: str, topics: list[str], run_id: str | None = None) -> AsyncIterator[Any]:
    """A fresh bus; on exit it is closed and the topics (and their DLQs) are deleted."""
    run_id = run_id or uuid.uuid4().hex[:8]
    bus = make_bus(kind, run_id)
    try:
        yield bus
    finally:
        await asyncio.wait_for(bus.close(), 20.0)
        await drop_topics(kind, run_id, [*topics, *(t + ".dlq" for t in topics)])


async def wait_until(pred: Callable[[], bool], timeout_s: float = 20.0) -> None:
    """Poll ``pred`` every 20 ms; TimeoutError after ``timeout_s``."""

    async def loop() -> None:
        while not pred():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(loop(), timeout_s)


def new_topic() -> str:
    """A unique topic name (valid for every adapter)."""
    return f"t.{uuid.uuid4().hex[:10]}"


@pytest.fixture(params=["memory", "nats", "redis"])
def kind(request: pytest.FixtureRequest) -> str:
    """Adapter under test; broker-backed ones skip/fail when their service is down."""
    name = str(request.param)
    require(name)
    return name
