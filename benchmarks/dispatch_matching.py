"""Batched matching: latency at 1,000 riders × 5,000 drivers, and pickup-ETA quality vs greedy.

requirements dispatch.md §2.6, §3 ("aggregate pickup ETA 15–22 % lower than greedy") and §4 (SciPy
``linear_sum_assignment`` anchor). Points are uniform in Heidelberg's box (49.41, 8.69, ±0.08°).

**ETA stand-in:** the ETA port here is haversine × 1.3 (detour factor) ÷ 8.33 m/s (30 km/h), a
vectorised numpy function, NOT the road router. The lead re-runs this with
``RoutingEngine.table`` wired into the port; the ETA-matrix share of the latency will then grow.

* latency: ``match_batch`` on 1,000 × 5,000, split into candidate selection + sharding, ETA matrix
  (all shards) and solve (all shards), median over ``--runs`` runs;
* quality: 20 seeded instances of 200 riders × 400 drivers; total pickup ETA of ``match_batch``
  against ``greedy_match`` (the anchor, measured in the same run), per-instance reduction
  ``(greedy − batch)/greedy`` with mean, p50 and p95, for the pure-ETA cost (w_bearing = 0) and for
  the default cost; plus the offline optimum (one unsharded assignment over the whole instance).

    .venv/bin/python benchmarks/dispatch_matching.py            # ~1 min on 2 cores
    .venv/bin/python benchmarks/dispatch_matching.py --quick    # smoke
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy

from hexcity.dispatch.domain.matching import (
    Driver,
    MatchParams,
    MatchStats,
    Rider,
    greedy_match,
    match_batch,
    solve_assignment,
)
from hexcity.kernel import EARTH_RADIUS_M, LatLng

CENTER = (49.41, 8.69)
SPAN_DEG = 0.08
SPEED_MPS = 30 / 3.6
DETOUR = 1.3
OUT = Path(__file__).resolve().parent / "results" / "dispatch-matching.md"


def haversine_eta(drivers: Sequence[LatLng], riders: Sequence[LatLng]) -> np.ndarray:
    d = np.radians(np.asarray(drivers, dtype=np.float64).reshape(-1, 2))
    r = np.radians(np.asarray(riders, dtype=np.float64).reshape(-1, 2))
    dlat = r[None, :, 0] - d[:, None, 0]
    dlng = r[None, :, 1] - d[:, None, 1]
    h = np.sin(dlat / 2) ** 2 + np.cos(d[:, None, 0]) * np.cos(r[None, :, 0]) * np.sin(dlng / 2) ** 2
    dist = 2 * EARTH_RADIUS_M * np.arcsin(np.minimum(1.0, np.sqrt(h)))
    out: np.ndarray = dist * DETOUR / SPEED_MPS
    return out


def fleet(seed: int, n_riders: int, n_drivers: int) -> tuple[list[Rider], list[Driver]]:
    rng = np.random.default_rng(seed)
    rp = rng.uniform(-SPAN_DEG, SPAN_DEG, size=(n_riders, 2)) + CENTER
    dp = rng.uniform(-SPAN_DEG, SPAN_DEG, size=(n_drivers, 2)) + CENTER
    brg = rng.uniform(0, 360, size=n_drivers)
    riders = [Rider(f"r{i}", float(a), float(b)) for i, (a, b) in enumerate(rp)]
    drivers = [
        Driver(f"d{j}", float(a), float(b), float(c))
        for j, ((a, b), c) in enumerate(zip(dp, brg, strict=True))
    ]
    return riders, drivers


def offline_optimum_eta(riders: list[Rider], drivers: list[Driver], p: MatchParams) -> tuple[int, float]:
    eta = haversine_eta([d.latlng for d in drivers], [r.latlng for r in riders]).T
    allowed = np.isfinite(eta) & (eta <= p.max_pickup_eta_s)
    pairs = solve_assignment(eta, allowed)
    return len(pairs), float(sum(eta[i, j] for i, j in pairs))


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.array(xs), q))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--instances", type=int, default=20)
    args = ap.parse_args()
    runs = 1 if args.quick else args.runs
    instances = 3 if args.quick else args.instances

    # ---- latency -------------------------------------------------------------------------------
    riders, drivers = fleet(12345, 1000, 5000)
    params = MatchParams()
    lat_rows: list[tuple[float, MatchStats, int]] = []
    for _ in range(runs):
        st = MatchStats()
        t0 = time.perf_counter()
        got = match_batch(riders, drivers, haversine_eta, params, stats=st)
        lat_rows.append((time.perf_counter() - t0, st, len(got)))
    med = sorted(lat_rows, key=lambda x: x[0])[len(lat_rows) // 2]
    total_s, st, matched = med
    t0 = time.perf_counter()
    greedy_big = greedy_match(riders, drivers, haversine_eta, params)
    greedy_big_s = time.perf_counter() - t0
    print(f"latency 1000x5000: total {total_s * 1e3:.1f} ms, matched {matched}, shards {st.shards}")

    # ---- quality -------------------------------------------------------------------------------
    def quality(p: MatchParams) -> dict[str, list[float]]:
        res: dict[str, list[float]] = {k: [] for k in ("red", "red_opt", "gap", "mb", "mg", "mo", "eb", "eg")}
        for seed in range(instances):
            rs, ds = fleet(1000 + seed, 200, 400)
            b = match_batch(rs, ds, haversine_eta, p)
            g = greedy_match(rs, ds, haversine_eta, p)
            n_opt, e_opt = offline_optimum_eta(rs, ds, p)
            eb = sum(a.eta_s for a in b)
            eg = sum(a.eta_s for a in g)
            res["red"].append(100 * (eg - eb) / eg)
            res["red_opt"].append(100 * (eg - e_opt) / eg)
            res["gap"].append(100 * (eb - e_opt) / e_opt)
            res["mb"].append(len(b))
            res["mg"].append(len(g))
            res["mo"].append(n_opt)
            res["eb"].append(eb / len(b))
            res["eg"].append(eg / len(g))
        return res

    configs = [
        ("ETA only, lock nearest_rider (default rule)", MatchParams(w_bearing_s=0.0)),
        ("ETA only, lock own_zone", MatchParams(w_bearing_s=0.0, lock_rule="own_zone")),
        ("default cost (w_bearing 60 s), nearest_rider", MatchParams()),
    ]
    results = [(label, quality(p)) for label, p in configs]
    for label, q in results:
        print(
            f"{label}: reduction mean {statistics.fmean(q['red']):.1f} % p50 {pct(q['red'], 50):.1f} "
            f"p95 {pct(q['red'], 95):.1f}; offline optimum {statistics.fmean(q['red_opt']):.1f} %"
        )

    # ---- report --------------------------------------------------------------------------------
    def row(label: str, q: dict[str, list[float]]) -> str:
        m = statistics.fmean
        red = q["red"]
        cells = [
            label,
            f"{m(red):.1f}",
            f"{pct(red, 50):.1f}",
            f"{pct(red, 95):.1f}",
            f"{min(red):.1f}",
            f"{m(q['red_opt']):.1f}",
            f"{m(q['gap']):.1f}",
            f"{m(q['mb']):.1f} / {m(q['mg']):.1f} / {m(q['mo']):.1f}",
            f"{m(q['eb']):.0f} / {m(q['eg']):.0f}",
        ]
        return "| " + " | ".join(cells) + " |"

    head = (
        "| configuration | mean % | p50 % | p95 % | min % | optimum's reduction % | batch gap to optimum % "
        "| matched batch / greedy / optimum | mean ETA s batch / greedy |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    table = "\n".join([head, *(row(label, q) for label, q in results)])
    main_red = results[0][1]["red"]
    opt_red = statistics.fmean(results[0][1]["red_opt"])
    other_ms = (total_s - st.candidates_s - st.eta_s - st.solve_s) * 1e3
    bound_note = (
        f"The unsharded optimum itself is only {opt_red:.1f} % below greedy on these instances, so "
        "no matcher reaches the target on them: with two uniformly spread drivers per rider, greedy "
        "nearest-driver is already close to optimal (the claim's worked example, 20 min against "
        "10 min, is a small contention case, not a uniform fleet)."
        if opt_red < 15.0
        else f"The unsharded optimum is {opt_red:.1f} % below greedy on these instances."
    )
    quick_note = "**Quick run (smoke), not for citing.**" if args.quick else ""
    md = f"""# Dispatch matching: latency and quality vs greedy

Generated by `benchmarks/dispatch_matching.py` on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC,
Python {platform.python_version()}, NumPy {np.__version__}, SciPy {scipy.__version__},
{platform.machine()}, shared 2-core machine. {quick_note}

**ETA stand-in: haversine × {DETOUR} ÷ {SPEED_MPS:.2f} m/s (30 km/h), vectorised numpy — not the road
router.** The lead re-runs with `RoutingEngine.table` wired into the `EtaMatrix` port; expect the
ETA-matrix share to dominate then.

Points uniform in ({CENTER[0]}, {CENTER[1]}) ± {SPAN_DEG}° (about 17.8 × 11.6 km). Parameters: the
`MatchParams` defaults (max pickup ETA {params.max_pickup_eta_s:.0f} s, 30 candidates per rider,
shards ≤ {params.max_riders_per_shard} riders × {params.max_drivers_per_shard} drivers per H3 res-6
zone, lock rule `{params.lock_rule}`).

## Latency: 1,000 riders × 5,000 drivers (median of {runs} run(s))

| phase | ms |
|---|---:|
| candidate selection + sharding | {st.candidates_s * 1e3:.1f} |
| ETA matrices (all shards, stand-in) | {st.eta_s * 1e3:.1f} |
| solve (`linear_sum_assignment`, all shards) | {st.solve_s * 1e3:.1f} |
| other (cost matrix, bearing, bookkeeping) | {other_ms:.1f} |
| **total `match_batch`** | **{total_s * 1e3:.1f}** |
| greedy baseline, global (for reference) | {greedy_big_s * 1e3:.1f} |

{st.shards} shards, largest {st.max_shard_riders} riders × {st.max_shard_drivers} drivers;
{matched} riders matched (greedy: {len(greedy_big)}).

## Quality: {instances} seeded instances of 200 riders × 400 drivers

Reduction of the total pickup ETA against `greedy_match` (riders in request order take the nearest
free driver, global, no shards, no candidate cap), measured in this run: `(greedy − batch)/greedy`
per instance. "Optimum" is one unsharded assignment over the whole instance on the ETA alone (the
best any matcher can do on that instance); "gap" is batch over that optimum.

{table}

Target (§3 claim): ≥ 15 % lower than greedy. Measured mean {statistics.fmean(main_red):.1f} %
(ETA-only cost, default lock rule): **{"met" if statistics.fmean(main_red) >= 15.0 else "NOT met"}**.
{bound_note} With the default cost the solver also pays for bearing mismatch, so its ETA total
is not what it minimises.
"""
    if not args.quick:
        OUT.write_text("\n".join(line.rstrip() for line in md.splitlines()) + "\n")
        print(f"wrote {OUT}")
    else:
        print(md)


if __name__ == "__main__":
    main()
