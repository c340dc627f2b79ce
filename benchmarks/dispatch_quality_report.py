"""Markdown rendering of ``dispatch_quality.py`` results (kept apart so the simulation stays short)."""

from __future__ import annotations

from typing import Any

TARGET_PCT = 15.0
VERDICT_HEAD = (
    "| scenario | r | drivers (mean) | batched: mean ETA % lower | per-seed range % "
    "| batched: total ETA % lower | batched w_bearing=0 % | window optimum % | target |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|---|"
)


def _policy_rows(sc: dict[str, Any]) -> list[str]:
    rows = []
    for name, p in sc["policies"].items():
        e = p["pickup_eta_s"]
        red = "—" if name == "greedy" else f"{p['mean_eta_reduction_vs_greedy_pct']:+.1f}"
        rows.append(
            f"| {sc['scenario']} | {name} | {e['mean']:.0f} | {e['p50']:.0f} | {e['p90']:.0f} "
            f"| {e['p95']:.0f} "
            f"| {red} | {p['served']}/{p['measured_requests']} | {p['match_wait_s']['mean']:.0f} "
            f"| {100 * p['utilisation']:.0f} | {p['free_per_waiting_median']:.1f} |"
        )
    return rows


def _histogram(sc: dict[str, Any]) -> str:
    names = list(sc["policies"])
    buckets = list(sc["policies"][names[0]]["pickup_eta_s"]["histogram_s"])
    head = "| pickup ETA bucket (s) | " + " | ".join(names) + " |"
    sep = "|---|" + "---:|" * len(names)
    lines = [head, sep]
    for b in buckets:
        cells = []
        for n in names:
            e = sc["policies"][n]["pickup_eta_s"]
            cells.append(f"{100 * e['histogram_s'][b] / e['n']:.1f} %")
        lines.append(f"| {b} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _seed_range(sc: dict[str, Any], name: str) -> str:
    red = [
        100 * (row["greedy_mean_eta_s"] - row[f"{name}_mean_eta_s"]) / row["greedy_mean_eta_s"]
        for row in sc["per_seed"]
    ]
    return f"{min(red):+.1f} … {max(red):+.1f}"


def _verdicts(rep: dict[str, Any]) -> list[str]:
    out = []
    for sc in rep["scenarios"]:
        b = sc["policies"]["batched"]
        o = sc["policies"]["window optimum"]
        ok = b["mean_eta_reduction_vs_greedy_pct"] >= TARGET_PCT
        out.append(
            f"| {sc['scenario']} | {sc['supply_demand_ratio']:g} "
            f"| {round(sum(sc['drivers']) / len(sc['drivers']))} "
            f"| {b['mean_eta_reduction_vs_greedy_pct']:+.1f} | {_seed_range(sc, 'batched')} "
            f"| {b['total_eta_reduction_vs_greedy_pct']:+.1f} "
            f"| {sc['policies']['batched w_bearing=0']['mean_eta_reduction_vs_greedy_pct']:+.1f} "
            f"| {o['mean_eta_reduction_vs_greedy_pct']:+.1f} | {'met' if ok else 'not met'} |"
        )
    return out


def _findings(rep: dict[str, Any]) -> str:
    by = {sc["scenario"]: sc for sc in rep["scenarios"]}
    big = f"{3 * rep['settings']['requests_per_hour']:g}"
    gaps = [
        sc["policies"]["window optimum"]["mean_eta_reduction_vs_greedy_pct"]
        - sc["policies"]["batched w_bearing=0"]["mean_eta_reduction_vs_greedy_pct"]
        for sc in rep["scenarios"]
    ]
    base = [sc for sc in rep["scenarios"] if sc["bursty"] and "/h" not in sc["scenario"]]
    met = [f"{sc['supply_demand_ratio']:g}" for sc in base if _ok(sc)]
    missed = [f"{sc['supply_demand_ratio']:g}" for sc in base if not _ok(sc)]

    def red(name: str, pol: str) -> str:
        return (
            f"{by[name]['policies'][pol]['mean_eta_reduction_vs_greedy_pct']:+.1f} %" if name in by else "n/a"
        )

    return (
        f"Reading: the target is met (pooled mean) only at r in {{{', '.join(met) or 'none'}}}, and there "
        "only just (see the per-seed range), and missed at r in "
        f"{{{', '.join(missed) or 'none'}}} (bursty demand). The gain comes from contention: when the "
        "free drivers barely cover the waiting riders at window close, greedy hands the nearest "
        "driver to the earliest request and leaves far drivers to the rest, which the joint "
        "assignment avoids. At a plausible utilisation of about 70 % (r = 1.5) even the window "
        f"optimum, the bound for any per-window matcher, is only {red('bursty r=1.5', 'window optimum')} "
        f"below greedy, so no cost tuning reaches 15 % there. Evenly spread (Poisson) arrivals at "
        f"r = 1.1 give {red('poisson r=1.1', 'batched')} against {red('bursty r=1.1', 'batched')} with the "
        f"NYC bursts. What sharding into res-6 zones and 30 straight-line candidates cost (window "
        f"optimum minus batched w_bearing=0) is {min(gaps):.1f} to {max(gaps):.1f} points, the most "
        "in the loose and dense scenarios. With three times the demand "
        f"and fleet at the same r (a denser city) batched gives {red(f'bursty r=1.1, {big}/h', 'batched')} "
        f"at r = 1.1 and {red(f'bursty r=1.5, {big}/h', 'batched')} at r = 1.5."
    )


def _ok(sc: dict[str, Any]) -> bool:
    return bool(sc["policies"]["batched"]["mean_eta_reduction_vs_greedy_pct"] >= TARGET_PCT)


def render_markdown(rep: dict[str, Any]) -> str:
    st = rep["settings"]
    scen = rep["scenarios"]
    main = next((s for s in scen if s["scenario"] == "bursty r=1.1"), scen[0])
    loose = next((s for s in scen if s["scenario"] == "bursty r=1.5"), None)
    head = "| scenario | policy | mean s | p50 s | p90 s | p95 s | mean vs greedy % | served | match wait s "
    head += "| utilisation % | free drivers per waiting rider (median) |\n"
    head += "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    rows = "\n".join(r for sc in scen for r in _policy_rows(sc))
    b_rows = "\n".join(r for sc in rep["bearing_sweep"] for r in _policy_rows(sc))
    loose_hist = f"\n\n{loose['scenario']}:\n\n{_histogram(loose)}" if loose else ""
    verdict_rows = "\n".join(_verdicts(rep))
    return f"""# Dispatch matching quality: batched vs greedy nearest-driver, Heidelberg simulation

Generated by `benchmarks/dispatch_quality.py` on {rep["generated_utc"]} UTC; {rep["machine"]};
seeds {rep["seeds"]}, pooled ({rep["wall_s"]:.0f} s wall, {rep["eta_calls"]} road ETA tables).

**Set-up** (details in the script's docstring). Demand {st["requests_per_hour"]:g} requests/h (nominal;
the realised rate varies by seed with the bursts, and the fleet is sized on the realised rate) replayed
from the NYC TLC sample: its {st["nyc_bursts"]} bursts (mean {st["nyc_mean_burst_size"]:.1f} requests
within seconds) at Poisson burst starts; pickup geography = NYC pickup offsets x {st["geo_scale"]}
around Bismarckplatz, snapped to the car network; trip lengths resampled from the NYC
`trip_distance` (÷ {st["detour"]} for the straight-line offset, random direction; mean road trip
{scen[0]["mean_trip_s"] / 60:.1f} min). Drivers start where
demand starts and stay at their last drop-off. Same demand, same initial fleet and the same road
ETAs (`RoutingEngine.table`) for every policy; each policy lives with its own consequences (drivers
busy for pickup + trip). Windows of {st["window_s"]:g} s, abandonment after {st["max_wait_s"]:g} s,
{st["warmup_s"] / 60:g} min warm-up, {st["measure_s"] / 60:g} min measured. **Supply/demand ratio**
r = drivers / (request rate x (180 s + mean trip duration)), i.e. 1/r is the offered utilisation;
the measured utilisation and the median number of free drivers per waiting rider at window close
are in the table.

Policies: **batched** = `match_batch` with the defaults (`MatchParams()`, bearing weight 60 s,
30 candidates, res-6 shards); **batched w_bearing=0** = the same on the ETA alone; **window
optimum** = one unsharded assignment per window on the road ETA (no candidate cap; the best any
per-window matcher can do on these windows); **greedy** = `greedy_match` (riders in request order
take the nearest free driver by road ETA, global).

## Verdict per condition (target: >= {TARGET_PCT:g} % lower pickup ETA than greedy)

{VERDICT_HEAD}
{verdict_rows}

{_findings(rep)}

## Pickup ETA distribution per policy (pooled over seeds)

{head}
{rows}

## Histogram of pickup ETA (share of served riders)

{main["scenario"]}:

{_histogram(main)}{loose_hist}

## Bearing weight: what it costs in pickup ETA

The road ETA from `RoutingEngine.table` does not know the driver's heading, so this simulation
cannot show what the bearing term buys (fewer U-turns); it shows only what it costs in ETA.

{head}
{b_rows}
"""
