"""The Redis reservation engine on a real Redis Cluster (3 masters started by this module).

Design under test (docs/commerce.md, "Redis Cluster"): every key of one SKU carries the hash tag
``{sku}``, so a SKU's shards, per-user units, holds and hold queues share ONE slot and the reserve
script decides the per-user limit and the shard fallback atomically in one call; a cluster spreads
*different* SKUs (campaigns) over its nodes. The test runs a hot sale (1,000 units over 8 shards,
20,000 concurrent attempts, limit 2 per buyer) and two smaller sales at the same time, on SKUs
whose slots live on different masters, through ``redis.asyncio.cluster.RedisCluster``.

Needs the ``redis-server`` and ``redis-cli`` binaries (fails in CI, skips on a laptop without them).
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from tests.conftest import require_service

from hexcity.commerce.adapters.reservation_redis import RedisReservationEngine
from hexcity.commerce.domain.reservation import HoldState, ReserveStatus

pytestmark = pytest.mark.integration

HOT_STOCK, SHARDS, LIMIT, ATTEMPTS, BUYERS, TASKS = 1_000, 8, 2, 20_000, 6_000, 64
SIDE_STOCK, SIDE_ATTEMPTS = 100, 1_000


def _free_port() -> int:
    """A port p with p and its cluster-bus port p + 10000 both free."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port > 50_000:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10_000))
            except OSError:
                continue
        return port


def _cli(port: int, *args: str) -> str:
    done = subprocess.run(
        ["redis-cli", "-p", str(port), *args], capture_output=True, text=True, timeout=30, check=False
    )
    return done.stdout


@pytest.fixture(scope="module")
def cluster() -> Iterator[list[int]]:
    """Three cluster-enabled masters on free ports, joined by ``redis-cli --cluster create``."""
    found = shutil.which("redis-server") is not None and shutil.which("redis-cli") is not None
    require_service("redis-server binary", found, "redis-server/redis-cli not on PATH")
    workdir = Path(tempfile.mkdtemp(prefix="hx-cluster-"))
    ports = [_free_port() for _ in range(3)]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for port in ports:
            node = workdir / str(port)
            node.mkdir()
            procs.append(
                subprocess.Popen(
                    [
                        "redis-server",
                        "--port",
                        str(port),
                        "--bind",
                        "127.0.0.1",
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        str(node / "nodes.conf"),
                        "--dir",
                        str(node),
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--logfile",
                        str(node / "log"),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        deadline = time.monotonic() + 10
        while not all(_cli(p, "ping").strip() == "PONG" for p in ports):
            assert time.monotonic() < deadline, "cluster nodes did not start"
            time.sleep(0.05)
        created = subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports), "--cluster-yes"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert created.returncode == 0, created.stdout + created.stderr
        deadline = time.monotonic() + 20
        while not all("cluster_state:ok" in _cli(p, "cluster", "info") for p in ports):
            assert time.monotonic() < deadline, "cluster did not reach cluster_state:ok"
            time.sleep(0.1)
        yield ports
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


def _node_port(client: RedisCluster, key: str) -> int:
    node = client.get_node_from_key(key)
    assert node is not None
    return int(node.port)


def _skus_on_distinct_nodes(client: RedisCluster, prefix: str, count: int) -> list[str]:
    """SKU ids whose slots (``{sku}`` tag) are served by ``count`` different masters."""
    chosen: dict[int, str] = {}
    for i in range(10_000):
        sku = f"sku{i}"
        port = _node_port(client, f"{prefix}{{{sku}}}:h")
        chosen.setdefault(port, sku)
        if len(chosen) == count:
            return list(chosen.values())
    raise AssertionError("could not place SKUs on distinct nodes")


def test_hot_sale_on_a_three_master_cluster_never_oversells(cluster: list[int]) -> None:
    async def main() -> None:
        client = RedisCluster(
            host="127.0.0.1", port=cluster[0], decode_responses=True, socket_timeout=5, max_connections=256
        )
        await client.initialize()
        prefix = "hxt:cl:"
        engine = RedisReservationEngine(client, prefix=prefix)
        hot, side_a, side_b = _skus_on_distinct_nodes(client, prefix, 3)
        try:
            assert await engine.preheat(hot, HOT_STOCK, shards=SHARDS, per_user_limit=LIMIT)
            for sku in (side_a, side_b):
                assert await engine.preheat(sku, SIDE_STOCK, shards=4, per_user_limit=1)
            told: dict[str, list[str]] = {hot: [], side_a: [], side_b: []}
            outcomes: Counter[str] = Counter()
            work = [(hot, f"u{i % BUYERS}", f"h{i}") for i in range(ATTEMPTS)]
            work += [(sku, f"u{i}", f"{sku}x{i}") for sku in (side_a, side_b) for i in range(SIDE_ATTEMPTS)]
            work.sort(key=lambda item: hash(item[2]))  # interleave the three sales
            queue: asyncio.Queue[tuple[str, str, str]] = asyncio.Queue()
            for item in work:
                queue.put_nowait(item)

            async def worker() -> None:
                while not queue.empty():
                    sku, user, rid = queue.get_nowait()
                    got = await engine.reserve(sku, user, 1, reservation_id=rid)
                    outcomes[f"{sku}:{got.status.value}"] += 1
                    if got.reserved:
                        told[sku].append(user)

            began = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(TASKS)))
            elapsed = time.perf_counter() - began

            # exactly the stock, never more; the rest told sold out or over their limit
            assert len(told[hot]) == HOT_STOCK, (outcomes, elapsed)
            assert outcomes[f"{hot}:sold_out"] + outcomes[f"{hot}:limit_exceeded"] == ATTEMPTS - HOT_STOCK
            assert max(Counter(told[hot]).values()) <= LIMIT
            snap = await engine.snapshot(hot)
            assert snap is not None and snap.balanced
            assert (snap.remaining, snap.held, snap.confirmed) == (0, HOT_STOCK, 0)
            assert snap.shards == (0,) * SHARDS  # every shard drained through the fallback, none negative
            holds = await engine.held(hot, limit=5_000)
            assert len(holds) == HOT_STOCK and {h.state for h in holds} == {HoldState.HELD}
            per_user = Counter[str]()
            for h in holds:
                per_user[h.user_id] += h.quantity
                assert sum(units for _, units in h.allocation) == 1
            assert max(per_user.values()) <= LIMIT and sum(per_user.values()) == HOT_STOCK
            assert (
                await engine.reserve(hot, "late", 1, reservation_id="late")
            ).status is ReserveStatus.SOLD_OUT
            for sku in (side_a, side_b):
                side = await engine.snapshot(sku)
                assert len(told[sku]) == SIDE_STOCK and side is not None and side.balanced
                assert side.remaining == 0 and side.held == SIDE_STOCK

            # a SKU's keys share one slot (its hash tag); the three sales live on three masters
            ports = {_node_port(client, f"{prefix}{{{sku}}}:h") for sku in (hot, side_a, side_b)}
            assert len(ports) == 3
            hot_port = _node_port(client, f"{prefix}{{{hot}}}:h")
            hot_keys = [k async for k in client.scan_iter(match=f"{prefix}{{{hot}}}:*")]
            assert len(hot_keys) >= 2 and {key_slot(k.encode()) for k in hot_keys} == {
                key_slot(f"{prefix}{{{hot}}}:h".encode())
            }
            assert int(
                _cli(hot_port, "cluster", "countkeysinslot", str(key_slot(hot_keys[0].encode())))
            ) == len(hot_keys)

            # the rest of the lifecycle on the cluster: confirm, release gives units back once
            first, second = holds[0].reservation_id, holds[1].reservation_id
            assert (await engine.confirm(hot, first)).value == "confirmed"
            assert await engine.release(hot, second) is True and await engine.release(hot, second) is False
            after = await engine.snapshot(hot)
            assert after is not None and after.balanced
            assert (after.remaining, after.held, after.confirmed) == (1, HOT_STOCK - 2, 1)
        finally:
            for sku in (hot, side_a, side_b):
                await engine.drop(sku)
            await client.aclose()

    asyncio.run(asyncio.wait_for(main(), 55))


def test_the_cluster_setting_gives_the_engine_a_cluster_client(cluster: list[int]) -> None:
    """``HEXCITY_COMMERCE_REDIS_CLUSTER=true``: :func:`redis_client` returns a cluster client that
    discovers every master from one seed URL, and the engine reserves through it."""
    from hexcity.commerce import CommerceSettings
    from hexcity.commerce.wiring import redis_client

    async def main() -> None:
        settings = CommerceSettings(redis_url=f"redis://127.0.0.1:{cluster[0]}/0", redis_cluster=True)
        client = redis_client(settings)
        assert isinstance(client, RedisCluster)
        await client.initialize()
        assert sorted(n.port for n in client.get_primaries()) == sorted(cluster)
        engine = RedisReservationEngine(client, prefix="hxt:set:")
        try:
            assert await engine.preheat("sku-set", 3, shards=2, per_user_limit=1)
            got = [await engine.reserve("sku-set", f"u{i}", 1, reservation_id=f"r{i}") for i in range(5)]
            assert [g.reserved for g in got] == [True, True, True, False, False]
            snap = await engine.snapshot("sku-set")
            assert snap is not None and snap.balanced and (snap.remaining, snap.held) == (0, 3)
        finally:
            await engine.drop("sku-set")
            await client.aclose()

    asyncio.run(asyncio.wait_for(main(), 30))
