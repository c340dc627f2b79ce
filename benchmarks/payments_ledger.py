"""Ledger throughput on PostgreSQL: transfers/s single and batched, with the invariant checker on.

payments.md §4 / issue 7: target ≥ 2,500 transfers/s batched on this 2-core machine. Setup: 1,000
wallets (no overdraft) funded with 10^9 minor units each, in a private schema ``payments_bench``
of the local ``test`` database. Each mode runs ``--threads`` client threads for ``--duration``
seconds, moving random amounts (1..100) between random wallet pairs with unique transfer ids
through :meth:`SqlLedger.transfer_batch` (row locks in id order, full re-validation):

* ``single``: one transfer per call (one transaction per transfer);
* ``batch100``: 100 transfers per call (one transaction, one lock statement, bulk writes);
* ``batch500``: 500 transfers per call (how far batching carries).

All the while a checker thread reads ``sum(balance)`` and ``min(balance)`` of the wallets every
5 ms; every read must equal the constant total and be ≥ 0 (violations are counted and reported).
The anchor, measured in the same run with the same threads: the bare transaction floor — a
transaction that locks one account row (``SELECT ... FOR UPDATE``), rewrites it and commits. Each
mode is repeated ``--repeats`` times; the median is reported, with its ratio to the anchor.
Writes ``benchmarks/results/payments_ledger.{json,md}``.

    .venv/bin/python benchmarks/payments_ledger.py             # 3 repeats x 5 s per mode (~1.5 min)
    .venv/bin/python benchmarks/payments_ledger.py --quick     # 1 repeat x 2 s, no files
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select, text, update

from hexcity.infra.sql import make_engine
from hexcity.payments.adapters.sql_ledger import SqlLedger
from hexcity.payments.adapters.tables import accounts, metadata
from hexcity.payments.domain.ledger import Account, AccountKind, Overdraft, TransferRequest

REPO = Path(__file__).resolve().parents[1]
RESULT_JSON = REPO / "benchmarks" / "results" / "payments_ledger.json"
RESULT_MD = REPO / "benchmarks" / "results" / "payments_ledger.md"
URL = os.environ.get("HEXCITY_BENCH_DATABASE_URL", "postgresql+psycopg://postgres@localhost:5432/test")
SCHEMA = "payments_bench"
WALLETS = 1_000
START_MINOR = 10**9
TOTAL_MINOR = WALLETS * START_MINOR
TARGET_BATCHED_PER_S = 2_500
CHECK_INTERVAL_S = 0.005  # the checker reads ~150 times/s instead of spinning a core of the 2


class Checker(threading.Thread):
    """Reads the books in a loop: the wallets' total is constant and none is below zero."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(daemon=True)
        self.engine, self.stop = engine, threading.Event()
        self.reads = 0
        self.violations = 0

    def run(self) -> None:
        query = select(func.sum(accounts.c.balance_minor), func.min(accounts.c.balance_minor)).where(
            accounts.c.kind == AccountKind.WALLET.value
        )
        while not self.stop.is_set():
            with self.engine.connect() as conn:
                total, lowest = conn.execute(query).one()
            self.reads += 1
            if int(total) != TOTAL_MINOR or int(lowest) < 0:
                self.violations += 1
            self.stop.wait(CHECK_INTERVAL_S)


def setup(engine: Engine) -> SqlLedger:
    with engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
    bench = engine.execution_options(schema_translate_map={None: SCHEMA})
    metadata.drop_all(bench, checkfirst=True)
    ledger = SqlLedger(bench, seed=7)
    ledger.create_schema()
    ledger.create_accounts(
        [Account("ext", AccountKind.EXTERNAL_SETTLEMENT, "EUR", Overdraft.UNBOUNDED)]
        + [Account(f"w{i:04d}", AccountKind.WALLET, "EUR") for i in range(WALLETS)]
    )
    funding = [TransferRequest(f"fund-{i}", "ext", f"w{i:04d}", START_MINOR, "EUR") for i in range(WALLETS)]
    if not all(r.ok for r in ledger.transfer_batch(funding)):
        raise RuntimeError("funding failed")
    return ledger


def timed_threads(
    threads: int, duration_s: float, work: Callable[[int, random.Random], int]
) -> dict[str, Any]:
    """Run ``work(thread, rng)`` in a loop on ``threads`` threads; returns ops/s and call latency."""
    deadline = time.perf_counter() + duration_s
    counts = [0] * threads
    latencies: list[list[float]] = [[] for _ in range(threads)]

    def loop(index: int) -> None:
        rng = random.Random(index * 7919 + int(time.time()))
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            counts[index] += work(index, rng)
            latencies[index].append(time.perf_counter() - start)

    started = time.perf_counter()
    pool = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - started
    flat = sorted(x for per in latencies for x in per)
    return {
        "ops": sum(counts),
        "ops_per_s": sum(counts) / elapsed,
        "calls": len(flat),
        "call_p50_ms": 1000 * flat[len(flat) // 2] if flat else None,
        "call_p99_ms": 1000 * flat[min(len(flat) - 1, int(len(flat) * 0.99))] if flat else None,
    }


def transfer_work(ledger: SqlLedger, batch: int, tag: str) -> Callable[[int, random.Random], int]:
    sequence = [0]
    lock = threading.Lock()

    def work(thread: int, rng: random.Random) -> int:
        with lock:
            sequence[0] += 1
            call = sequence[0]
        requests = []
        for leg in range(batch):
            debit, credit = rng.sample(range(WALLETS), 2)
            requests.append(
                TransferRequest(
                    f"{tag}-{call}-{leg}", f"w{debit:04d}", f"w{credit:04d}", rng.randint(1, 100), "EUR"
                )
            )
        return sum(1 for r in ledger.transfer_batch(requests) if r.ok and not r.replayed)

    return work


def anchor_work(engine: Engine) -> Callable[[int, random.Random], int]:
    def work(thread: int, rng: random.Random) -> int:
        account_id = f"w{rng.randrange(WALLETS):04d}"
        with engine.begin() as conn:
            conn.execute(
                select(accounts.c.balance_minor).where(accounts.c.id == account_id).with_for_update()
            )
            conn.execute(
                update(accounts).where(accounts.c.id == account_id).values(entry_seq=accounts.c.entry_seq)
            )
        return 1

    return work


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.repeats = 2.0, 1

    load_before = os.getloadavg()[0]
    engine = make_engine(URL)
    ledger = setup(engine)
    checker = Checker(ledger.engine)
    checker.start()
    modes: dict[str, Callable[[int, random.Random], int]] = {
        "anchor_bare_tx": anchor_work(ledger.engine),
        "single": transfer_work(ledger, 1, "s"),
        "batch100": transfer_work(ledger, 100, "b"),
        "batch500": transfer_work(ledger, 500, "c"),
    }
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in modes}
    for repeat in range(args.repeats):
        for name, work in modes.items():
            result = timed_threads(args.threads, args.duration, work)
            runs[name].append(result)
            rate, p50 = result["ops_per_s"], result["call_p50_ms"]
            print(f"repeat {repeat} {name:15s} {rate:9.0f} ops/s  p50 {p50:.1f} ms")
    checker.stop.set()
    checker.join(timeout=10)
    total, count = ledger.total_balance()

    medians = {name: statistics.median(r["ops_per_s"] for r in rs) for name, rs in runs.items()}
    anchor = medians["anchor_bare_tx"]
    summary = {
        "benchmark": "payments_ledger",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "load_avg_1m": {"start": round(load_before, 2), "end": round(os.getloadavg()[0], 2)},
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "database": URL.split("@")[-1],
        },
        "params": {
            "wallets": WALLETS,
            "threads": args.threads,
            "duration_s": args.duration,
            "repeats": args.repeats,
        },
        "median_ops_per_s": {k: round(v, 1) for k, v in medians.items()},
        "ratio_to_anchor": {k: round(v / anchor, 3) for k, v in medians.items()},
        "target_batched_per_s": TARGET_BATCHED_PER_S,
        "target_met": medians["batch100"] >= TARGET_BATCHED_PER_S,
        "checker": {"reads": checker.reads, "violations": checker.violations},
        "books_balance": total == 0,
        "accounts": count,
        "runs": runs,
    }
    print(
        json.dumps({k: summary[k] for k in ("median_ops_per_s", "ratio_to_anchor", "checker", "target_met")})
    )
    if checker.violations or total != 0:
        raise SystemExit("INVARIANT VIOLATED")
    if args.quick:
        return
    RESULT_JSON.write_text(json.dumps(summary, indent=2) + "\n")
    RESULT_MD.write_text(render(summary))


def render(s: dict[str, Any]) -> str:
    m, r, p, runs = s["median_ops_per_s"], s["ratio_to_anchor"], s["params"], s["runs"]
    machine, checker = s["machine"], s["checker"]
    verdict = "met" if s["target_met"] else "NOT met"
    lines = [
        "# Payments ledger throughput (PostgreSQL)",
        "",
        f"{s['date']}, {machine['cpus']} CPUs (shared with other work), Python {machine['python']}, "
        f"{machine['database']}, load average {s['load_avg_1m']['start']} → {s['load_avg_1m']['end']} "
        f"(other agents' work). {p['wallets']} wallets, {p['threads']} client threads, "
        f"{p['repeats']} × {p['duration_s']:.0f} s per mode; medians. "
        "Produced by `benchmarks/payments_ledger.py`.",
        "",
        "| mode | transfers/s (median) | min – max of runs | ratio to anchor | call p50 ms | call p99 ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in ("anchor_bare_tx", "single", "batch100", "batch500"):
        p50 = statistics.median(x["call_p50_ms"] for x in runs[name])
        p99 = statistics.median(x["call_p99_ms"] for x in runs[name])
        rates = [x["ops_per_s"] for x in runs[name]]
        spread = f"{min(rates):,.0f} – {max(rates):,.0f}"
        lines.append(f"| {name} | {m[name]:,.0f} | {spread} | {r[name]:.2f} | {p50:.1f} | {p99:.1f} |")
    lines += [
        "",
        "Anchor: one-row `SELECT ... FOR UPDATE` + `UPDATE` + `COMMIT` per transaction (its rows are "
        f"bare transactions, not transfers). Target ≥ {s['target_batched_per_s']:,} transfers/s "
        f"batched: **{verdict}**.",
        f"Invariant checker: {checker['reads']:,} reads during the run, {checker['violations']} "
        f"violations; books balance at the end: {s['books_balance']}.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
