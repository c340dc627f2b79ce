"""Live driver index: ``nearby`` latency with 100,000 drivers, against a Redis GEOSEARCH anchor.

dispatch.md §2.4 / §4. 100,000 drivers uniform in a 33×33 km box around Heidelberg (about
92/km², the §4 fixture); 1,000 query points uniform in the box shrunk by 3 km on each side (so
every query sees the full density); ``nearby(radius, limit=30)`` at 1 km and 3 km for:

* ``InMemoryDriverIndex`` (in process);
* ``RedisDriverIndex`` (one Lua script per query over the pruned res-8 k-ring);
* the anchor, measured in the same run on the same drivers: ``GEOADD`` into a temporary key, then
  ``GEOSEARCH FROMLONLAT lng lat BYRADIUS r m ASC COUNT 30 WITHCOORD WITHDIST`` (the same
  question: the 30 nearest with positions), and the full radius without ``COUNT`` for reference
  (first 100 queries only).

Latency is client-side wall time per awaited call (one query in flight at a time), p50/p99 over
the 1,000 queries. Server-side µs/call come from ``INFO commandstats`` deltas (the Redis is shared,
so other clients' EVALSHA/GEOSEARCH calls during the run would be counted too). The first 100
queries of each radius are cross-checked: both backends return the same ids. All benchmark keys
use a unique prefix and are deleted at the end. Writes ``benchmarks/results/dispatch-index.md``.

    .venv/bin/python benchmarks/dispatch_index.py            # full (~1-2 min)
    .venv/bin/python benchmarks/dispatch_index.py --quick    # 10,000 drivers, 100 queries, no file
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import math
import os
import platform
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from hexcity.dispatch.adapters.index_memory import InMemoryDriverIndex
from hexcity.dispatch.adapters.index_redis import RedisDriverIndex
from hexcity.dispatch.domain.index import IndexParams, NearbyDriver, candidate_cells, k_for_radius

REPO = Path(__file__).resolve().parents[1]
RESULT_MD = REPO / "benchmarks" / "results" / "dispatch-index.md"
REDIS_URL = "redis://127.0.0.1:6379/0"
CENTRE_LAT, CENTRE_LNG = 49.4094, 8.6937
BOX_M = 33_000.0
QUERY_MARGIN_M = 3_000.0
RADII_M = (1_000.0, 3_000.0)
LIMIT = 30
TARGET_P99_MS = 10.0
LOAD_CONCURRENCY = 64
CROSS_CHECK = 100
FULL_REFERENCE_QUERIES = 100  # GEOSEARCH without COUNT returns ~2,600 rows at 3 km: slow
M_PER_DEG_LAT = 111_195.0


def box_point(rng: random.Random, half_m: float) -> tuple[float, float]:
    m_per_deg_lng = M_PER_DEG_LAT * math.cos(math.radians(CENTRE_LAT))
    return (
        CENTRE_LAT + rng.uniform(-half_m, half_m) / M_PER_DEG_LAT,
        CENTRE_LNG + rng.uniform(-half_m, half_m) / m_per_deg_lng,
    )


def pct(values_ms: list[float], q: float) -> float:
    ordered = sorted(values_ms)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


async def timed(
    queries: list[tuple[float, float]], call: Callable[[float, float], Awaitable[int]]
) -> tuple[list[float], float]:
    """Per-query latency in ms and the mean number of results."""
    lat_ms: list[float] = []
    results = 0
    for lat, lng in queries:
        t0 = time.perf_counter()
        results += await call(lat, lng)
        lat_ms.append((time.perf_counter() - t0) * 1e3)
    return lat_ms, results / len(queries)


async def commandstats(client: aioredis.Redis) -> dict[str, tuple[int, int]]:
    info: dict[str, Any] = await client.info("commandstats")
    return {
        k.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"]))
        for k, v in info.items()
        if isinstance(v, dict)
    }


def server_us(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]], cmd: str) -> str:
    calls = after.get(cmd, (0, 0))[0] - before.get(cmd, (0, 0))[0]
    usec = after.get(cmd, (0, 0))[1] - before.get(cmd, (0, 0))[1]
    return f"{usec / calls:,.0f}" if calls > 0 else "n/a"


async def main(n_drivers: int, n_queries: int, write: bool) -> None:
    started = time.perf_counter()
    rng = random.Random(2026)
    drivers = [(f"drv-{i:06d}", *box_point(rng, BOX_M / 2)) for i in range(n_drivers)]
    queries = [box_point(rng, BOX_M / 2 - QUERY_MARGIN_M) for _ in range(n_queries)]
    params = IndexParams(max_drivers=max(n_drivers, 1))
    seen_at_s = 1_000.0

    memory = InMemoryDriverIndex(params)
    t0 = time.perf_counter()
    for driver_id, lat, lng in drivers:
        await memory.upsert(driver_id, lat, lng, "online", seen_at_s)
    load_memory_s = time.perf_counter() - t0

    client = aioredis.Redis.from_url(
        REDIS_URL, socket_timeout=5, socket_connect_timeout=5, max_connections=LOAD_CONCURRENCY + 4
    )
    prefix = f"hxbench:dix:{uuid.uuid4().hex[:10]}:"
    geo_key = f"{prefix}geo"
    rows: list[str] = []
    try:
        server_info: dict[str, Any] = await client.info("server")
        ix = RedisDriverIndex(client, prefix, params)
        t0 = time.perf_counter()
        for start in range(0, n_drivers, LOAD_CONCURRENCY):
            chunk = drivers[start : start + LOAD_CONCURRENCY]
            await asyncio.gather(*(ix.upsert(d, la, ln, "online", seen_at_s) for d, la, ln in chunk))
        load_redis_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for start in range(0, n_drivers, 1_000):
            flat: list[Any] = []
            for d, la, ln in drivers[start : start + 1_000]:
                flat += [ln, la, d]
            await client.execute_command("GEOADD", geo_key, *flat)
        load_geo_s = time.perf_counter() - t0
        assert await ix.count() == n_drivers

        async def mem_call(radius_m: float) -> Callable[[float, float], Awaitable[int]]:
            async def call(lat: float, lng: float) -> int:
                return len(await memory.nearby(lat, lng, radius_m, limit=LIMIT))

            return call

        async def redis_call(radius_m: float) -> Callable[[float, float], Awaitable[int]]:
            async def call(lat: float, lng: float) -> int:
                return len(await ix.nearby(lat, lng, radius_m, limit=LIMIT))

            return call

        def geo_call(radius_m: float, count: int | None) -> Callable[[float, float], Awaitable[int]]:
            extra: list[Any] = ["ASC"] + (["COUNT", count] if count else []) + ["WITHCOORD", "WITHDIST"]

            async def call(lat: float, lng: float) -> int:
                got = await client.execute_command(
                    "GEOSEARCH", geo_key, "FROMLONLAT", lng, lat, "BYRADIUS", radius_m, "m", *extra
                )
                return len(got)

            return call

        rows.append(
            "| radius | backend | p50 ms | p99 ms | mean results | server µs/call | "
            "p50 vs anchor | p99 vs anchor | p99 < 10 ms |"
        )
        rows.append("|---|---|---:|---:|---:|---:|---:|---:|---|")
        notes: list[str] = []
        for radius_m in RADII_M:
            # cross-check before timing: both backends give the same answer
            for lat, lng in queries[:CROSS_CHECK]:
                a: list[NearbyDriver] = await memory.nearby(lat, lng, radius_m, limit=LIMIT)
                b = await ix.nearby(lat, lng, radius_m, limit=LIMIT)
                assert [n.driver_id for n in a] == [n.driver_id for n in b], (lat, lng, radius_m)
            cells = statistics.fmean(len(candidate_cells(la, ln, radius_m)) for la, ln in queries[:100])
            k = k_for_radius(radius_m)
            notes.append(
                f"- {radius_m / 1e3:g} km: K={k} ({1 + 3 * k * (k + 1)} cells in the ring), "
                f"{cells:.1f} cells after pruning (mean of 100 queries); both backends read them ring by "
                f"ring and stop once {LIMIT} drivers are surely within the radius the rings cover"
            )
            results: list[tuple[str, list[float], float, str]] = []
            lat_ms, mean_n = await timed(queries, await mem_call(radius_m))
            results.append(("hexcity in-memory", lat_ms, mean_n, "-"))
            before = await commandstats(client)
            lat_ms, mean_n = await timed(queries, await redis_call(radius_m))
            after = await commandstats(client)
            results.append(
                ("hexcity Redis (Lua over k-ring)", lat_ms, mean_n, server_us(before, after, "evalsha"))
            )
            before = await commandstats(client)
            anchor_ms, mean_n = await timed(queries, geo_call(radius_m, LIMIT))
            after = await commandstats(client)
            anchor = (
                "anchor: GEOSEARCH ASC COUNT 30",
                anchor_ms,
                mean_n,
                server_us(before, after, "geosearch"),
            )
            before = await commandstats(client)
            full_ms, mean_n = await timed(queries[:FULL_REFERENCE_QUERIES], geo_call(radius_m, None))
            after = await commandstats(client)
            full = (
                "GEOSEARCH full radius, no COUNT (reference, first 100 queries)",
                full_ms,
                mean_n,
                server_us(before, after, "geosearch"),
            )
            a50, a99 = pct(anchor_ms, 0.5), pct(anchor_ms, 0.99)
            for name, ms, mean_n, srv in [*results, anchor, full]:
                p50, p99 = pct(ms, 0.5), pct(ms, 0.99)
                rows.append(
                    f"| {radius_m / 1e3:g} km | {name} | {p50:.3f} | {p99:.3f} | {mean_n:.1f} | {srv} | "
                    f"{p50 / a50:.2f}x | {p99 / a99:.2f}x | {'yes' if p99 < TARGET_P99_MS else '**no**'} |"
                )
            print(f"radius {radius_m:g} m done at {time.perf_counter() - started:.1f} s", flush=True)
    finally:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=5_000)]
        for start in range(0, len(keys), 1_000):
            await client.delete(*keys[start : start + 1_000])
        await client.aclose()

    total_s = time.perf_counter() - started
    lines = [
        f"# Driver index `nearby`: {n_drivers:,} drivers, {n_queries:,} queries per radius, limit {LIMIT}",
        "",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {os.cpu_count()} CPUs, {platform.platform()}; Python {platform.python_version()}; "
        f"Redis {server_info.get('redis_version')} on 127.0.0.1 (shared with other work)",
        f"- drivers uniform in a {BOX_M / 1e3:g}×{BOX_M / 1e3:g} km box around Heidelberg "
        f"({n_drivers / (BOX_M / 1e3) ** 2:.0f}/km²); queries uniform in the box shrunk by "
        f"{QUERY_MARGIN_M / 1e3:g} km per side; same drivers and queries for every row",
        "- latency: client-side wall time per awaited call, one query in flight; server µs/call from "
        "`INFO commandstats` deltas (shared Redis: other clients' calls would be included)",
        f"- load: in-memory {load_memory_s:.1f} s; Redis index {load_redis_s:.1f} s "
        f"({LOAD_CONCURRENCY} concurrent upserts); GEOADD {load_geo_s:.1f} s; total run {total_s:.0f} s",
        f"- cross-check: the first {CROSS_CHECK} queries per radius return the same ids from both backends",
        "- anchor ratio = row / `GEOSEARCH ... ASC COUNT 30 WITHCOORD WITHDIST` (same question, same "
        "run); target from issue 4: nearby p99 < 10 ms with 100,000 drivers",
        "",
        *rows,
        "",
        "Cells (res 8, K = ceil(r / (1.5 × 531.4 m)) + 1, pruned by centre distance):",
        "",
        *notes,
        "",
    ]
    if write:
        RESULT_MD.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000 drivers, 100 queries")
    args = parser.parse_args()
    asyncio.run(main(10_000 if args.quick else 100_000, 100 if args.quick else 1_000, not args.quick))
