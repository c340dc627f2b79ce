"""50,000-event webhook burst: hexcity WorkerPool vs task-per-event vs semaphore-before-create_task.

The operations.md §4 anchor, re-measured in one run on this machine. Each event is a 4 KB JSON
body that goes through the **intake path called directly** (no HTTP, no ASGI, no idempotency
store): parse the body with orjson into a ``WebhookEvent`` (what the HTTP intake keeps per queued
event), hand it to the strategy, and a handler with 10 ms of simulated I/O (``asyncio.sleep``).

Strategies:

* ``pool``: ``hexcity.infra.concurrency.WorkerPool`` (100 workers, queue 1,000); the producer
  uses ``await pool.submit(event)``, so it is held back when the queue is full;
* ``naive``: ``asyncio.create_task`` per event, then ``gather`` (the incident);
* ``semaphore``: ``Semaphore(100)`` acquired **before** ``create_task`` in a ``TaskGroup``,
  released inside the task;
* ``semaphore-wrong`` (only with ``--strategies``): acquired and released in the producer
  (pitfall 2, bounds nothing).

Each (strategy, run) executes in a fresh child process, so one strategy's heap never inflates the
next one's RSS. Timed runs (wall time, throughput, peak extra RSS sampled with psutil every 5 ms)
are separate from tracemalloc runs (peak traced memory), because tracemalloc slows allocation-heavy
code and would skew the times. Medians over ``--runs`` runs; ratios are strategy / naive from
this invocation. Writes ``benchmarks/results/webhook-burst.md``.

    .venv/bin/python benchmarks/webhook_burst.py            # full: 50,000 events, 3 runs (~2-3 min)
    .venv/bin/python benchmarks/webhook_burst.py --quick    # smoke: 5,000 events, 1 run
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULT_MD = REPO / "benchmarks" / "results" / "webhook-burst.md"
STRATEGIES = ("naive", "pool", "semaphore")
ALL_STRATEGIES = (*STRATEGIES, "semaphore-wrong")
MIB = 1024 * 1024


# -- child: one strategy, one run -----------------------------------------------------------------


class RssSampler:
    """Samples this process's RSS every ``interval_s`` in a thread; keeps the peak."""

    def __init__(self, interval_s: float = 0.005) -> None:
        import psutil

        self._proc = psutil.Process()
        self._interval_s = interval_s
        self.baseline = self._proc.memory_info().rss
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


def make_body(i: int, size: int) -> bytes:
    head = b'{"id":"evt_%d","type":"payment.succeeded","pad":"' % i
    return head + b"x" * max(0, size - len(head) - 2) + b'"}'


async def run_strategy(
    name: str, events: int, size: int, io_s: float, workers: int, queue: int
) -> dict[str, Any]:
    import orjson
    from prometheus_client import CollectorRegistry

    from hexcity.infra.concurrency import WorkerPool
    from hexcity.infra.webhooks import WebhookEvent

    state = {"running": 0, "peak": 0, "done": 0}

    async def handler(event: WebhookEvent) -> None:
        state["running"] += 1
        state["peak"] = max(state["peak"], state["running"])
        try:
            await asyncio.sleep(io_s)
        finally:
            state["running"] -= 1
            state["done"] += 1

    def intake(i: int) -> WebhookEvent:  # the intake path: a body arrives and is parsed
        payload = orjson.loads(make_body(i, size))
        return WebhookEvent(source="bench", key=payload["id"], payload=payload, received_at_s=time.time())

    if name == "pool":
        pool = WorkerPool(
            "bench", workers, queue, handler, registry=CollectorRegistry(), drain_deadline_s=600
        )
        async with pool:
            for i in range(events):
                await pool.submit(intake(i))
    elif name == "naive":
        tasks = [asyncio.create_task(handler(intake(i))) for i in range(events)]
        await asyncio.gather(*tasks)
    elif name == "semaphore":
        sem = asyncio.Semaphore(workers)

        async def guarded(event: WebhookEvent) -> None:
            try:
                await handler(event)
            finally:
                sem.release()

        async with asyncio.TaskGroup() as tg:
            for i in range(events):
                await sem.acquire()
                tg.create_task(guarded(intake(i)))
    elif name == "semaphore-wrong":
        sem = asyncio.Semaphore(workers)
        async with asyncio.TaskGroup() as tg:
            for i in range(events):
                async with sem:  # acquired and released in the producer: bounds nothing
                    pass
                tg.create_task(handler(intake(i)))
    else:
        raise ValueError(name)
    if state["done"] != events:
        raise RuntimeError(f"{name}: processed {state['done']} of {events}")
    return {"peak_concurrency": state["peak"]}


def child(args: argparse.Namespace) -> None:
    # import everything before the baseline so imports do not count as "extra" memory
    import orjson  # noqa: F401
    import prometheus_client  # noqa: F401

    import hexcity.infra.concurrency
    import hexcity.infra.webhooks  # noqa: F401

    coro_args = (args.child, args.events, args.payload_bytes, args.io_ms / 1000, args.workers, args.queue)
    if args.tracemalloc:
        tracemalloc.start()
        extra = asyncio.run(run_strategy(*coro_args))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(json.dumps({"tracemalloc_peak_mib": peak / MIB, **extra}))
        return
    with RssSampler() as rss:
        start = time.perf_counter()
        extra = asyncio.run(run_strategy(*coro_args))
        wall = time.perf_counter() - start
    print(json.dumps({"wall_s": wall, "peak_extra_rss_mib": (rss.peak - rss.baseline) / MIB, **extra}))


# -- parent: orchestrate, aggregate, report -------------------------------------------------------


def spawn(args: argparse.Namespace, strategy: str, *, trace: bool) -> dict[str, Any]:
    cmd = [
        sys.executable, __file__, "--child", strategy, "--events", str(args.events),
        "--payload-bytes", str(args.payload_bytes), "--io-ms", str(args.io_ms),
        "--workers", str(args.workers), "--queue", str(args.queue),
    ]  # fmt: skip
    if trace:
        cmd.append("--tracemalloc")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=300, env=env)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def median(rows: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def render(args: argparse.Namespace, strategies: list[str], timed: dict[str, list[dict[str, Any]]],
           traced: dict[str, list[dict[str, Any]]], elapsed_s: float) -> str:  # fmt: skip
    base_wall = median(timed["naive"], "wall_s") if "naive" in timed else float("nan")
    base_rss = median(timed["naive"], "peak_extra_rss_mib") if "naive" in timed else float("nan")
    base_tm = median(traced["naive"], "tracemalloc_peak_mib") if "naive" in traced else float("nan")
    label = {
        "pool": f"hexcity `WorkerPool` ({args.workers} workers, queue {args.queue:,}, `submit`)",
        "naive": "naive `create_task` per event + `gather`",
        "semaphore": f"`Semaphore({args.workers})` acquired before `create_task`",
        "semaphore-wrong": f"`Semaphore({args.workers})` acquired+released in the producer",
    }
    floor_s = args.events * args.io_ms / 1000 / args.workers
    lines = [
        f"# Webhook burst: {args.events:,} events x {args.payload_bytes:,} B, handler {args.io_ms:g} ms I/O",
        "",
        f"- date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {cpu_model()}, "
        f"{platform.system()} {platform.release()}",
        f"- Python {platform.python_version()}; medians over {args.runs} run(s) per strategy, each in a "
        "fresh child process; intake path called directly (orjson parse -> `WebhookEvent` -> strategy), "
        "no HTTP/ASGI",
        "- wall time, throughput and peak extra RSS (psutil, sampled every 5 ms, above the post-import "
        "baseline) come from runs without tracemalloc; peak tracemalloc from separate runs",
        f"- theoretical floor with {args.workers} concurrent handlers: {floor_s:.1f} s; ratios are "
        f"strategy / naive from this invocation; total benchmark time {elapsed_s:.0f} s",
        "",
        "| strategy | wall time | throughput | peak extra RSS | peak tracemalloc | peak concurrency "
        "| wall vs naive | RSS vs naive | tracemalloc vs naive |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in strategies:
        wall = median(timed[s], "wall_s")
        rss = median(timed[s], "peak_extra_rss_mib")
        tm = median(traced[s], "tracemalloc_peak_mib")
        conc = max(r["peak_concurrency"] for r in timed[s])
        lines.append(
            f"| {label[s]} | {wall:.2f} s | {args.events / wall:,.0f} ev/s | {rss:.1f} MiB | {tm:.1f} MiB "
            f"| {conc:,} | {wall / base_wall:.2f}x | {rss / base_rss:.3f}x | {tm / base_tm:.3f}x |"
        )
    if "pool" in timed:
        ok = median(timed["pool"], "peak_extra_rss_mib") <= 32
        lines += ["", f"Target for the pool: peak extra RSS <= 32 MiB: **{'met' if ok else 'NOT met'}**."]
    lines += ["", "Per-run values (timed runs: wall s / extra RSS MiB; traced runs: tracemalloc MiB):", ""]
    for s in strategies:
        walls = ", ".join(f"{r['wall_s']:.2f}/{r['peak_extra_rss_mib']:.1f}" for r in timed[s])
        tms = ", ".join(f"{r['tracemalloc_peak_mib']:.1f}" for r in traced[s])
        lines.append(f"- {s}: timed [{walls}]; traced [{tms}]")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--payload-bytes", type=int, default=4096)
    ap.add_argument("--io-ms", type=float, default=10.0)
    ap.add_argument("--workers", type=int, default=100)
    ap.add_argument("--queue", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--strategies", default=",".join(STRATEGIES), help=f"comma list of {ALL_STRATEGIES}")
    ap.add_argument("--quick", action="store_true", help="smoke run: 5,000 events, 1 run, no results file")
    ap.add_argument("--out", type=Path, default=RESULT_MD)
    ap.add_argument("--child", choices=ALL_STRATEGIES, help=argparse.SUPPRESS)
    ap.add_argument("--tracemalloc", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    if args.quick:
        args.events, args.runs = 5000, 1
    strategies = [s for s in args.strategies.split(",") if s]
    if "naive" not in strategies:
        strategies.insert(0, "naive")  # the baseline of every ratio
    timed: dict[str, list[dict[str, Any]]] = {s: [] for s in strategies}
    traced: dict[str, list[dict[str, Any]]] = {s: [] for s in strategies}
    start = time.perf_counter()
    for r in range(args.runs):  # interleave strategies so machine noise spreads evenly
        for s in strategies:
            timed[s].append(spawn(args, s, trace=False))
            traced[s].append(spawn(args, s, trace=True))
            print(f"run {r + 1}/{args.runs} {s}: {timed[s][-1]} {traced[s][-1]}", file=sys.stderr, flush=True)
    table = render(args, strategies, timed, traced, time.perf_counter() - start)
    print(table)
    if not args.quick:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table)
        print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
