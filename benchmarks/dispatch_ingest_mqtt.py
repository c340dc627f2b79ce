"""Location intake throughput via MQTT → IngestService → driver index (in-memory and Redis).

One run measures, on the same workload and the same broker (Mosquitto on localhost:1883):

* ``mqtt raw`` (anchor / ceiling): an aiomqtt subscriber that only counts messages — what the
  broker + one Python MQTT client can deliver at all;
* ``mqtt → memory``: ``MqttIntake`` → ``IngestService`` (parse, partition, bounded queues,
  ``PingPipeline``, index write) → ``InMemoryDriverIndex``;
* ``mqtt → redis``: the same into ``RedisDriverIndex`` (one Lua upsert per driver and batch);
* ``submit → memory`` / ``submit → redis``: pre-built ``Ping`` objects submitted in process (no
  MQTT, no JSON), the service's own ceiling;
* Redis ceilings: ``redis-benchmark -t sadd -P 16`` and a pipelined ``GEOADD`` loop from Python
  (dispatch.md §4 anchors: SADD 0.59 µs, GEOADD 6.15 µs server-side). Keys are named so that the
  GEOADD loop *updates* the same members (pitfall 9: an insert benchmark would flatter it).

The publisher is a separate process (paho-mqtt, QoS 0) publishing ``--drivers`` × ``--pings-per-driver``
JSON pings on ``<prefix>/drivers/<id>/location`` as fast as it can; every driver's pings are 1 s
apart in device time and within the GCRA burst (3), so the pipeline accepts all of them. Throughput
of a mode = messages handled ÷ (last handled − first received). Medians over ``--runs``; the
receipt → index p99 comes from ``IngestService.latency_quantile_s``. Writes
``benchmarks/results/dispatch_ingest_mqtt.{json,md}``.

    .venv/bin/python benchmarks/dispatch_ingest_mqtt.py           # 10,000 drivers x 3 pings, 3 runs
    .venv/bin/python benchmarks/dispatch_ingest_mqtt.py --quick   # 5,000 drivers x 3 pings, 1 run
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import multiprocessing as mp
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from hexcity.dispatch.adapters.index_memory import InMemoryDriverIndex
from hexcity.dispatch.adapters.index_redis import RedisDriverIndex
from hexcity.dispatch.adapters.mqtt_intake import MqttIntake
from hexcity.dispatch.domain.index import cell_of
from hexcity.dispatch.domain.pings import Ping, PingPipeline
from hexcity.dispatch.ingest import IngestService
from hexcity.dispatch.settings import IngestSettings

REPO = Path(__file__).resolve().parents[1]
RESULT_MD = REPO / "benchmarks" / "results" / "dispatch_ingest_mqtt.md"
RESULT_JSON = REPO / "benchmarks" / "results" / "dispatch_ingest_mqtt.json"
MQTT_HOST, MQTT_PORT = "127.0.0.1", 1883
REDIS_URL = "redis://127.0.0.1:6379/0"
CENTRE = (49.41, 8.69)
T0_S = 1_764_000_000.0
WRITE_CONCURRENCY = 1  # index writes in flight per partition for Redis (16 measured no better here)
IDLE_S = 1.5  # no progress for this long after the publisher finished: the run is over


def workload(drivers: int, per_driver: int) -> list[tuple[str, int, float, float, float]]:
    """(driver, seq, timestamp, lat, lng), round-robin over drivers so each driver's pings spread."""
    out = []
    for k in range(per_driver):
        for i in range(drivers):
            lat = CENTRE[0] + ((i * 7919) % 1000 - 500) * 1e-4 + k * 1e-4
            lng = CENTRE[1] + ((i * 104729) % 1000 - 500) * 1.5e-4
            out.append((f"drv-{i:06d}", k, T0_S + k, lat, lng))
    return out


def _publisher(prefix: str, drivers: int, per_driver: int, rate: float, ready: Any, go: Any) -> None:
    """Child process: publish the workload with paho (QoS 0), at ``rate`` msg/s (0: flat out)."""
    import paho.mqtt.client as paho

    payloads = [
        (
            f"{prefix}/drivers/{d}/location",
            json.dumps({"seq": s, "timestamp": t, "lat": lat, "lon": lng, "accuracy": 5.0}).encode(),
        )
        for d, s, t, lat, lng in workload(drivers, per_driver)
    ]
    version = paho.CallbackAPIVersion.VERSION2  # type: ignore[attr-defined]
    client = paho.Client(version, client_id=f"bench-pub-{uuid.uuid4().hex[:8]}")
    client.max_queued_messages_set(0)
    client.connect(MQTT_HOST, MQTT_PORT, keepalive=60)
    client.loop_start()
    ready.set()
    go.wait()
    info = None
    t0 = time.perf_counter()
    for n, (topic, payload) in enumerate(payloads):
        info = client.publish(topic, payload, qos=0)
        if rate > 0 and n % 20 == 19:
            ahead_s = t0 + (n + 1) / rate - time.perf_counter()
            if ahead_s > 0:
                time.sleep(ahead_s)
    if info is not None:
        info.wait_for_publish(timeout=120)
    time.sleep(0.2)
    client.loop_stop()
    client.disconnect()


class PerPingRedisDriverIndex(RedisDriverIndex):
    """The adapter without its batched path: the intake then writes one upsert per ping."""

    upsert_many = None  # type: ignore[assignment]


class Progress:
    """First/last handled timestamps and a count, updated by the consumer under test."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.last = 0.0
        self.n = 0

    def tick(self, k: int = 1) -> None:
        now = time.perf_counter()
        if self.first is None:
            self.first = now
        self.last = now
        self.n += k

    def rate(self) -> float:
        if self.first is None or self.last <= self.first or self.n < 2:
            return 0.0
        return (self.n - 1) / (self.last - self.first)


async def _drive(
    prefix: str, drivers: int, per_driver: int, rate: float, progress: Progress, done: Callable[[], bool]
) -> None:
    """Start the publisher process, wait until it finishes and the consumer goes idle."""
    ctx = mp.get_context("spawn")
    ready, go = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_publisher, args=(prefix, drivers, per_driver, rate, ready, go))
    proc.start()
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, ready.wait, 60)
    go.set()
    while proc.is_alive():
        await asyncio.sleep(0.05)
    last_n, idle_since = -1, time.perf_counter()
    while not done():
        if progress.n != last_n:
            last_n, idle_since = progress.n, time.perf_counter()
        elif time.perf_counter() - idle_since > IDLE_S:
            break
        await asyncio.sleep(0.01)


async def run_raw(args: argparse.Namespace) -> dict[str, Any]:
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    total = args.drivers * args.pings_per_driver
    progress = Progress()
    async with aiomqtt.Client(
        MQTT_HOST, MQTT_PORT, identifier=f"bench-raw-{prefix}", max_queued_incoming_messages=10_000
    ) as client:  # the same bounded client queue as MqttIntake
        await client.subscribe(f"{prefix}/drivers/+/location", qos=0)

        async def consume() -> None:
            async for _ in client.messages:
                progress.tick()

        task = asyncio.create_task(consume())
        await _drive(prefix, args.drivers, args.pings_per_driver, 0.0, progress, lambda: progress.n >= total)
        task.cancel()
    return {"handled": progress.n, "sent": total, "pings_per_s": progress.rate()}


def _service(index: Any) -> IngestService:
    return IngestService(
        PingPipeline(),
        index,
        settings=IngestSettings(
            partitions=4, queue_size=10_000, expire_interval_s=3600, publish_locations=False
        ),
        registry=CollectorRegistry(),
    )


async def _with_index(kind: str, body: Callable[[Any], Any]) -> dict[str, Any]:
    if kind == "memory":
        result: dict[str, Any] = await body(InMemoryDriverIndex())
        return result
    client = aioredis.Redis.from_url(REDIS_URL, socket_timeout=5, socket_connect_timeout=2)
    prefix = f"bench:ingest:{uuid.uuid4().hex[:8]}:"
    index_class = RedisDriverIndex if kind == "redis+upsert_many" else PerPingRedisDriverIndex
    try:
        result = await body(index_class(client, prefix))
        return result
    finally:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=5000)]
        for i in range(0, len(keys), 5000):
            await client.delete(*keys[i : i + 5000])
        await client.aclose()


async def run_mqtt(kind: str, args: argparse.Namespace, drivers: int, rate: float = 0.0) -> dict[str, Any]:
    total = drivers * args.pings_per_driver

    async def body(index: Any) -> dict[str, Any]:
        prefix = f"bench{uuid.uuid4().hex[:8]}"
        service = _service(index)
        progress = Progress()
        intake = MqttIntake(
            service, f"mqtt://{MQTT_HOST}:{MQTT_PORT}", topics=[f"{prefix}/drivers/+/location"]
        )
        original = intake.handle
        received = Progress()

        def handle(topic: str, payload: Any) -> bool:
            received.tick()
            return original(topic, payload)

        intake.handle = handle  # type: ignore[method-assign]
        processed = service.counts

        def done() -> bool:
            n = sum(processed.values())
            if n > progress.n:
                progress.tick(n - progress.n)
            return bool(n >= total)

        async with service, intake:
            await intake.wait_connected()
            await _drive(prefix, drivers, args.pings_per_driver, rate, progress, done)
            await service.join(60)
            done()
            count = await index.count()
        progress.first = received.first
        return {
            "handled": sum(processed.values()),
            "received": received.n,
            "sent": total,
            "accepted": processed["accepted"],
            "dropped": processed["dropped"],
            "in_index": count,
            "pings_per_s": progress.rate(),
            "p50_ms": 1000 * (service.latency_quantile_s(0.5) or 0.0),
            "p99_ms": 1000 * (service.latency_quantile_s(0.99) or 0.0),
        }

    return await _with_index(kind, body)


async def run_submit(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    pings = [
        Ping(d, s, t, lat, lng, 5.0) for d, s, t, lat, lng in workload(args.drivers, args.pings_per_driver)
    ]

    async def body(index: Any) -> dict[str, Any]:
        service = _service(index)
        async with service:
            t0 = time.perf_counter()
            for i in range(0, len(pings), 1000):  # submit in chunks the queues can hold
                for p in pings[i : i + 1000]:
                    service.submit(p)
                while sum(service.queue_depths()) > 20_000:
                    await asyncio.sleep(0)
            await service.join(120)
            elapsed = time.perf_counter() - t0
        return {
            "handled": len(pings),
            "accepted": service.counts["accepted"],
            "dropped": service.counts["dropped"],
            "pings_per_s": len(pings) / elapsed,
        }

    return await _with_index(kind, body)


def redis_benchmark_sadd(n: int) -> float | None:
    try:
        out = subprocess.run(
            [
                "redis-benchmark",
                "-h",
                "127.0.0.1",
                "-p",
                "6379",
                "-t",
                "sadd",
                "-n",
                str(n),
                "-P",
                "16",
                "-q",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"SADD:\s*([\d.]+)\s*requests per second", out.replace("\r", "\n"))
    return float(match.group(1)) if match else None


async def geoadd_loop(drivers: int, rounds: int = 3) -> float:
    """Pipelined GEOADD upserts of ``drivers`` members (batches of 1,000), ``rounds`` times."""
    client = aioredis.Redis.from_url(REDIS_URL, socket_timeout=5)
    key = f"bench:geo:{uuid.uuid4().hex[:8]}"
    data = workload(drivers, 1)
    try:
        t0 = time.perf_counter()
        for r in range(rounds):
            for i in range(0, len(data), 1000):
                pipe = client.pipeline(transaction=False)
                for d, _, _, lat, lng in data[i : i + 1000]:
                    pipe.geoadd(key, (lng + r * 1e-5, lat, d))
                await pipe.execute()
        elapsed = time.perf_counter() - t0
    finally:
        await client.delete(key)
        await client.aclose()
    return drivers * rounds / elapsed


async def upsert_script_pipelined(drivers: int, rounds: int = 3) -> float:
    """The index's own upsert Lua script, pipelined 1,000 calls per round trip: what a batched
    ``upsert_many`` on ``RedisDriverIndex`` could reach (the intake calls ``upsert`` one by one)."""
    client = aioredis.Redis.from_url(REDIS_URL, socket_timeout=5)
    prefix = f"bench:ups:{uuid.uuid4().hex[:8]}:"
    index = RedisDriverIndex(client, prefix)
    script = index._upsert  # the registered Script object (benchmark only)
    data = workload(drivers, 1)
    cells = [cell_of(lat, lng) for _, _, _, lat, lng in data]
    try:
        t0 = time.perf_counter()
        for r in range(rounds):
            for i in range(0, len(data), 1000):
                pipe = client.pipeline(transaction=False)
                for (d, _, _, lat, lng), cell in zip(data[i : i + 1000], cells[i : i + 1000], strict=True):
                    args: list[str | int] = [
                        prefix,
                        d,
                        cell,
                        repr(lat),
                        repr(lng + r * 1e-7),
                        "online",
                        repr(T0_S + r),
                        10**6,
                    ]
                    await script(keys=[index.driver_key(d), index.seen_key], args=args, client=pipe)
                await pipe.execute()
        elapsed = time.perf_counter() - t0
    finally:
        keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=5000)]
        for i in range(0, len(keys), 5000):
            await client.delete(*keys[i : i + 5000])
        await client.aclose()
    return drivers * rounds / elapsed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--drivers", type=int, default=10_000)
    ap.add_argument("--pings-per-driver", type=int, default=3, help="at most 3 (the GCRA burst)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="5,000 drivers, 1 run")
    ap.add_argument("--skip-redis", action="store_true")
    ap.add_argument("--paced-rate", type=float, default=2000.0, help="msg/s of the paced (latency) runs")
    ap.add_argument("--paced-drivers", type=int, default=5000)
    args = ap.parse_args(argv)
    if args.quick:
        args.drivers, args.runs = 5_000, 1
    if not 1 <= args.pings_per_driver <= 3:
        ap.error("--pings-per-driver must be 1..3 (the GCRA burst), or pings get rate limited")
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    modes = ["mqtt raw", "mqtt → memory", "submit → memory", "paced mqtt → memory"]
    if not args.skip_redis:
        modes += ["mqtt → redis", "submit → redis", "paced mqtt → redis"]
        modes += ["mqtt → redis+upsert_many", "submit → redis+upsert_many", "paced mqtt → redis+upsert_many"]
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
    for r in range(args.runs):
        for mode in modes:
            if mode == "mqtt raw":
                result = asyncio.run(run_raw(args))
            elif mode.startswith("mqtt"):
                result = asyncio.run(run_mqtt(mode.split()[-1], args, args.drivers))
            elif mode.startswith("paced"):
                result = asyncio.run(run_mqtt(mode.split()[-1], args, args.paced_drivers, args.paced_rate))
            else:
                result = asyncio.run(run_submit(mode.split()[-1], args))
            runs[mode].append(result)
            print(f"run {r + 1} {mode}: {result}", file=sys.stderr)
    ceilings: dict[str, float | None] = {}
    if not args.skip_redis:
        ceilings["redis-benchmark SADD -P 16 (rps)"] = redis_benchmark_sadd(200_000)
        ceilings["pipelined GEOADD upsert from Python (rps)"] = asyncio.run(geoadd_loop(args.drivers))
        ceilings["index upsert Lua script, pipelined x1000 from Python (rps)"] = asyncio.run(
            upsert_script_pipelined(args.drivers)
        )
    summary = {}
    anchor = statistics.median(x["pings_per_s"] for x in runs["mqtt raw"])
    for mode, results in runs.items():
        rate = statistics.median(x["pings_per_s"] for x in results)
        row: dict[str, Any] = {
            "median_pings_per_s": rate,
            "vs_mqtt_raw": rate / anchor if anchor and not mode.startswith("paced") else None,
            "runs": results,
        }
        if "p99_ms" in results[0]:
            row["median_p99_ms"] = statistics.median(x["p99_ms"] for x in results)
            row["median_p50_ms"] = statistics.median(x["p50_ms"] for x in results)
        summary[mode] = row
    meta = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} CPUs, {platform.machine()}, {platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "drivers": args.drivers,
        "pings_per_driver": args.pings_per_driver,
        "runs": args.runs,
        "total_s": round(time.perf_counter() - started, 1),
        "load_avg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    RESULT_JSON.write_text(
        json.dumps({"meta": meta, "modes": summary, "ceilings": ceilings}, indent=2) + "\n"
    )
    lines = [
        f"# Dispatch intake via MQTT: {args.drivers:,} drivers × {args.pings_per_driver} pings",
        "",
        f"- date: {meta['date']}; machine: {meta['machine']} (shared); Python {meta['python']}",
        f"- medians over {args.runs} run(s); total benchmark time {meta['total_s']} s; 1-min load average"
        f" {meta['load_avg_1min'][0]} before, {meta['load_avg_1min'][1]} after (other jobs share the cores:"
        " absolute rates swing 2-3x between runs, compare within a run)",
        "- broker: Mosquitto 2 on localhost, QoS 0; publisher: one paho-mqtt process, as fast as it can",
        "- service: 4 partitions × 10,000-ping queues, batch 64, default `PingPipeline`, no bus; index"
        f" writes in flight per partition: 1 (memory), {WRITE_CONCURRENCY} (Redis)",
        "- anchor: `mqtt raw` = an aiomqtt subscriber that only counts messages, same workload, same run",
        f"- flat-out runs overload the consumer on purpose (throughput at saturation; QoS 0 losses are"
        f" counted, memory stays bounded); `paced` runs publish {args.paced_drivers:,} × "
        f"{args.pings_per_driver} pings at {args.paced_rate:,.0f}/s, below capacity, for the receipt → "
        "index latency (target p99 ≤ 200 ms, dispatch.md §2.3)",
        "",
        "| path | pings/s (median) | vs mqtt raw | receipt → index p50 / p99 | delivered / sent |",
        "|---|---:|---:|---:|---:|",
    ]
    for mode, row in summary.items():
        last = row["runs"][-1]
        lat = f"{row['median_p50_ms']:.1f} / {row['median_p99_ms']:.1f} ms" if "median_p99_ms" in row else "—"
        delivered = f"{last.get('received', last['handled']):,} / {last.get('sent', last['handled']):,}"
        ratio = f"{row['vs_mqtt_raw']:.2f}x" if row["vs_mqtt_raw"] else "—"
        lines.append(f"| {mode} | {row['median_pings_per_s']:,.0f} | {ratio} | {lat} | {delivered} |")
    if ceilings:
        lines += ["", "Redis ceilings measured in the same run:", ""]
        for name, value in ceilings.items():
            lines.append(f"- {name}: {value:,.0f}" if value else f"- {name}: not measured")
        geo = ceilings.get("pipelined GEOADD upsert from Python (rps)")
        lua = ceilings.get("index upsert Lua script, pipelined x1000 from Python (rps)")
        for mode in (
            "mqtt → redis",
            "submit → redis",
            "mqtt → redis+upsert_many",
            "submit → redis+upsert_many",
        ):
            rate = summary.get(mode, {}).get("median_pings_per_s")
            if rate and geo and lua:
                lines.append(
                    f"- {mode}: {rate / geo:.2f}x pipelined GEOADD, {rate / lua:.2f}x pipelined upsert script"
                )
    lines += [
        "",
        "Per-run rates (pings/s): "
        + "; ".join(f"{m} {[round(x['pings_per_s']) for x in rs]}" for m, rs in runs.items()),
        "",
        f"Command: `.venv/bin/python benchmarks/dispatch_ingest_mqtt.py{' --quick' if args.quick else ''}`",
        "",
    ]
    RESULT_MD.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
