"""Webhook intake over ASGI: accept, dedupe, shed with 429, reject garbage with stable codes."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import httpx
import orjson
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from tests.conftest import require_service

from hexcity.infra.concurrency import ErrGroup, WorkerPool
from hexcity.infra.webhooks import (
    IdempotencyStore,
    InMemoryIdempotencyStore,
    RedisIdempotencyStore,
    WebhookEvent,
    build_webhook_router,
    readiness_hook,
)

pytestmark = pytest.mark.timeout(60)
T = TypeVar("T")
JSON = {"content-type": "application/json"}


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 50))


@asynccontextmanager
async def intake(
    handler: Callable[[WebhookEvent], Awaitable[None]],
    *,
    workers: int = 2,
    queue_size: int = 10,
    store: IdempotencyStore | None = None,
    max_body_bytes: int = 64 * 1024,
) -> AsyncIterator[tuple[httpx.AsyncClient, WorkerPool[WebhookEvent]]]:
    pool: WorkerPool[WebhookEvent] = WorkerPool(
        "webhooks", workers, queue_size, handler, registry=CollectorRegistry()
    )
    async with pool:
        app = FastAPI()
        app.include_router(
            build_webhook_router(pool, store or InMemoryIdempotencyStore(), max_body_bytes=max_body_bytes)
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client, pool


def recorder() -> tuple[list[WebhookEvent], Callable[[WebhookEvent], Awaitable[None]]]:
    seen: list[WebhookEvent] = []

    async def handler(event: WebhookEvent) -> None:
        seen.append(event)

    return seen, handler


def test_accept_then_duplicate_is_processed_once() -> None:
    seen, handler = recorder()

    async def main() -> None:
        async with intake(handler) as (client, _):
            r1 = await client.post("/webhooks/stripe", json={"id": "evt_1", "amount": 5})
            assert r1.status_code == 202 and r1.json() == {"accepted": True, "id": "evt_1"}
            r2 = await client.post("/webhooks/stripe", json={"id": "evt_1", "amount": 5})
            assert r2.status_code == 200 and r2.json() == {"duplicate": True, "id": "evt_1"}
            # the header wins over the body; another source is another namespace
            r3 = await client.post("/webhooks/stripe", json={"id": "x"}, headers={"Idempotency-Key": "evt_1"})
            assert r3.status_code == 200
            r4 = await client.post("/webhooks/github", json={"id": "evt_1"})
            assert r4.status_code == 202
            r5 = await client.post("/webhooks/github", json={"id": 7})  # integer ids are keys too
            assert r5.status_code == 202 and r5.json()["id"] == "7"

    run(main())
    assert [(e.source, e.key) for e in seen] == [("stripe", "evt_1"), ("github", "evt_1"), ("github", "7")]
    assert seen[0].payload == {"id": "evt_1", "amount": 5}


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "code"),
    [
        ("/webhooks/Bad!", b'{"id": "1"}', JSON, 400, "InvalidSource"),
        ("/webhooks/" + "a" * 65, b'{"id": "1"}', JSON, 400, "InvalidSource"),
        ("/webhooks/s", b"not json", JSON, 400, "InvalidJson"),
        ("/webhooks/s", b'{"id": "1"', JSON, 400, "InvalidJson"),
        ("/webhooks/s", b"\xff\xfe", JSON, 400, "InvalidJson"),
        ("/webhooks/s", b'[{"id": "1"}]', JSON, 422, "NotAnObject"),
        ("/webhooks/s", b'"str"', JSON, 422, "NotAnObject"),
        ("/webhooks/s", b"{}", JSON, 422, "InvalidIdempotencyKey"),
        ("/webhooks/s", b'{"id": ""}', JSON, 422, "InvalidIdempotencyKey"),
        ("/webhooks/s", b'{"id": true}', JSON, 422, "InvalidIdempotencyKey"),
        ("/webhooks/s", b'{"id": "has space"}', JSON, 422, "InvalidIdempotencyKey"),
        ("/webhooks/s", b'{"id": "1"}', {"content-type": "text/plain"}, 415, "UnsupportedMediaType"),
        ("/webhooks/s", b'{"id": "1"}', {}, 415, "UnsupportedMediaType"),
        ("/webhooks/s", b'{"id": "' + b"x" * 2000 + b'"}', JSON, 413, "PayloadTooLarge"),
    ],
)
def test_garbage_is_rejected_with_stable_codes(
    path: str, body: bytes, headers: dict[str, str], status: int, code: str
) -> None:
    seen, handler = recorder()

    async def main() -> None:
        async with intake(handler, max_body_bytes=1024) as (client, pool):
            r = await client.post(path, content=body, headers=headers)
            assert (r.status_code, r.json()["code"]) == (status, code)
            assert pool.stats().submitted == 0

    run(main())
    assert seen == []


def test_too_big_streamed_body_without_content_length() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"id": "1", "pad": "'
        for _ in range(100):
            yield b"x" * 1024
        yield b'"}'

    async def main() -> None:
        _seen, handler = recorder()
        async with intake(handler, max_body_bytes=4096) as (client, _):
            r = await client.post("/webhooks/s", content=chunks(), headers=JSON)
            assert (r.status_code, r.json()["code"]) == (413, "PayloadTooLarge")

    run(main())


def test_saturated_pool_answers_429_enqueues_nothing_and_is_not_ready() -> None:
    async def main() -> None:
        gate = asyncio.Event()
        seen: list[str] = []

        async def handler(event: WebhookEvent) -> None:
            await gate.wait()
            seen.append(event.key)

        async with intake(handler, workers=1, queue_size=5) as (client, pool):
            ready = readiness_hook(pool)
            statuses = []
            for i in range(8):
                r = await client.post("/webhooks/s", json={"id": f"e{i}"})
                statuses.append(r.status_code)
                if r.status_code == 429:
                    assert r.headers["retry-after"] == "1"
                    assert r.json()["code"] == "Overloaded"
                for _ in range(3):
                    await asyncio.sleep(0)  # let the worker take what it can
            assert pool.in_flight == 1
            # 1 taken by the worker, then 4 queued = 80 % of 5: the rest is shed
            assert statuses == [202] * 5 + [429] * 3
            assert pool.depth == 4 and pool.saturation == 0.8
            assert not ready()
            assert pool.stats().dropped == 3
            # a shed event was not remembered: once there is room its retry is accepted
            gate.set()
            await asyncio.sleep(0.05)
            assert ready()
            r = await client.post("/webhooks/s", json={"id": "e5"})
            assert r.status_code == 202

    run(main())


def test_burst_of_5000_counts_every_outcome_exactly() -> None:
    processed: list[str] = []
    n = 5000

    async def main() -> tuple[int, int]:
        async def slow(event: WebhookEvent) -> None:
            await asyncio.sleep(0.002)
            processed.append(event.key)

        statuses: list[int] = []
        async with intake(slow, workers=8, queue_size=50) as (client, pool):

            async def post(i: int) -> None:
                r = await client.post("/webhooks/burst", json={"id": f"e{i}", "pad": "x" * 256})
                statuses.append(r.status_code)
                if r.status_code == 429:
                    assert r.headers["retry-after"] == "1"

            async with ErrGroup(limit=200) as g:  # 200 clients in flight at once
                for i in range(n):
                    await g.go(post, i)
            assert pool.stats().max_depth <= 40  # never above the 80 % shedding line
            accepted, rejected = statuses.count(202), statuses.count(429)
            assert accepted + rejected == n
            assert pool.stats().submitted == accepted
            assert pool.stats().dropped == rejected
        return accepted, rejected

    accepted, rejected = run(main())
    assert accepted > 0 and rejected > 0
    assert len(processed) == accepted  # every accepted one, after the drain
    assert len(set(processed)) == accepted  # exactly once


def test_in_memory_store_is_bounded_with_ttl() -> None:
    now = [0.0]
    store = InMemoryIdempotencyStore(ttl_s=10, max_entries=3, clock=lambda: now[0])

    async def main() -> None:
        assert await store.claim("s", "a")
        assert not await store.claim("s", "a")
        assert await store.claim("t", "a")
        for k in "bcd":
            assert await store.claim("s", k)
        assert len(store) == 3 and store.evictions == 2
        now[0] = 11.0
        assert await store.claim("s", "a")  # expired and evicted entries are forgotten
        assert len(store) == 1
        await store.release("s", "a")
        assert await store.claim("s", "a")

    run(main())


@pytest.mark.integration
def test_redis_store_set_nx_ex() -> None:
    import redis.asyncio as aioredis

    url = os.environ.get("HEXCITY_REDIS_URL", "redis://127.0.0.1:6379/0")

    async def main() -> None:
        client = aioredis.Redis.from_url(url, socket_connect_timeout=1)
        try:
            try:
                await client.ping()
            except Exception as exc:
                require_service("Redis", False, f"{url}: {exc}")
            store = RedisIdempotencyStore(client, ttl_s=30, prefix=f"test:{uuid.uuid4().hex}:")
            assert await store.claim("s", "k1")
            assert not await store.claim("s", "k1")
            ttl = await client.ttl(f"{store.prefix}s:k1")
            assert 0 < ttl <= 30
            await store.release("s", "k1")
            assert await store.claim("s", "k1")
            seen, handler = recorder()
            async with intake(handler, store=store) as (http, _):
                assert (await http.post("/webhooks/s", json={"id": "r1"})).status_code == 202
                assert (await http.post("/webhooks/s", json={"id": "r1"})).status_code == 200
            assert [e.key for e in seen] == ["r1"]
            await client.delete(f"{store.prefix}s:k1", f"{store.prefix}s:r1")
        finally:
            await client.aclose()

    run(main())


def test_payload_round_trips_unchanged() -> None:
    seen, handler = recorder()
    body = {"id": "u1", "nested": {"a": [1, 2.5, None, "ü"]}}

    async def main() -> None:
        async with intake(handler) as (client, _):
            r = await client.post(
                "/webhooks/s",
                content=orjson.dumps(body),
                headers={"content-type": "application/cloudevents+json"},
            )
            assert r.status_code == 202

    run(main())
    assert seen[0].payload == body
