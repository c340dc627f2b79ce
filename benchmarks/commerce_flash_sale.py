"""Flash-sale reservations/s through the Redis reserve script, against trivial-script anchors.

commerce.md §4, issue 6 (target: reserve ≥ 0.8 × the EVALSHA of an equivalent trivial script).
Every mode runs in the same process, on the same Redis, with the same client (redis-py asyncio,
``CONCURRENCY`` tasks, one call in flight per task = unpipelined, or pipelines of ``PIPE``):

* ``anchor_evalsha`` — EVALSHA of a trivial decrement-if-positive script on one key (the anchor);
* ``anchor_incr`` — plain INCR (no script);
* ``reserve_1_shard`` / ``reserve_10_shards`` — the full reserve script (per-user limit, hold
  record, expiry ZSET, counters), every call a new buyer, stock large enough that every call
  reserves (the expensive path);
* ``reserve_sold_out`` — the reserve script once stock is 0 (the path most of a stampede takes).

The order of the modes rotates each round, so no mode always runs first on the shared box.
Also ``redis-benchmark`` (C client, 50 clients) INCR and trivial EVAL for reference when the binary
is installed. Server µs/call from ``INFO commandstats`` deltas. Each mode is run ``ROUNDS`` times;
the median is reported. Keys use a unique prefix and are deleted at the end.
Writes ``benchmarks/results/commerce_flash_sale.{json,md}``.

    .venv/bin/python benchmarks/commerce_flash_sale.py          # ~1 min
    .venv/bin/python benchmarks/commerce_flash_sale.py --quick  # no files written
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import json
import platform
import re
import shutil
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from hexcity.commerce.adapters.reservation_redis import RESERVE_LUA, RedisReservationEngine

REDIS_URL = "redis://127.0.0.1:6379/0"
CONCURRENCY = 50
PIPE = 16
TRIVIAL_LUA = (
    "local v = tonumber(redis.call('GET', KEYS[1]) or '0') "
    "if v > 0 then return redis.call('DECR', KEYS[1]) end return -1"
)
RESULTS = Path(__file__).parent / "results"

Call = Callable[[Any, int], None]  # (pipeline, i) -> queue one command


async def run_mode(client: aioredis.Redis, calls: int, queue: Call, pipe: int) -> float:
    """Calls/s with CONCURRENCY tasks, each sending pipelines of ``pipe`` commands."""
    counter = iter(range(calls))

    async def worker() -> None:
        while True:
            batch = [i for _, i in zip(range(pipe), counter, strict=False)]
            if not batch:
                return
            async with client.pipeline(transaction=False) as p:
                for i in batch:
                    queue(p, i)
                await p.execute()

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return calls / (time.perf_counter() - began)


async def commandstats(client: aioredis.Redis) -> dict[str, tuple[int, float]]:
    info = await client.info("commandstats")
    return {k: (int(v["calls"]), float(v["usec"])) for k, v in info.items()}


def redis_benchmark(
    calls: int, trivial_sha: str, reserve_sha: str, skus: dict[str, list[str]]
) -> dict[str, float]:
    """C-client rps (50 clients): INCR, trivial EVAL/EVALSHA and the real reserve script by EVALSHA.

    ``__rand_int__`` gives every reserve call a fresh buyer and reservation id (``-r``), so nearly
    every call takes the success path (a rare repeat is answered ``reserved``/``limit_exceeded``).
    """
    if shutil.which("redis-benchmark") is None:
        return {}
    out: dict[str, float] = {}
    runs: list[tuple[str, list[str]]] = [
        ("incr", ["-t", "incr"]),
        ("eval_trivial", ["eval", "return redis.call('INCR', KEYS[1])", "1", "hxbench:{x}:rb"]),
        ("evalsha_trivial_anchor", ["evalsha", trivial_sha, "1", "hxbench:{x}:stock"]),
    ]
    for name, keys in skus.items():
        args = ["u__rand_int__", "1", "r__rand_int__", "900000", "86400000", "0"]
        runs.append(
            (f"evalsha_{name}", ["-r", "1000000000", "evalsha", reserve_sha, str(len(keys)), *keys, *args])
        )
    subprocess.run(
        ["redis-cli", "set", "hxbench:{x}:stock", str(10**12)], capture_output=True, timeout=10, check=False
    )
    for pipe in (1, PIPE):
        for name, args in runs:
            cmd = ["redis-benchmark", "-q", "-n", str(calls), "-c", "50", "-P", str(pipe), *args]
            text = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False).stdout
            found = re.findall(r"([\d.]+) requests per second", text)
            if found:
                out[f"{name}@pipe{pipe}"] = float(found[-1])
    subprocess.run(
        ["redis-cli", "del", "hxbench:{x}:rb", "hxbench:{x}:stock"],
        capture_output=True,
        timeout=10,
        check=False,
    )
    for pipe in (1, PIPE):
        anchor = out.get(f"evalsha_trivial_anchor@pipe{pipe}")
        for name in skus:
            got = out.get(f"evalsha_{name}@pipe{pipe}")
            if anchor and got:
                out[f"ratio_{name}@pipe{pipe}"] = round(got / anchor, 3)
    return out


async def main(quick: bool) -> dict[str, Any]:
    calls = 5_000 if quick else 10_000
    rounds = 1 if quick else 7
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True, max_connections=CONCURRENCY + 4)
    prefix = f"hxbench:{uuid.uuid4().hex[:8]}:"
    engine = RedisReservationEngine(client, prefix=prefix)
    trivial_sha = await client.script_load(TRIVIAL_LUA)
    reserve_sha = await client.script_load(RESERVE_LUA)
    results: dict[str, dict[str, Any]] = {}
    try:
        for rnd in range(rounds):
            await client.set(prefix + "{t}:stock", 10**12)
            await engine.preheat(f"one{rnd}", 10**9, shards=1, per_user_limit=1)
            await engine.preheat(f"ten{rnd}", 10**9, shards=10, per_user_limit=1)
            await engine.preheat(f"zero{rnd}", 0, shards=10, per_user_limit=1)

            def reserve(sku: str, p: Any, i: int, _rnd: int = rnd) -> None:
                keys, args = engine.reserve_call(sku, f"u{_rnd}x{i}", 1, f"r{_rnd}x{i}", None, 900_000)
                p.evalsha(reserve_sha, len(keys), *keys, *args)

            modes: dict[str, Call] = {
                "anchor_evalsha": lambda p, i: p.evalsha(trivial_sha, 1, prefix + "{t}:stock"),
                "anchor_incr": lambda p, i: p.incr(prefix + "{t}:counter"),
                "reserve_1_shard": functools.partial(reserve, f"one{rnd}"),
                "reserve_10_shards": functools.partial(reserve, f"ten{rnd}"),
                "reserve_sold_out": functools.partial(reserve, f"zero{rnd}"),
            }
            names = list(modes)
            order = names[rnd % len(names) :] + names[: rnd % len(names)]  # rotate: no mode always first
            for name in order:
                queue = modes[name]
                for pipe in (1, PIPE):
                    key = f"{name}@pipe{pipe}"
                    before = await commandstats(client)
                    rate = await run_mode(client, calls, queue, pipe)
                    after = await commandstats(client)
                    cmd = "cmdstat_incr" if name == "anchor_incr" else "cmdstat_evalsha"
                    n = after.get(cmd, (0, 0.0))[0] - before.get(cmd, (0, 0.0))[0]
                    usec = after.get(cmd, (0, 0.0))[1] - before.get(cmd, (0, 0.0))[1]
                    entry = results.setdefault(key, {"rates": [], "server_us": [], "round": []})
                    entry["rates"].append(rate)
                    entry["round"].append(rnd)
                    entry["server_us"].append(usec / n if n else None)
                    print(
                        f"round {rnd} {key:28s} {rate:10.0f} calls/s  server {usec / max(n, 1):.2f} µs/call"
                    )
        snap = await engine.snapshot("one0")
        assert snap is not None and snap.held == calls and snap.balanced  # every call reserved
    finally:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=5000)]
        for i in range(0, len(keys), 5000):
            await client.unlink(*keys[i : i + 5000])
        await client.aclose()
    summary: dict[str, Any] = {}
    for key, entry in results.items():
        server = [u for u in entry["server_us"] if u is not None]
        summary[key] = {
            "median_calls_per_s": round(statistics.median(entry["rates"])),
            "median_server_us_per_call": round(statistics.median(server), 2) if server else None,
        }
    for pipe in (1, PIPE):
        anchor_entry = results[f"anchor_evalsha@pipe{pipe}"]
        anchor = summary[f"anchor_evalsha@pipe{pipe}"]["median_calls_per_s"]
        for name in ("reserve_1_shard", "reserve_10_shards", "reserve_sold_out", "anchor_incr"):
            key = f"{name}@pipe{pipe}"
            summary[key]["ratio_to_anchor_evalsha"] = round(summary[key]["median_calls_per_s"] / anchor, 3)
            # paired: each round's rate over the same round's anchor (less sensitive to the box's noise)
            paired = [r / a for r, a in zip(results[key]["rates"], anchor_entry["rates"], strict=True)]
            summary[key]["median_round_ratio"] = round(statistics.median(paired), 3)
    rb_skus = {"reserve_1_shard": "rbone", "reserve_10_shards": "rbten"}
    rb_client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    rb_engine = RedisReservationEngine(rb_client, prefix=prefix)
    try:
        await rb_engine.preheat("rbone", 10**9, shards=1, per_user_limit=1)
        await rb_engine.preheat("rbten", 10**9, shards=10, per_user_limit=1)
        rb_keys = {
            name: rb_engine.reserve_call(sku, "x", 1, "x", None, 1)[0] for name, sku in rb_skus.items()
        }
        c_client = await asyncio.to_thread(redis_benchmark, calls * 5, trivial_sha, reserve_sha, rb_keys)
    finally:
        for sku in rb_skus.values():
            await rb_engine.drop(sku)
        await rb_client.aclose()
    return {
        "benchmark": "commerce_flash_sale",
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpu_count": __import__("os").cpu_count()},
        "calls_per_round": calls,
        "rounds": rounds,
        "concurrency": CONCURRENCY,
        "pipeline": PIPE,
        "results": summary,
        "redis_benchmark_c_client": c_client,
    }


def write_md(report: dict[str, Any]) -> str:
    lines = [
        "# commerce_flash_sale — reserve script vs trivial-script anchor",
        "",
        f"{report['when']}, {report['calls_per_round']} calls × {report['rounds']} rounds per mode, "
        f"{report['concurrency']} asyncio tasks (redis-py), shared 2-vCPU box (noisy; lower bounds).",
        "Reserve script: one HASH per SKU (counters, shards, per-user units, records), 4 commands on",
        "success (HMGET, TIME, HSET, ZADD), 1 on a refusal. Ratio = median rate / median anchor rate;",
        "paired = median over rounds of (rate / the same round's anchor).",
        "",
        "| mode | pipeline | median calls/s | ratio to trivial EVALSHA | paired ratio | server µs/call |",
        "|---|---|---|---|---|---|",
    ]
    for key, r in report["results"].items():
        name, pipe = key.split("@pipe")
        ratio = r.get("ratio_to_anchor_evalsha", 1.0 if name == "anchor_evalsha" else "")
        paired = r.get("median_round_ratio", "")
        lines.append(
            f"| {name} | {pipe} | {r['median_calls_per_s']:,} | {ratio} | {paired} |"
            f" {r['median_server_us_per_call']} |"
        )
    rb = report["redis_benchmark_c_client"]
    if rb:
        lines += [
            "",
            "redis-benchmark (C client, 50 clients; `-r` random buyer and reservation ids per reserve call):",
            "",
            "| command | pipeline | rps | ratio to trivial EVALSHA |",
            "|---|---|---|---|",
        ]
        for key, value in rb.items():
            if key.startswith("ratio_"):
                continue
            name, pipe = key.split("@pipe")
            ratio = rb.get(f"ratio_{name.removeprefix('evalsha_')}@pipe{pipe}", "")
            if name == "evalsha_trivial_anchor":
                ratio = 1.0
            lines.append(f"| {name} | {pipe} | {value:,.0f} | {ratio} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    ns = parser.parse_args()
    out = asyncio.run(main(ns.quick))
    md = write_md(out)
    print(md)
    if not ns.quick:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "commerce_flash_sale.json").write_text(json.dumps(out, indent=2) + "\n")
        (RESULTS / "commerce_flash_sale.md").write_text(md)
