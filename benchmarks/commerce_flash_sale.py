"""Flash-sale reservations/s through the Redis reserve script, against a trivial-script anchor.

commerce.md §4, issue 6 (target: reserve ≥ 0.8 × the EVALSHA ceiling of an equivalent trivial
script). Runs on a private ``redis-server`` this script starts (free port, no persistence, like
CI's), so ``INFO commandstats`` counts only these calls; ``--redis-url`` uses an existing server.

1. ``redis-benchmark`` (C client, 50 clients, pipeline 1 and 16) — the issue's ceiling. The anchor
   is a trivial decrement-if-positive script called with the SAME number of keys (2) and args (6,
   ``__rand_int__`` buyer and order ids) as the reserve call. Modes alternate inside each of
   ``ROUNDS`` rounds (rotated order), each round on a fresh SKU (the hash starts empty):
   ``reserve_1_shard`` / ``reserve_10_shards`` (every call a new buyer: the success path, the
   expensive one), ``reserve_sold_out`` (stock 0: what most of a stampede gets) and
   ``reserve_limit`` (one buyer over the limit). Reported: median rps, ratio of medians, and the
   median of per-round ratios (paired: same round, less sensitive to the shared box's noise),
   server µs/call and server CPU µs per request (main thread, from ``INFO``).
2. redis-py asyncio (50 tasks), the same modes through the engine's ``reserve_call``.

Writes ``benchmarks/results/commerce_flash_sale.{json,md}``.

    .venv/bin/python benchmarks/commerce_flash_sale.py          # ~4 min
    .venv/bin/python benchmarks/commerce_flash_sale.py --quick  # no files written
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import functools
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis

from hexcity.commerce.adapters.reservation_redis import RESERVE_LUA, RedisReservationEngine

CONCURRENCY = 50
PIPE = 16
TRIVIAL_LUA = (
    "local v = tonumber(redis.call('GET', KEYS[1]) or '0') "
    "if v > 0 then return redis.call('DECR', KEYS[1]) end return -1"
)
RB_ARGS = ["u__rand_int__", "1", "r__rand_int__", "900000", "86400000", "__rand_int__"]
RESULTS = Path(__file__).parent / "results"

Call = Callable[[Any, int], None]  # (pipeline, i) -> queue one command


@contextlib.contextmanager
def private_redis() -> Iterator[str]:
    """A redis-server of our own on a free port (no persistence), stopped afterwards."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    workdir = tempfile.mkdtemp(prefix="hx-bench-redis-")
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(port=port)
        for _ in range(100):
            with contextlib.suppress(redis.ConnectionError):
                if client.ping():
                    break
            time.sleep(0.05)
        client.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


def server_counters(client: redis.Redis) -> tuple[int, float, float]:
    """(EVALSHA calls, EVALSHA µs, main-thread CPU s) of the server."""
    stats = client.info("commandstats").get("cmdstat_evalsha", {})
    cpu = client.info("cpu")
    return (
        int(stats.get("calls", 0)),
        float(stats.get("usec", 0.0)),
        float(cpu["used_cpu_user_main_thread"]) + float(cpu["used_cpu_sys_main_thread"]),
    )


async def prepare(url: str, sku: str, stock: int, shards: int, *, at_limit: bool) -> list[str]:
    """Pre-heat ``sku`` (limit 1; with ``at_limit`` "buyer" already holds one); the reserve KEYS."""
    client = aioredis.Redis.from_url(url, decode_responses=True)
    engine = RedisReservationEngine(client, prefix="hxrb:")
    try:
        await engine.preheat(sku, stock, shards=shards, per_user_limit=1)
        if at_limit:
            await engine.reserve(sku, "buyer", 1, reservation_id="first")
        return engine.reserve_call(sku, "x", 1, "x", None, 900_000)[0]
    finally:
        await client.aclose()


def redis_benchmark_rounds(url: str, calls: int, rounds: int) -> dict[str, Any]:
    """C-client rps of the reserve script and of the trivial anchor, alternating, per pipeline."""
    if shutil.which("redis-benchmark") is None:
        return {}
    client = redis.Redis.from_url(url, decode_responses=True)
    port = str(client.connection_pool.connection_kwargs["port"])
    trivial_sha = client.script_load(TRIVIAL_LUA)
    reserve_sha = client.script_load(RESERVE_LUA)
    runs: dict[str, list[dict[str, float]]] = {}
    modes = [
        "anchor", "reserve_1_shard", "reserve_10_shards", "reserve_sold_out", "reserve_limit",
        "reserve_stampede",
    ]  # fmt: skip
    for rnd in range(rounds):
        order = modes[rnd % len(modes) :] + modes[: rnd % len(modes)]
        for pipe in (1, PIPE):
            for mode in order:
                sku = f"{mode}{rnd}p{pipe}"
                args = list(RB_ARGS)
                if mode == "anchor":
                    client.set(f"hxrb:{{{sku}}}:stock", 10**12)
                    keys = [f"hxrb:{{{sku}}}:stock", f"hxrb:{{{sku}}}:q"]
                    sha = trivial_sha
                else:
                    stock, shards = {
                        "reserve_1_shard": (10**9, 1),
                        "reserve_10_shards": (10**9, 10),
                        "reserve_sold_out": (0, 10),
                        "reserve_limit": (10**9, 10),
                        # the stampede: stock for 1 % of the attempts (S = 1,000 vs 100,000)
                        "reserve_stampede": (max(1, calls // 100), 10),
                    }[mode]
                    keys = asyncio.run(prepare(url, sku, stock, shards, at_limit=mode == "reserve_limit"))
                    if mode == "reserve_limit":  # one buyer, already at the limit
                        args[0] = "buyer"
                    sha = reserve_sha
                before = server_counters(client)
                cmd = ["redis-benchmark", "-p", port, "-q", "-n", str(calls), "-c", str(CONCURRENCY)]
                cmd += ["-P", str(pipe), "-r", "1000000000", "evalsha", sha, str(len(keys)), *keys, *args]
                text = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False).stdout
                after = server_counters(client)
                found = re.findall(r"([\d.]+) requests per second", text)
                if not found:
                    continue
                n = max(1, after[0] - before[0])
                runs.setdefault(f"{mode}@pipe{pipe}", []).append(
                    {
                        "rps": float(found[-1]),
                        "server_us_per_call": (after[1] - before[1]) / n,
                        "server_cpu_us_per_request": (after[2] - before[2]) / n * 1e6,
                    }
                )
                print(f"rb round {rnd} {mode}@pipe{pipe}: {found[-1]} rps", flush=True)
            client.flushall()
    client.close()
    out: dict[str, Any] = {}
    for key, entries in runs.items():
        mode, pipe_text = key.split("@pipe")
        anchor = runs.get(f"anchor@pipe{pipe_text}", [])
        rates = [e["rps"] for e in entries]
        row: dict[str, Any] = {
            "median_rps": round(statistics.median(rates)),
            "rps_per_round": [round(r) for r in rates],
            "median_server_us_per_call": round(
                statistics.median(e["server_us_per_call"] for e in entries), 2
            ),
            "median_server_cpu_us_per_request": round(
                statistics.median(e["server_cpu_us_per_request"] for e in entries), 2
            ),
        }
        if mode != "anchor" and len(anchor) == len(entries):
            row["ratio_of_medians"] = round(
                row["median_rps"] / statistics.median(a["rps"] for a in anchor), 3
            )
            paired = [e["rps"] / a["rps"] for e, a in zip(entries, anchor, strict=True)]
            row["paired_ratio_median"] = round(statistics.median(paired), 3)
            row["paired_ratio_min_max"] = [round(min(paired), 3), round(max(paired), 3)]
        out[key] = row
    return out


async def run_mode(client: aioredis.Redis, calls: int, queue: Call, pipe: int, first: int = 0) -> float:
    """Calls/s with CONCURRENCY tasks, each sending pipelines of ``pipe`` commands (``first``.. ids)."""
    counter = iter(range(first, first + calls))

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


async def python_client_rounds(url: str, calls: int, rounds: int) -> dict[str, Any]:
    """The same comparison through redis-py asyncio (the service's client)."""
    client = aioredis.Redis.from_url(url, decode_responses=True, max_connections=CONCURRENCY + 4)
    prefix = f"hxbench:{uuid.uuid4().hex[:8]}:"
    engine = RedisReservationEngine(client, prefix=prefix)
    trivial_sha = await client.script_load(TRIVIAL_LUA)
    reserve_sha = await client.script_load(RESERVE_LUA)
    results: dict[str, list[float]] = {}
    try:
        for rnd in range(rounds):
            await client.set(prefix + "{t}:stock", 10**12)
            await engine.preheat(f"one{rnd}", 10**9, shards=1, per_user_limit=1)
            await engine.preheat(f"ten{rnd}", 10**9, shards=10, per_user_limit=1)
            await engine.preheat(f"zero{rnd}", 0, shards=10, per_user_limit=1)

            def reserve(sku: str, p: Any, i: int, _rnd: int = rnd) -> None:
                # ``i`` runs over both pipeline settings (offset), so every call is a new buyer
                keys, args = engine.reserve_call(sku, f"u{_rnd}x{i}", 1, f"r{_rnd}x{i}", None, 900_000)
                p.evalsha(reserve_sha, len(keys), *keys, *args)

            def anchor(p: Any, i: int, _rnd: int = rnd) -> None:  # same 2 keys and 6 args
                p.evalsha(
                    trivial_sha, 2, prefix + "{t}:stock", prefix + "{t}:q",
                    f"u{_rnd}x{i}", 1, f"r{_rnd}x{i}", 900_000, 86_400_000, i,
                )  # fmt: skip

            modes: dict[str, Call] = {
                "anchor": anchor,
                "reserve_1_shard": functools.partial(reserve, f"one{rnd}"),
                "reserve_10_shards": functools.partial(reserve, f"ten{rnd}"),
                "reserve_sold_out": functools.partial(reserve, f"zero{rnd}"),
            }
            names = list(modes)
            order = names[rnd % len(names) :] + names[: rnd % len(names)]
            for name in order:
                for pipe in (1, PIPE):
                    rate = await run_mode(client, calls, modes[name], pipe, first=pipe * calls)
                    results.setdefault(f"{name}@pipe{pipe}", []).append(rate)
                    print(f"py round {rnd} {name}@pipe{pipe}: {rate:.0f} calls/s", flush=True)
        snap = await engine.snapshot("one0")
        assert snap is not None and snap.held == 2 * calls and snap.balanced  # every call reserved
    finally:
        await client.flushall()
        await client.aclose()
    out: dict[str, Any] = {}
    for key, rates in results.items():
        name, pipe_text = key.split("@pipe")
        anchor_rates = results[f"anchor@pipe{pipe_text}"]
        row: dict[str, Any] = {"median_calls_per_s": round(statistics.median(rates))}
        if name != "anchor":
            row["ratio_of_medians"] = round(row["median_calls_per_s"] / statistics.median(anchor_rates), 3)
            paired = [r / a for r, a in zip(rates, anchor_rates, strict=True)]
            row["paired_ratio_median"] = round(statistics.median(paired), 3)
        out[key] = row
    return out


def main(quick: bool, url: str | None) -> dict[str, Any]:
    rb_calls, rb_rounds = (20_000, 1) if quick else (100_000, 5)
    py_calls, py_rounds = (2_000, 1) if quick else (5_000, 3)
    with contextlib.ExitStack() as stack:
        if url is None:
            url = stack.enter_context(private_redis())
        c_client = redis_benchmark_rounds(url, rb_calls, rb_rounds)
        py_client = asyncio.run(python_client_rounds(url, py_calls, py_rounds))
        server = redis.Redis.from_url(url).info("server")["redis_version"]
    return {
        "benchmark": "commerce_flash_sale",
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count(), "redis": server},
        "concurrency": CONCURRENCY,
        "pipeline": PIPE,
        "redis_benchmark": {"calls_per_run": rb_calls, "rounds": rb_rounds, "results": c_client},
        "redis_py": {"calls_per_run": py_calls, "rounds": py_rounds, "results": py_client},
    }


def write_md(report: dict[str, Any]) -> str:
    rb, py = report["redis_benchmark"], report["redis_py"]
    lines = [
        "# commerce_flash_sale — reserve script vs trivial-script anchor",
        "",
        f"{report['when']}, Redis {report['machine']['redis']} (private server, no persistence), "
        f"{report['concurrency']} clients, shared 2-vCPU box (noisy).",
        "Anchor: a trivial decrement-if-positive EVALSHA with the same 2 keys and 6 args as the reserve",
        "call, in the same run, alternating. paired = median over rounds of (rate / that round's anchor).",
        "",
        f"## redis-benchmark (C client), {rb['calls_per_run']:,} calls × {rb['rounds']} rounds per mode",
        "",
        "| mode | pipeline | median rps | ratio of medians | paired (min–max) | server µs/call"
        " | server CPU µs/request |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, r in rb["results"].items():
        name, pipe = key.split("@pipe")
        ratio = r.get("ratio_of_medians", 1.0)
        paired = r.get("paired_ratio_median", "")
        spread = r.get("paired_ratio_min_max")
        paired_text = f"{paired} ({spread[0]}–{spread[1]})" if spread else str(paired)
        lines.append(
            f"| {name} | {pipe} | {r['median_rps']:,} | {ratio} | {paired_text} |"
            f" {r['median_server_us_per_call']} | {r['median_server_cpu_us_per_request']} |"
        )
    lines += [
        "",
        f"## redis-py asyncio, {py['calls_per_run']:,} calls × {py['rounds']} rounds per mode",
        "",
        "| mode | pipeline | median calls/s | ratio of medians | paired |",
        "|---|---|---|---|---|",
    ]
    for key, r in py["results"].items():
        name, pipe = key.split("@pipe")
        lines.append(
            f"| {name} | {pipe} | {r['median_calls_per_s']:,} | {r.get('ratio_of_medians', 1.0)} |"
            f" {r.get('paired_ratio_median', '')} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--redis-url", default=None, help="use this server instead of a private one")
    ns = parser.parse_args()
    out = main(ns.quick, ns.redis_url)
    md = write_md(out)
    print(md)
    if not ns.quick:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "commerce_flash_sale.json").write_text(json.dumps(out, indent=2) + "\n")
        (RESULTS / "commerce_flash_sale.md").write_text(md)
