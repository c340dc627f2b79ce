"""In-process ping ingest throughput: ``PingPipeline.process`` vs bare ``h3.latlng_to_cell``.

dispatch.md §2.3 pipeline (coordinate check, GCRA, dedupe, order, teleport, Kalman), single
thread, no I/O, no parsing: the pings are built before the clock starts. The workload is
seeded random walks of ``--drivers`` drivers around Heidelberg (49.41, 8.69), one ping every 4 s,
interleaved in time order, with a realistic sprinkle of faults (1 % replays, 0.5 % late pings,
0.1 % GPS jumps of ~50 km, 2 % fixes with accuracy worse than 100 m). The receipt time is the
ping time plus 0–2 s of jitter and is passed as ``received_s`` (what a partition consumer does).

The anchor, measured in the same run on the same points, is the bare cost of
``h3.latlng_to_cell(lat, lng, 8)`` (the one call every accepted ping needs next, for the live
index); the ratio pipeline/anchor is the machine-independent number. Medians of ``--runs`` runs;
each pipeline run starts from an empty pipeline. Writes ``benchmarks/results/dispatch-ingest.md``.

    .venv/bin/python benchmarks/dispatch_ingest.py            # 10,000 drivers, 500,000 pings, 3 runs
    .venv/bin/python benchmarks/dispatch_ingest.py --quick    # 1,000 drivers, 50,000 pings, 1 run
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import math
import os
import platform
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import h3
import numpy as np

from hexcity.dispatch.domain.pings import Ping, PingParams, PingPipeline
from hexcity.kernel import EARTH_RADIUS_M

REPO = Path(__file__).resolve().parents[1]
RESULT_MD = REPO / "benchmarks" / "results" / "dispatch-ingest.md"
CENTRE = (49.41, 8.69)
PING_INTERVAL_S = 4.0
TARGET_PINGS_PER_S = 100_000
T0_S = 1_764_000_000.0


def make_workload(drivers: int, pings: int, seed: int) -> tuple[list[Ping], list[float]]:
    """Time-ordered pings of ``drivers`` random walkers (``pings // drivers`` each) and receipt times."""
    rng = np.random.default_rng(seed)
    steps = pings // drivers
    m_per_deg_lat = EARTH_RADIUS_M * math.pi / 180.0
    m_per_deg_lng = m_per_deg_lat * math.cos(math.radians(CENTRE[0]))
    # true positions: start within ±6 km, heading random walk, speed 0-15 m/s
    x = rng.uniform(-6000.0, 6000.0, drivers)
    y = rng.uniform(-6000.0, 6000.0, drivers)
    heading = rng.uniform(0.0, 2 * math.pi, drivers)
    offset = rng.uniform(0.0, PING_INTERVAL_S, drivers)  # phase of each driver's ping clock
    ids = [f"drv-{i:06d}" for i in range(drivers)]
    out: list[Ping] = []
    recv: list[float] = []
    last: list[Ping | None] = [None] * drivers
    for step in range(steps):
        heading += rng.normal(0.0, 0.3, drivers)
        speed = rng.uniform(0.0, 15.0, drivers)
        x += np.sin(heading) * speed * PING_INTERVAL_S
        y += np.cos(heading) * speed * PING_INTERVAL_S
        acc = np.where(
            rng.random(drivers) < 0.02, rng.uniform(120.0, 400.0, drivers), rng.uniform(3.0, 30.0, drivers)
        )
        nx = x + rng.normal(0.0, 1.0, drivers) * acc
        ny = y + rng.normal(0.0, 1.0, drivers) * acc
        fault = rng.random(drivers)
        jitter = rng.uniform(0.0, 2.0, drivers)
        order = np.argsort(offset, kind="stable")
        for d in order.tolist():
            ts = T0_S + step * PING_INTERVAL_S + float(offset[d])
            prev = last[d]
            f = float(fault[d])
            if prev is not None and f < 0.01:  # replay of the previous ping
                p = prev
            elif prev is not None and f < 0.015:  # a late ping from before the previous one
                p = Ping(ids[d], prev.seq - 1, prev.timestamp_s - 1.0, prev.lat, prev.lng, 10.0)
            else:
                jump = 50_000.0 if f > 0.999 else 0.0
                p = Ping(
                    ids[d],
                    step,
                    ts,
                    CENTRE[0] + (float(ny[d]) + jump) / m_per_deg_lat,
                    CENTRE[1] + float(nx[d]) / m_per_deg_lng,
                    float(acc[d]),
                    math.degrees(float(heading[d])) % 360.0,
                    float(speed[d]),
                    "online",
                )
                last[d] = p
            out.append(p)
            recv.append(ts + float(jitter[d]))
    return out, recv


def time_pipeline(pings: list[Ping], recv: list[float]) -> tuple[float, Counter[str]]:
    pipe = PingPipeline(PingParams())
    process = pipe.process
    t0 = time.perf_counter()
    for p, r in zip(pings, recv, strict=True):
        process(p, r)
    elapsed = time.perf_counter() - t0
    return elapsed, Counter(pipe.counters)


def time_h3(lats: list[float], lngs: list[float]) -> float:
    to_cell = h3.latlng_to_cell
    t0 = time.perf_counter()
    for lat, lng in zip(lats, lngs, strict=True):
        to_cell(lat, lng, 8)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--drivers", type=int, default=10_000)
    ap.add_argument("--pings", type=int, default=500_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--quick", action="store_true", help="1,000 drivers, 50,000 pings, 1 run")
    ap.add_argument("--out", type=Path, default=RESULT_MD)
    args = ap.parse_args(argv)
    if args.quick:
        args.drivers, args.pings, args.runs = 1_000, 50_000, 1

    t_start = time.perf_counter()
    pings, recv = make_workload(args.drivers, args.pings, args.seed)
    lats = [p.lat for p in pings]
    lngs = [p.lng for p in pings]
    n = len(pings)
    gc.collect()
    gc.freeze()  # the pre-built workload is not garbage; keep the collector from rescanning it

    pipe_s: list[float] = []
    h3_s: list[float] = []
    counts: Counter[str] = Counter()
    for run in range(args.runs):  # interleaved, so drift on a shared machine hits both alike
        elapsed, counts = time_pipeline(pings, recv)
        pipe_s.append(elapsed)
        h3_s.append(time_h3(lats, lngs))
        print(
            f"run {run + 1}: pipeline {n / pipe_s[-1]:,.0f} pings/s, h3 {n / h3_s[-1]:,.0f} pings/s",
            flush=True,
        )

    pipe_rate = n / statistics.median(pipe_s)
    h3_rate = n / statistics.median(h3_s)
    ratio = pipe_rate / h3_rate
    met = pipe_rate >= TARGET_PINGS_PER_S
    total_s = time.perf_counter() - t_start
    cpu = platform.processor() or platform.machine()
    lines = [
        f"# Dispatch ingest: {args.drivers:,} drivers, {n:,} pings through `PingPipeline.process`",
        "",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {os.cpu_count()} CPUs, {cpu}, {platform.system()} {platform.release()}",
        f"- Python {platform.python_version()}, h3 {h3.__version__}, numpy {np.__version__}; "
        f"single thread, medians over {args.runs} run(s), seed {args.seed}; "
        f"total benchmark time {total_s:.0f} s",
        "- workload: seeded random walks around Heidelberg (49.41, 8.69), one ping per driver every 4 s, "
        "time-ordered; faults: 1 % replays, 0.5 % late pings, 0.1 % ~50 km jumps, 2 % fixes worse than "
        "100 m; receipt time = ping time + U(0, 2) s, passed as `received_s`",
        "- pings are pre-built `Ping` objects (no parsing, no I/O, no partitioning); "
        "`gc.freeze()` after building the workload",
        "- anchor: bare `h3.latlng_to_cell(lat, lng, 8)` over the same points in a Python loop, "
        "measured in the same run (dispatch.md §4 quotes 1.40 µs/call)",
        "",
        "| path | median time | throughput | µs/ping | vs h3 anchor |",
        "|---|---:|---:|---:|---:|",
        f"| `PingPipeline.process` | {statistics.median(pipe_s):.2f} s | {pipe_rate:,.0f} pings/s "
        f"| {1e6 / pipe_rate:.2f} | {ratio:.2f}x |",
        f"| `h3.latlng_to_cell` res 8 (anchor) | {statistics.median(h3_s):.2f} s | {h3_rate:,.0f} pings/s "
        f"| {1e6 / h3_rate:.2f} | 1.00x |",
        "",
        f"Ratio pipeline/anchor throughput: **{ratio:.2f}** (the pipeline costs "
        f"{h3_rate / pipe_rate:.1f}× one `latlng_to_cell` call per ping).",
        "",
        f"Target from issue 4, ≥ {TARGET_PINGS_PER_S:,} pings/s per core in-process: "
        f"**{'met' if met else 'not met'}** ({pipe_rate:,.0f} pings/s).",
        "",
        "Verdicts (last run): " + ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items())),
        "",
        "Most teleports are the 2 % low-accuracy fixes: noise drawn with σ = accuracy (120–400 m) "
        "can imply more than 200 km/h over 4 s against the previous raw fix, plus the ~50 km jumps.",
        "",
        "Per-run times (s): pipeline ["
        + ", ".join(f"{s:.2f}" for s in pipe_s)
        + "]; h3 ["
        + ", ".join(f"{s:.2f}" for s in h3_s)
        + "]",
        "",
        f"Command: `.venv/bin/python benchmarks/dispatch_ingest.py{' --quick' if args.quick else ''}`",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
