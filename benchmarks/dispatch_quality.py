"""Pickup-ETA quality of batched matching vs greedy nearest-driver: a time-stepped simulation on Heidelberg.

requirements dispatch.md §2.1 (NYC trip sample as demand), §2.6, §3 ("aggregate pickup ETA 15–22 %
lower than greedy"), §4 (metrics: mean and p95 pickup ETA, match rate). Both policies see the SAME
demand, the SAME initial fleet and the SAME road ETAs (``RoutingEngine.table``, car, Heidelberg);
each policy then lives with its own consequences (drivers busy during pickup + trip, free again at
the drop-off).

Demand, mapped from ``../shared/data/trips/`` (980 trips after dropping the 20 rows with 0.0
coordinates):

* **time**: the sample is 50 bursts of about 20 requests within 2–17 s (consecutive TLC records).
  A burst is drawn with replacement and replayed with its own relative request times; bursts
  start as a Poisson process whose rate sets the demand (``--per-hour``). A ``poisson`` variant
  spreads the same rate evenly (exponential inter-arrivals), to show what the bursts do;
* **origins**: NYC pickup offsets from the sample's median pickup, scaled by 0.35 (Manhattan's
  ~20 km onto Heidelberg's ~7 km), placed around Bismarckplatz, jittered by 150 m and snapped to
  the car network (within 300 m, else redrawn);
* **trip length**: the NYC ``trip_distance`` (road miles) resampled; the straight-line offset is
  that ÷ 1.3 in a uniform direction, snapped within 300 m (another direction up to 20 times, then
  the length halved). The busy time is the road duration of pickup + trip.

Fleet: drivers start where demand starts (drawn like the origins), free, with a random heading;
after a trip they wait at the drop-off with the trip's heading (no repositioning). The fleet size
comes from a target **supply/demand ratio** ``r = N / (λ · E[busy])`` (drivers per concurrently
needed driver; λ the realised request rate of the seed, E[busy] the mean pickup + trip time, 180 s + mean
trip duration), so ``1/r`` is the offered utilisation.

Every 3 s window (§2.6 nominal) the waiting riders are matched against the free drivers: batched
= ``match_batch`` (its defaults unless stated), greedy = ``greedy_match`` (riders in request order
take the nearest free driver by road ETA, global). Unmatched riders wait for the next window and
abandon after 300 s. The first 10 min are warm-up; requests of the next 30 min are measured.

    .venv/bin/python benchmarks/dispatch_quality.py --graph DIR --seeds 5   # committed results, ~4 min
    .venv/bin/python benchmarks/dispatch_quality.py --graph DIR --quick     # one seed, one scenario
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import itertools
import json
import math
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dispatch_quality_report import render_markdown
from hexcity.dispatch import Assignment, Driver, MatchParams, Rider, greedy_match, match_batch
from hexcity.dispatch.domain.matching import solve_assignment
from hexcity.kernel import EARTH_RADIUS_M, LatLng
from hexcity.routing import Limits, RoutingEngine, RoutingError, build_graph

ROOT = Path(__file__).resolve().parents[1]
TRIPS = ROOT.parent / "shared" / "data" / "trips" / "nyc_tlc_yellow_2015-01_sample.csv"
OUT = ROOT / "benchmarks" / "results" / "dispatch_quality"

CENTER = LatLng(49.4093, 8.6929)  # Bismarckplatz, Heidelberg
GEO_SCALE = 0.35
JITTER_M = 150.0
SNAP_M = 300.0
DETOUR = 1.3
WINDOW_S = 3.0
MAX_WAIT_S = 300.0
WARMUP_S = 600.0
MEASURE_S = 1800.0
PICKUP_GUESS_S = 180.0
BUCKETS_S = (0, 60, 120, 180, 240, 300, 420, 600)

EtaFn = Callable[[Sequence[LatLng], Sequence[LatLng]], np.ndarray]
Policy = Callable[[list[Rider], list[Driver], EtaFn], list[Assignment]]


@dataclass(frozen=True)
class NycSample:
    offsets_m: np.ndarray  # (n, 2) east, north of the median pickup
    trip_m: np.ndarray  # road distance, metres (zero-length trips dropped)
    bursts: list[np.ndarray]  # relative request times per burst, seconds


def load_nyc(path: Path) -> NycSample:
    """Read the TLC sample; drop rows with a 0.0 coordinate; split into bursts at gaps over 60 s."""
    with path.open(newline="") as fh:
        rows = [
            r
            for r in csv.DictReader(fh)
            if all(
                float(r[k]) != 0.0
                for k in ("pickup_longitude", "pickup_latitude", "dropoff_longitude", "dropoff_latitude")
            )
        ]
    lat = np.array([float(r["pickup_latitude"]) for r in rows])
    lng = np.array([float(r["pickup_longitude"]) for r in rows])
    lat0, lng0 = float(np.median(lat)), float(np.median(lng))
    east = np.radians(lng - lng0) * math.cos(math.radians(lat0)) * EARTH_RADIUS_M
    north = np.radians(lat - lat0) * EARTH_RADIUS_M
    trip_m = np.array([float(r["trip_distance"]) * 1609.344 for r in rows])
    fmt = "%Y-%m-%d %H:%M:%S"
    t = np.sort(np.array([dt.datetime.strptime(r["tpep_pickup_datetime"], fmt).timestamp() for r in rows]))
    cuts = np.flatnonzero(np.diff(t) > 60.0) + 1
    bursts = [b - b[0] for b in np.split(t, cuts)]
    return NycSample(np.column_stack((east, north)), trip_m[trip_m > 0], bursts)


def offset(p: LatLng, east_m: float, north_m: float) -> LatLng:
    lat = p.lat + math.degrees(north_m / EARTH_RADIUS_M)
    lng = p.lng + math.degrees(east_m / (EARTH_RADIUS_M * math.cos(math.radians(p.lat))))
    return LatLng(lat, lng)


def bearing_deg(a: LatLng, b: LatLng) -> float:
    p1, p2 = math.radians(a.lat), math.radians(b.lat)
    dl = math.radians(b.lng - a.lng)
    y = math.sin(dl) * math.cos(p2)
    x = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return math.degrees(math.atan2(y, x)) % 360.0


class Geography:
    """Origins and destinations on the Heidelberg car network, drawn from the NYC sample."""

    def __init__(self, engine: RoutingEngine, nyc: NycSample, rng: np.random.Generator) -> None:
        self.engine, self.nyc, self.rng = engine, nyc, rng
        self.shortened = 0

    def snap(self, p: LatLng) -> LatLng | None:
        try:
            return self.engine.snap(p, SNAP_M).location
        except RoutingError:
            return None

    def origin(self) -> LatLng:
        while True:
            e, n = self.nyc.offsets_m[self.rng.integers(len(self.nyc.offsets_m))] * GEO_SCALE
            e, n = e + self.rng.normal(0, JITTER_M), n + self.rng.normal(0, JITTER_M)
            got = self.snap(offset(CENTER, float(e), float(n)))
            if got is not None:
                return got

    def destination(self, o: LatLng) -> LatLng:
        length = float(self.nyc.trip_m[self.rng.integers(len(self.nyc.trip_m))]) / DETOUR
        while True:
            for _ in range(20):
                a = self.rng.uniform(0, 2 * math.pi)
                got = self.snap(offset(o, length * math.sin(a), length * math.cos(a)))
                if got is not None and got != o:
                    return got
            self.shortened += 1
            length /= 2


@dataclass(frozen=True)
class Request:
    id: str
    t_s: float
    origin: LatLng
    dest: LatLng
    trip_s: float


def demand(
    geo: Geography, per_hour: float, horizon_s: float, rng: np.random.Generator, *, bursty: bool
) -> list[Request]:
    """Requests over [0, horizon_s): NYC bursts at Poisson burst starts, or plain Poisson arrivals."""
    times: list[float] = []
    if bursty:
        mean_burst = statistics.fmean(len(b) for b in geo.nyc.bursts)
        gap_s = 3600.0 * mean_burst / per_hour
        t = float(rng.exponential(gap_s))
        while t < horizon_s:
            burst = geo.nyc.bursts[rng.integers(len(geo.nyc.bursts))]
            times.extend(float(t + x) for x in burst if t + x < horizon_s)
            t += float(rng.exponential(gap_s))
    else:
        t = float(rng.exponential(3600.0 / per_hour))
        while t < horizon_s:
            times.append(t)
            t += float(rng.exponential(3600.0 / per_hour))
    out: list[Request] = []
    for n, t_s in enumerate(sorted(times)):
        o = geo.origin()
        d = geo.destination(o)
        trip_s = float(geo.engine.route([o, d], geometry=False).duration_s)
        out.append(Request(f"q{n:05d}", t_s, o, d, trip_s))
    return out


@dataclass
class Outcome:
    pickup_eta_s: list[float] = field(default_factory=list)
    match_wait_s: list[float] = field(default_factory=list)
    abandoned: int = 0
    measured: int = 0
    supply_demand_per_window: list[float] = field(default_factory=list)
    busy_s: float = 0.0
    policy_s: float = 0.0


def measured(r: Request) -> bool:
    """Requests of the measured period (after warm-up)."""
    return WARMUP_S <= r.t_s < WARMUP_S + MEASURE_S


def simulate(
    requests: list[Request], fleet: list[tuple[LatLng, float]], policy: Policy, eta: EtaFn
) -> Outcome:
    """Run the windows until every measured request is matched or abandoned."""
    pos = [p for p, _h in fleet]
    heading = [h for _p, h in fleet]
    free_at = [0.0] * len(fleet)
    by_id = {r.id: r for r in requests}
    waiting: list[Request] = []
    out = Outcome()
    nxt = 0
    t = 0.0
    end_s = WARMUP_S + MEASURE_S + MAX_WAIT_S + WINDOW_S
    while t < end_s:
        t += WINDOW_S
        while nxt < len(requests) and requests[nxt].t_s <= t:
            waiting.append(requests[nxt])
            nxt += 1
        kept = [r for r in waiting if t - r.t_s <= MAX_WAIT_S]
        out.abandoned += sum(1 for r in waiting if t - r.t_s > MAX_WAIT_S and measured(r))
        waiting = kept
        free = [j for j in range(len(fleet)) if free_at[j] <= t]
        if not waiting or not free:
            continue
        if WARMUP_S <= t < WARMUP_S + MEASURE_S:
            out.supply_demand_per_window.append(len(free) / len(waiting))
        riders = [Rider(r.id, r.origin.lat, r.origin.lng) for r in waiting]
        drivers = [Driver(f"v{j}", pos[j].lat, pos[j].lng, heading[j]) for j in free]
        t0 = time.perf_counter()
        got = policy(riders, drivers, eta)
        out.policy_s += time.perf_counter() - t0
        done = set()
        for a in got:
            r = by_id[a.rider_id]
            j = int(a.driver_id[1:])
            busy = a.eta_s + r.trip_s
            free_at[j] = t + busy
            heading[j] = bearing_deg(r.origin, r.dest)
            pos[j] = r.dest
            done.add(r.id)
            if measured(r):
                out.pickup_eta_s.append(a.eta_s)
                out.match_wait_s.append(t - r.t_s)
                out.busy_s += busy
        waiting = [r for r in waiting if r.id not in done]
    out.measured = sum(1 for r in requests if measured(r))
    return out


def summary(xs: list[float]) -> dict[str, Any]:
    a = np.array(xs, dtype=np.float64)
    if a.size == 0:
        return {"n": 0}
    hist = np.histogram(a, bins=[*BUCKETS_S, math.inf])[0]
    labels = [f"{lo}-{hi}" for lo, hi in itertools.pairwise(BUCKETS_S)] + [f">{BUCKETS_S[-1]}"]
    return {
        "n": int(a.size),
        "mean": float(a.mean()),
        "p50": float(np.percentile(a, 50)),
        "p90": float(np.percentile(a, 90)),
        "p95": float(np.percentile(a, 95)),
        "total": float(a.sum()),
        "histogram_s": dict(zip(labels, (int(h) for h in hist), strict=True)),
    }


def batched(params: MatchParams) -> Policy:
    return lambda rs, ds, eta: match_batch(rs, ds, eta, params)


def greedy(rs: list[Rider], ds: list[Driver], eta: EtaFn) -> list[Assignment]:
    return greedy_match(rs, ds, eta, MatchParams(w_bearing_s=0.0))


def window_optimum(rs: list[Rider], ds: list[Driver], eta: EtaFn) -> list[Assignment]:
    """Reference: one unsharded assignment per window on the road ETA alone (no candidate cap)."""
    m = np.asarray(eta([d.latlng for d in ds], [r.latlng for r in rs]), dtype=np.float64).T
    allowed = np.isfinite(m) & (m <= MatchParams().max_pickup_eta_s)
    pairs = solve_assignment(np.nan_to_num(m, nan=0.0), allowed)
    return [Assignment(rs[i].id, ds[j].id, float(m[i, j]), float(m[i, j])) for i, j in pairs]


@dataclass(frozen=True)
class Scenario:
    name: str
    ratio: float
    bursty: bool
    per_hour: float


def run_scenario(
    engine: RoutingEngine,
    nyc: NycSample,
    sc: Scenario,
    seeds: Sequence[int],
    policies: dict[str, Policy],
    eta: EtaFn,
) -> dict[str, Any]:
    pooled: dict[str, Outcome] = {k: Outcome() for k in policies}
    per_seed: list[dict[str, float]] = []
    fleet_sizes = []
    mean_trip = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        geo = Geography(engine, nyc, rng)
        reqs = demand(geo, sc.per_hour, WARMUP_S + MEASURE_S, rng, bursty=sc.bursty)
        trip_mean_s = statistics.fmean(r.trip_s for r in reqs)
        rate_per_s = len(reqs) / (WARMUP_S + MEASURE_S)  # realised, so r holds per seed
        n_drivers = max(1, round(sc.ratio * rate_per_s * (PICKUP_GUESS_S + trip_mean_s)))
        fleet = [(geo.origin(), float(rng.uniform(0, 360))) for _ in range(n_drivers)]
        fleet_sizes.append(n_drivers)
        mean_trip.append(trip_mean_s)
        row: dict[str, float] = {"seed": seed, "drivers": n_drivers}
        for name, pol in policies.items():
            o = simulate(reqs, fleet, pol, eta)
            acc = pooled[name]
            acc.pickup_eta_s += o.pickup_eta_s
            acc.match_wait_s += o.match_wait_s
            acc.abandoned += o.abandoned
            acc.measured += o.measured
            acc.supply_demand_per_window += o.supply_demand_per_window
            acc.busy_s += o.busy_s
            acc.policy_s += o.policy_s
            row[f"{name}_mean_eta_s"] = statistics.fmean(o.pickup_eta_s) if o.pickup_eta_s else math.nan
            row[f"{name}_served"] = len(o.pickup_eta_s)
        per_seed.append(row)
    result: dict[str, Any] = {
        "scenario": sc.name,
        "supply_demand_ratio": sc.ratio,
        "bursty": sc.bursty,
        "requests_per_hour": sc.per_hour,
        "drivers": fleet_sizes,
        "mean_trip_s": statistics.fmean(mean_trip),
        "per_seed": per_seed,
        "policies": {},
    }
    for name, o in pooled.items():
        result["policies"][name] = {
            "pickup_eta_s": summary(o.pickup_eta_s),
            "match_wait_s": summary(o.match_wait_s),
            "served": len(o.pickup_eta_s),
            "abandoned": o.abandoned,
            "measured_requests": o.measured,
            "utilisation": o.busy_s / (statistics.fmean(fleet_sizes) * len(seeds) * MEASURE_S),
            "free_per_waiting_median": float(np.median(o.supply_demand_per_window))
            if o.supply_demand_per_window
            else math.nan,
            "policy_ms_per_run": 1e3 * o.policy_s / len(seeds),
        }
    g = result["policies"]["greedy"]["pickup_eta_s"]
    for name in policies:
        b = result["policies"][name]["pickup_eta_s"]
        pol = result["policies"][name]
        pol["mean_eta_reduction_vs_greedy_pct"] = 100 * (g["mean"] - b["mean"]) / g["mean"]
        pol["total_eta_reduction_vs_greedy_pct"] = 100 * (g["total"] - b["total"]) / g["total"]
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--graph", type=Path, help="a built Heidelberg car artefact (built if absent)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--per-hour", type=float, default=600.0, help="requests per hour")
    ap.add_argument("--quick", action="store_true", help="one seed, main scenario only")
    args = ap.parse_args()
    graph = args.graph
    if graph is None:
        graph = Path(tempfile.mkdtemp()) / "heidelberg-car"
        build_graph(ROOT / "data" / "osm" / "heidelberg.osm.pbf", "car", graph)
    engine = RoutingEngine.open(graph, limits=Limits(max_table_size=10_000))
    eta_calls = [0, 0.0]

    def road_eta(drivers: Sequence[LatLng], riders: Sequence[LatLng]) -> np.ndarray:
        t0 = time.perf_counter()
        out = engine.table(list(drivers), list(riders)).durations_s
        eta_calls[0] += 1
        eta_calls[1] += time.perf_counter() - t0
        return out

    nyc = load_nyc(TRIPS)
    seeds = [1] if args.quick else list(range(1, args.seeds + 1))
    t_start = time.perf_counter()
    base: dict[str, Policy] = {
        "batched": batched(MatchParams()),
        "batched w_bearing=0": batched(MatchParams(w_bearing_s=0.0)),
        "window optimum": window_optimum,
        "greedy": greedy,
    }
    ratios = [1.1] if args.quick else [0.9, 1.0, 1.1, 1.3, 1.5, 2.0]
    scenarios = [Scenario(f"bursty r={r:g}", r, True, args.per_hour) for r in ratios]
    if not args.quick:
        scenarios.append(Scenario("poisson r=1.1", 1.1, False, args.per_hour))
        # three times the demand and the fleet at the same r: denser city, more riders per window
        big = 3 * args.per_hour
        scenarios += [Scenario(f"bursty r={r:g}, {big:g}/h", r, True, big) for r in (1.1, 1.5)]
    results = []
    for sc in scenarios:
        res = run_scenario(engine, nyc, sc, seeds, base, road_eta)
        results.append(res)
        print(f"{sc.name}: {summarise_line(res)}", flush=True)
    bearing_runs: dict[str, Policy] = {
        f"batched w_bearing={w:g}": batched(MatchParams(w_bearing_s=w)) for w in (0.0, 15.0, 30.0, 60.0)
    }
    bearing_runs["greedy"] = greedy
    bearing = []
    for r in [1.5] if args.quick else [1.1, 1.5, 2.0]:
        bearing_sc = Scenario(f"bearing sweep, bursty r={r:g}", r, True, args.per_hour)
        bearing.append(run_scenario(engine, nyc, bearing_sc, seeds, bearing_runs, road_eta))
        print(f"{bearing_sc.name}: {summarise_line(bearing[-1])}", flush=True)
    report = {
        "generated_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, Python {platform.python_version()}, shared 2-core machine",
        "seeds": seeds,
        "settings": {
            "window_s": WINDOW_S,
            "max_wait_s": MAX_WAIT_S,
            "warmup_s": WARMUP_S,
            "measure_s": MEASURE_S,
            "geo_scale": GEO_SCALE,
            "detour": DETOUR,
            "requests_per_hour": args.per_hour,
            "nyc_bursts": len(nyc.bursts),
            "nyc_mean_burst_size": statistics.fmean(len(b) for b in nyc.bursts),
        },
        "scenarios": results,
        "bearing_sweep": bearing,
        "eta_calls": eta_calls[0],
        "eta_ms_total": eta_calls[1] * 1e3,
        "wall_s": time.perf_counter() - t_start,
    }
    OUT.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    md = render_markdown(report)
    OUT.with_suffix(".md").write_text(md)
    print(md)


def summarise_line(res: dict[str, Any]) -> str:
    parts = []
    for name, p in res["policies"].items():
        e = p["pickup_eta_s"]
        parts.append(
            f"{name}: mean {e['mean']:.0f} s p95 {e['p95']:.0f} s"
            f" served {p['served']}/{p['measured_requests']} ({p['mean_eta_reduction_vs_greedy_pct']:+.1f} %)"
        )
    return "; ".join(parts)


if __name__ == "__main__":
    main()
