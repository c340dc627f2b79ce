"""Gap to BKS at a fixed time limit: hexcity's solver layer vs PyVRP called directly vs OR-Tools.

Same instances, same seconds, same seed. The anchor is PyVRP called directly (``pyvrp.read`` with
the instance family's rounding, ``Model.from_data(...).solve``); hexcity reads the file with its
own reader into its own model and solves through its PyVRP adapter; OR-Tools runs through
hexcity's OR-Tools adapter (parallel cheapest insertion + guided local search). Objectives follow
BKS.csv: X rounded to integers, Solomon/GH truncated to 0.1 (DIMACS), Li & Lim x1000 rounded.

    .venv/bin/python benchmarks/vrp_gap.py                    # 7 instances x 3 solvers x 10 s
    .venv/bin/python benchmarks/vrp_gap.py --seconds 2 --instances X-n101-k25 R101

Writes benchmarks/results/vrp_gap.json and vrp_gap.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "vrp"
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_INSTANCES = ["X-n101-k25", "X-n157-k13", "X-n200-k36", "R101", "RC201", "R1_2_1", "lr101"]
FOLDER = {"cvrp": "cvrp", "vrptw": "vrptw", "pdptw": "pdptw"}
ROUND_FUNC = {"cvrp": "round", "vrptw": "dimacs", "pdptw": "exact"}
SCALE = {"cvrp": 1, "vrptw": 10, "pdptw": 1000}


def read_bks(path: Path) -> dict[str, dict[str, str]]:
    with path.open() as f:
        return {row["instance"]: row for row in csv.DictReader(f)}


def run_pyvrp_direct(path: Path, kind: str, seconds: float, seed: int) -> dict[str, Any]:
    import pyvrp
    from pyvrp.stop import MaxRuntime

    started = time.perf_counter()
    data = pyvrp.read(str(path), round_func=ROUND_FUNC[kind])
    result = pyvrp.Model.from_data(data).solve(
        MaxRuntime(seconds), seed=seed, display=False, collect_stats=False
    )
    elapsed = time.perf_counter() - started
    best = result.best
    return {
        "objective": best.distance() / SCALE[kind],
        "feasible": bool(best.is_feasible()),
        "routes": best.num_routes(),
        "seconds": elapsed,
        "iterations": int(result.num_iterations),
    }


def run_hexcity(path: Path, seconds: float, seed: int, backend: str) -> dict[str, Any]:
    from hexcity.fulfillment.adapters.ortools_solver import OrToolsSolver
    from hexcity.fulfillment.adapters.pyvrp_solver import PyVrpSolver
    from hexcity.fulfillment.adapters.vrplib_reader import read_vrplib
    from hexcity.fulfillment.domain.solving import SolverParams

    started = time.perf_counter()
    problem = read_vrplib(path)
    solver = PyVrpSolver() if backend == "pyvrp" else OrToolsSolver()
    solution = solver.solve(problem, SolverParams(time_limit_s=seconds, seed=seed))
    elapsed = time.perf_counter() - started
    return {
        "objective": solution.cost / problem.objective.scale if solution.routes else None,
        "feasible": solution.feasible,
        "routes": len(solution.routes),
        "seconds": elapsed,
        "iterations": solution.stats.iterations,
        "violations": solution.violations[:5],
    }


def gap_pct(objective: float | None, bks: float) -> float | None:
    return None if objective is None else 100.0 * (objective - bks) / bks


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--instances", nargs="*", default=DEFAULT_INSTANCES)
    parser.add_argument("--out", default="vrp_gap")
    args = parser.parse_args()
    bks = read_bks(DATA / "BKS.csv")
    rows: list[dict[str, Any]] = []
    for name in args.instances:
        ref = bks[name]
        kind = ref["kind"]
        path = DATA / FOLDER[kind] / f"{name}.vrp"
        best_known = float(ref["bks"])
        row: dict[str, Any] = {
            "instance": name,
            "kind": kind,
            "n": int(ref["n_customers"]),
            "bks": best_known,
        }
        row["pyvrp_direct"] = run_pyvrp_direct(path, kind, args.seconds, args.seed)
        row["hexcity"] = run_hexcity(path, args.seconds, args.seed, "pyvrp")
        row["ortools"] = run_hexcity(path, args.seconds, args.seed, "ortools")
        for solver in ("pyvrp_direct", "hexcity", "ortools"):
            row[solver]["gap_pct"] = gap_pct(row[solver]["objective"], best_known)
        rows.append(row)
        print(
            name,
            *(
                f"{s}={row[s]['objective']} ({row[s]['gap_pct']:.2f}%)"
                for s in ("pyvrp_direct", "hexcity", "ortools")
                if row[s]["gap_pct"] is not None
            ),
            flush=True,
        )
    summary = _summary(rows)
    meta = {
        "seconds": args.seconds,
        "seed": args.seed,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": __import__("os").cpu_count(),
        "note": "wall-clock time limits on a 2-core VM shared with other jobs",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(
        json.dumps({"meta": meta, "rows": rows, "summary": summary}, indent=2)
    )
    (RESULTS / f"{args.out}.md").write_text(_markdown(meta, rows, summary))
    print(json.dumps(summary, indent=2))


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def mean_gap(solver: str) -> float | None:
        gaps = [r[solver]["gap_pct"] for r in rows if r[solver]["gap_pct"] is not None]
        return statistics.fmean(gaps) if gaps else None

    hex_gap, direct_gap = mean_gap("hexcity"), mean_gap("pyvrp_direct")
    return {
        "mean_gap_pct": {s: mean_gap(s) for s in ("pyvrp_direct", "hexcity", "ortools")},
        "median_gap_pct": {
            s: statistics.median(
                [r[s]["gap_pct"] for r in rows if r[s]["gap_pct"] is not None] or [float("nan")]
            )
            for s in ("pyvrp_direct", "hexcity", "ortools")
        },
        "hexcity_minus_direct_pp": None if hex_gap is None or direct_gap is None else hex_gap - direct_gap,
        "target_pp": 0.1,
        "all_feasible": {
            s: all(r[s]["feasible"] for r in rows) for s in ("pyvrp_direct", "hexcity", "ortools")
        },
    }


def _markdown(meta: dict[str, Any], rows: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    def cell(r: dict[str, Any], solver: str) -> str:
        res = r[solver]
        if res["gap_pct"] is None:
            return "no solution"
        flag = "" if res["feasible"] else " (infeasible)"
        return f"{res['objective']:g} ({res['gap_pct']:.2f} %, {res['routes']} routes){flag}"

    lines = [
        f"# VRP gap to BKS at {meta['seconds']:g} s per instance (seed {meta['seed']})",
        "",
        "Anchor: PyVRP called directly on the same file, same seconds, same seed. Objective in the",
        "instance's convention (X: rounded integers; Solomon/GH: DIMACS 0.1; Li & Lim: x1000).",
        f"Machine: {meta['machine']}, {meta['cpu_count']} cores, {meta['note']}.",
        "",
        "| instance | kind | n | BKS | PyVRP direct | hexcity (PyVRP layer) | OR-Tools (GLS) |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['instance']} | {r['kind']} | {r['n']} | {r['bks']:g} | {cell(r, 'pyvrp_direct')} | "
        f"{cell(r, 'hexcity')} | {cell(r, 'ortools')} |"
        for r in rows
    ]
    mean = summary["mean_gap_pct"]
    lines += [
        "",
        "| solver | mean gap % | median gap % | all feasible |",
        "|---|---|---|---|",
    ]
    for s in ("pyvrp_direct", "hexcity", "ortools"):
        m = mean[s]
        lines.append(
            f"| {s} | {'—' if m is None else f'{m:.3f}'} | {summary['median_gap_pct'][s]:.3f} | "
            f"{summary['all_feasible'][s]} |"
        )
    diff = summary["hexcity_minus_direct_pp"]
    lines += [
        "",
        f"hexcity − PyVRP direct: **{'—' if diff is None else f'{diff:+.3f}'} pp** mean gap "
        "(target ≤ +0.1 pp).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
