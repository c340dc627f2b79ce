"""Contract suite of the reservation engines, run on both: in-process and Redis (commerce.md §2.5).

The Redis run is an integration test (127.0.0.1:6379, a unique key prefix per test, keys deleted
afterwards): it fails in CI and skips on a laptop when Redis is down. Expiry uses a fake clock for
the in-process engine and short real TTLs (Redis ``TIME``) for Redis.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest
import redis
import redis.asyncio as aioredis
from tests.conftest import require_service

from hexcity.commerce.adapters.reservation_memory import MemoryReservationEngine
from hexcity.commerce.adapters.reservation_redis import RedisReservationEngine
from hexcity.commerce.domain.reservation import (
    ConfirmStatus,
    HoldState,
    ReserveStatus,
    draw,
    split_stock,
    start_shard,
)
from hexcity.commerce.errors import InvalidCommerceInput, SystemBusy
from hexcity.commerce.ports import ReservationEngine

REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass
class Harness:
    engine: ReservationEngine
    advance: Callable[[float], Awaitable[None]]


Scenario = Callable[[Harness], Awaitable[None]]


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


def run(backend: str, scenario: Scenario) -> None:
    async def main() -> None:
        if backend == "memory":
            now = [1_700_000_000.0]

            async def advance(seconds: float) -> None:
                now[0] += seconds

            await scenario(Harness(MemoryReservationEngine(clock=lambda: now[0]), advance))
            return
        client = aioredis.Redis.from_url(
            REDIS_URL, socket_timeout=2, socket_connect_timeout=2, decode_responses=True
        )
        prefix = f"hxt:com:{uuid.uuid4().hex[:12]}:"
        try:
            await scenario(Harness(RedisReservationEngine(client, prefix=prefix), asyncio.sleep))
        finally:
            keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
            if keys:
                await client.delete(*keys)
            await client.aclose()

    asyncio.run(asyncio.wait_for(main(), 30))


def rid() -> str:
    return uuid.uuid4().hex


def test_split_and_draw_reference() -> None:
    assert split_stock(10, 3) == [4, 3, 3]
    assert split_stock(0, 2) == [0, 0]
    assert draw([0, 2, 1], 0, 3) == [(1, 2), (2, 1)]
    assert draw([1, 0, 1], 2, 2) == [(2, 1), (0, 1)]
    assert draw([1, 0, 1], 2, 3) is None
    assert start_shard("u1", 7) == start_shard("u1", 7) < 7


def test_preheat_once_and_snapshot(backend: str) -> None:
    async def scenario(h: Harness) -> None:
        assert await h.engine.snapshot("sku1") is None
        assert await h.engine.preheat("sku1", 10, shards=3, per_user_limit=2) is True
        assert await h.engine.preheat("sku1", 99, shards=1, per_user_limit=5) is False
        snap = await h.engine.snapshot("sku1")
        assert snap is not None
        assert (snap.initial, snap.remaining, snap.held, snap.confirmed) == (10, 10, 0, 0)
        assert snap.shards == (4, 3, 3) and snap.per_user_limit == 2 and snap.balanced

    run(backend, scenario)


def test_reserve_not_stocked_and_invalid_inputs_change_nothing(backend: str) -> None:
    async def scenario(h: Harness) -> None:
        result = await h.engine.reserve("nope", "u1", 1, reservation_id=rid())
        assert result.status is ReserveStatus.NOT_STOCKED and result.reservation_id is None
        await h.engine.preheat("sku1", 5, shards=1, per_user_limit=5)
        for quantity in (0, -1, 1001):
            with pytest.raises(InvalidCommerceInput):
                await h.engine.reserve("sku1", "u1", quantity, reservation_id=rid())
        with pytest.raises(InvalidCommerceInput):
            await h.engine.reserve("sku1", "u 1", 1, reservation_id=rid())
        with pytest.raises(InvalidCommerceInput):
            await h.engine.reserve("sku1", "u1", 1, reservation_id=rid(), ttl_s=0)
        with pytest.raises(InvalidCommerceInput):
            await h.engine.preheat("sku2", -1, shards=1, per_user_limit=1)
        snap = await h.engine.snapshot("sku1")
        assert snap is not None and (snap.remaining, snap.held) == (5, 0)

    run(backend, scenario)


def test_reserve_until_sold_out_with_per_user_limit(backend: str) -> None:
    async def scenario(h: Harness) -> None:
        await h.engine.preheat("sku1", 5, shards=2, per_user_limit=2)
        first = await h.engine.reserve("sku1", "alice", 2, reservation_id="r1")
        assert (first.status, first.reservation_id, first.remaining) == (ReserveStatus.RESERVED, "r1", 3)
        limited = await h.engine.reserve("sku1", "alice", 1, reservation_id="r2")
        assert (limited.status, limited.remaining) == (ReserveStatus.LIMIT_EXCEEDED, 3)
        assert (await h.engine.reserve("sku1", "bob", 2, reservation_id="r3")).remaining == 1
        short = await h.engine.reserve("sku1", "carol", 2, reservation_id="r4")
        assert (short.status, short.remaining) == (ReserveStatus.INSUFFICIENT, 1)
        assert (await h.engine.reserve("sku1", "carol", 1, reservation_id="r5")).remaining == 0
        gone = await h.engine.reserve("sku1", "dave", 1, reservation_id="r6")
        assert (gone.status, gone.remaining) == (ReserveStatus.SOLD_OUT, 0)
        # once sold out, "sold out" comes before the buyer's limit (the one-lookup refusal path) ...
        over = await h.engine.reserve("sku1", "alice", 1, reservation_id="r7")
        assert (over.status, over.reservation_id, over.remaining) == (ReserveStatus.SOLD_OUT, None, 0)
        # ... but never before a replay of a hold that exists
        again = await h.engine.reserve("sku1", "alice", 2, reservation_id="r1")
        assert (again.status, again.reservation_id, again.remaining) == (ReserveStatus.RESERVED, "r1", 0)
        snap = await h.engine.snapshot("sku1")
        assert snap is not None and (snap.remaining, snap.held, snap.shards) == (0, 5, (0, 0))
        hold = await h.engine.get("sku1", "r1")
        assert hold is not None and (hold.user_id, hold.quantity, hold.state) == ("alice", 2, HoldState.HELD)
        assert sum(units for _, units in hold.allocation) == 2
        assert await h.engine.get("sku1", "r2") is None

    run(backend, scenario)


def test_sharded_fallback_never_says_sold_out_while_a_shard_has_stock(backend: str) -> None:
    async def scenario(h: Harness) -> None:
        await h.engine.preheat("hot", 10, shards=10, per_user_limit=1)
        users = [f"user{i}" for i in range(40)]
        statuses = [
            (await h.engine.reserve("hot", u, 1, reservation_id=f"r{i}")).status for i, u in enumerate(users)
        ]
        assert statuses[:10] == [ReserveStatus.RESERVED] * 10
        assert statuses[10:] == [ReserveStatus.SOLD_OUT] * 30
        snap = await h.engine.snapshot("hot")
        assert snap is not None and snap.shards == (0,) * 10 and snap.held == 10

    run(backend, scenario)


def test_idempotency_key_returns_first_result_and_never_reserves_twice(backend: str) -> None:
    async def scenario(h: Harness) -> None:
        await h.engine.preheat("sku1", 3, shards=1, per_user_limit=3)
        a = await h.engine.reserve("sku1", "u1", 1, reservation_id="ra", idempotency_key="k1")
        b = await h.engine.reserve("sku1", "u1", 1, reservation_id="rb", idempotency_key="k1")
        assert (a.reservation_id, a.remaining, a.replayed) == ("ra", 2, False)
        assert (b.status, b.reservation_id, b.remaining, b.replayed) == (
            ReserveStatus.RESERVED,
            "ra",
            2,
            True,
        )
        other_user = await h.engine.reserve("sku1", "u2", 1, reservation_id="rc", idempotency_key="k1")
        assert other_user.reservation_id == "rc" and not other_user.replayed
        same_id = await h.engine.reserve("sku1", "u1", 1, reservation_id="ra")
        assert (same_id.reservation_id, same_id.remaining) == ("ra", 1)
        snap = await h.engine.snapshot("sku1")
        assert snap is not None and (snap.remaining, snap.held) == (1, 2)
        await h.engine.reserve("sku1", "u3", 1, reservation_id="rd")
        no = await h.engine.reserve("sku1", "u4", 1, reservation_id="re", idempotency_key="k9")
        again = await h.engine.reserve("sku1", "u4", 1, reservation_id="rf", idempotency_key="k9")
        assert (no.status, again.status, again.replayed) == (
            ReserveStatus.SOLD_OUT,
            ReserveStatus.SOLD_OUT,
            True,
        )

    run(backend, scenario)


def test_release_returns_stock_once_and_frees_the_user_limit(backend: str) -> None:
    async def scenario(h: Harness) -> None:
        await h.engine.preheat("sku1", 4, shards=2, per_user_limit=3)
        await h.engine.reserve("sku1", "u1", 3, reservation_id="r1")
        assert await h.engine.release("sku1", "r1") is True
        assert await h.engine.release("sku1", "r1") is False
        assert await h.engine.release("sku1", "missing") is False
        snap = await h.engine.snapshot("sku1")
        assert snap is not None and (snap.remaining, snap.held, snap.shards) == (4, 0, (2, 2))
        hold = await h.engine.get("sku1", "r1")
        assert hold is not None and hold.state is HoldState.RELEASED
        assert (await h.engine.reserve("sku1", "u1", 3, reservation_id="r2")).reserved
        assert await h.engine.confirm("sku1", "r1") is ConfirmStatus.EXPIRED

    run(backend, scenario)


def test_confirm_is_idempotent_and_confirmed_cannot_be_released(backend: str) -> None:
    async def scenario(h: Harness) -> None:
        await h.engine.preheat("sku1", 2, shards=1, per_user_limit=1)
        await h.engine.reserve("sku1", "u1", 1, reservation_id="r1")
        assert await h.engine.confirm("sku1", "r1") is ConfirmStatus.CONFIRMED
        assert await h.engine.confirm("sku1", "r1") is ConfirmStatus.ALREADY_CONFIRMED
        assert await h.engine.confirm("sku1", "zz") is ConfirmStatus.UNKNOWN
        assert await h.engine.release("sku1", "r1") is False
        limited = await h.engine.reserve("sku1", "u1", 1, reservation_id="r2")
        assert limited.status is ReserveStatus.LIMIT_EXCEEDED
        snap = await h.engine.snapshot("sku1")
        assert snap is not None and (snap.remaining, snap.held, snap.confirmed) == (1, 0, 1) and snap.balanced
        assert await h.engine.held("sku1") == []

    run(backend, scenario)


def test_expired_holds_are_released_once_and_cannot_be_confirmed(backend: str) -> None:
    async def scenario(h: Harness) -> None:
        await h.engine.preheat("sku1", 3, shards=1, per_user_limit=1)
        await h.engine.reserve("sku1", "u1", 1, reservation_id="short", ttl_s=0.2)
        await h.engine.reserve("sku1", "u2", 1, reservation_id="long", ttl_s=60)
        assert [x.reservation_id for x in await h.engine.held("sku1")] == ["short", "long"]
        assert await h.engine.expire_due("sku1") == []
        await h.advance(0.3)
        assert await h.engine.confirm("sku1", "short") is ConfirmStatus.EXPIRED
        assert await h.engine.expire_due("sku1") == ["short"]
        assert await h.engine.expire_due("sku1") == []
        snap = await h.engine.snapshot("sku1")
        assert snap is not None and (snap.remaining, snap.held) == (2, 1) and snap.balanced
        assert await h.engine.confirm("sku1", "long") is ConfirmStatus.CONFIRMED

    run(backend, scenario)


def test_concurrent_reservations_never_oversell(backend: str) -> None:
    async def scenario(h: Harness) -> None:
        await h.engine.preheat("sku1", 50, shards=4, per_user_limit=2)

        gate = asyncio.Semaphore(32)

        async def buyer(i: int) -> int:
            async with gate:
                result = await h.engine.reserve("sku1", f"u{i % 120}", 1, reservation_id=f"r{i}")
            return 1 if result.reserved else 0

        won = sum(await asyncio.gather(*(buyer(i) for i in range(600))))
        assert won == 50
        snap = await h.engine.snapshot("sku1")
        assert snap is not None and (snap.remaining, snap.held) == (0, 50) and snap.balanced
        per_user: dict[str, int] = {}
        for hold in await h.engine.held("sku1", limit=100):
            per_user[hold.user_id] = per_user.get(hold.user_id, 0) + hold.quantity
        assert max(per_user.values()) <= 2 and sum(per_user.values()) == 50

    run(backend, scenario)


def test_drop_forgets_the_sku(backend: str) -> None:
    async def scenario(h: Harness) -> None:
        await h.engine.preheat("sku1", 2, shards=2, per_user_limit=1)
        await h.engine.reserve("sku1", "u1", 1, reservation_id="r1")
        await h.engine.drop("sku1")
        assert await h.engine.snapshot("sku1") is None
        assert await h.engine.get("sku1", "r1") is None
        assert await h.engine.preheat("sku1", 1, shards=1, per_user_limit=1) is True

    run(backend, scenario)


def test_redis_unreachable_fails_closed() -> None:
    async def main() -> None:
        client = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, decode_responses=True)
        engine = RedisReservationEngine(client, prefix="hxt:down:")
        with pytest.raises(SystemBusy) as info:
            await engine.reserve("sku1", "u1", 1, reservation_id="r1")
        assert (info.value.code, info.value.status) == ("SystemBusy", 503)
        await client.aclose()

    asyncio.run(main())
