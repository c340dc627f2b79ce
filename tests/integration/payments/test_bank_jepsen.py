"""Jepsen-style bank test on real PostgreSQL: concurrent transfers while workers are killed.

Worker processes move money between wallets; a fault hook ``os._exit``s a worker at random points
inside its transaction (after the locks, after the writes, just before COMMIT) and right after
COMMIT before the client logged the outcome (an *unknown* outcome); on top of that a thread
terminates a worker's database connection (``pg_terminate_backend``) mid-transaction every 50 ms.
The parent restarts workers until at least 100 crashes happened, while a checker reads the books
continuously. Every read:
the wallets sum to the constant total, none below zero. At the end: each transfer the client saw
succeed is stored once with its fields, each refused one is absent, each unknown one is retried
with the same id (idempotent: applied at most once), and every account's entries replay to its
balance.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import random
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.exc import DBAPIError
from tests.integration.payments.conftest import POSTGRES_URL

from hexcity.infra.sql import make_engine
from hexcity.payments.adapters.sql_ledger import SqlLedger
from hexcity.payments.adapters.tables import accounts, entries, payments, transfers
from hexcity.payments.domain.commands import Pay
from hexcity.payments.domain.ledger import Account, AccountKind, Overdraft, TransferRequest
from hexcity.payments.domain.retry import RetryPolicy
from hexcity.payments.service import PaymentService
from hexcity.payments.settings import PaymentsSettings

pytestmark = pytest.mark.integration

WALLETS = 20
START_BALANCE = 10_000
TOTAL = WALLETS * START_BALANCE
WORKERS = 4
CRASHES_WANTED = 100
CRASH_PROBABILITY = 0.03  # per fault point (4 points per transfer call)
MAX_CALLS_PER_WORKER = 400
DEADLINE_S = 120.0
CRASH_EXIT = 17
WORKER_APP = "hexcity-jepsen-worker"  # application_name of the workers' connections (to abort them)
ABORT_INTERVAL_S = 0.05


def _worker(worker_id: str, log_path: str, seed: int) -> None:
    rng = random.Random(seed)

    def fault(point: str) -> None:
        if rng.random() < CRASH_PROBABILITY:
            os._exit(CRASH_EXIT)

    engine = create_engine(
        POSTGRES_URL,
        pool_pre_ping=True,
        connect_args={"application_name": WORKER_APP, "options": "-c lock_timeout=5000"},
    )
    ledger = SqlLedger(
        engine,
        fault_hook=fault,
        seed=seed,
        retry=RetryPolicy(max_attempts=10, base_delay_s=0.005, max_delay_s=0.1),
    )
    with open(log_path, "a", buffering=1) as log:
        for call in range(MAX_CALLS_PER_WORKER):
            size = rng.choice((1, 1, 1, 3))
            batch = []
            for leg in range(size):
                debit, credit = rng.sample(range(WALLETS), 2)
                batch.append(
                    TransferRequest(
                        f"{worker_id}-{call}-{leg}",
                        f"w{debit:02d}",
                        f"w{credit:02d}",
                        rng.randint(1, 3_000),
                        "EUR",
                        linked=leg < size - 1 and rng.random() < 0.5,
                    )
                )
            batch[-1] = dataclasses.replace(batch[-1], linked=False)
            for t in batch:
                log.write(f"intent {_line(t)}\n")
            try:
                results = ledger.transfer_batch(batch)
            except DBAPIError:  # the connection was aborted: outcome unknown, the client moves on
                continue
            fault("after_commit")  # crash here: committed, but the client never learns it
            for result in results:
                code = result.error.code if result.error else "-"
                log.write(f"{'ok' if result.ok else 'err'} {result.id} {code}\n")
    os._exit(0)


def _line(t: TransferRequest) -> str:
    return f"{t.id} {t.debit_account_id} {t.credit_account_id} {t.amount_minor} {int(t.linked)}"


class ConnectionAborter(threading.Thread):
    """Terminates a worker's database connection in the middle of a transaction, every 50 ms."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(daemon=True)
        self.engine, self.stop = engine, threading.Event()
        self.aborted = 0

    def run(self) -> None:
        query = text(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = :app AND state IN ('active', 'idle in transaction') LIMIT 1) AS k"
        )
        while not self.stop.wait(ABORT_INTERVAL_S):
            with self.engine.connect() as conn:
                self.aborted += int(conn.execute(query, {"app": WORKER_APP}).scalar_one())


class Checker(threading.Thread):
    """Reads the books in a loop: total constant, no wallet below zero, on every read."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(daemon=True)
        self.engine, self.stop = engine, threading.Event()
        self.reads = 0
        self.violations: list[tuple[int, int]] = []

    def run(self) -> None:
        query = select(func.sum(accounts.c.balance_minor), func.min(accounts.c.balance_minor)).where(
            accounts.c.kind == AccountKind.WALLET.value
        )
        while not self.stop.is_set():
            with self.engine.connect() as conn:
                total, lowest = conn.execute(query).one()
            self.reads += 1
            if int(total) != TOTAL or int(lowest) < 0:
                self.violations.append((int(total), int(lowest)))
            time.sleep(0.002)


def _setup(engine: Engine) -> SqlLedger:
    ledger = SqlLedger(engine)
    ledger.create_schema()
    ledger.create_accounts(
        [Account("ext", AccountKind.EXTERNAL_SETTLEMENT, "EUR", Overdraft.UNBOUNDED)]
        + [Account(f"w{i:02d}", AccountKind.WALLET, "EUR") for i in range(WALLETS)]
    )
    results = ledger.transfer_batch(
        [TransferRequest(f"fund-{i}", "ext", f"w{i:02d}", START_BALANCE, "EUR") for i in range(WALLETS)]
    )
    assert all(r.ok for r in results)
    return ledger


def _run_workers(log_dir: Path) -> tuple[int, int]:
    """Keep WORKERS processes busy until CRASHES_WANTED crashes; returns (crashes, clean exits)."""
    context = multiprocessing.get_context("fork")
    crashes = clean = generation = 0
    running: dict[int, multiprocessing.context.ForkProcess] = {}
    deadline = time.monotonic() + DEADLINE_S
    while crashes < CRASHES_WANTED and time.monotonic() < deadline:
        while len(running) < WORKERS:
            generation += 1
            name = f"g{generation}"
            process = context.Process(target=_worker, args=(name, str(log_dir / f"{name}.log"), generation))
            process.start()
            running[generation] = process
        time.sleep(0.01)
        for key, process in list(running.items()):
            if process.exitcode is None:
                continue
            process.join()
            del running[key]
            if process.exitcode == CRASH_EXIT:
                crashes += 1
            elif process.exitcode == 0:
                clean += 1
            else:
                raise AssertionError(f"worker {key} failed with exit code {process.exitcode}")
    for process in running.values():
        process.join(timeout=60)
        if process.exitcode == CRASH_EXIT:
            crashes += 1
    return crashes, clean


def _read_logs(log_dir: Path) -> tuple[dict[str, TransferRequest], dict[str, str]]:
    intents: dict[str, TransferRequest] = {}
    outcomes: dict[str, str] = {}
    for path in sorted(log_dir.glob("*.log")):
        for line in path.read_text().splitlines():
            parts = line.split()
            if parts[0] == "intent" and len(parts) == 6:
                tid, debit, credit, amount, linked = parts[1:]
                intents[tid] = TransferRequest(tid, debit, credit, int(amount), "EUR", linked=linked == "1")
            elif parts[0] in {"ok", "err"} and len(parts) == 3:
                outcomes[parts[1]] = parts[0] if parts[0] == "ok" else parts[2]
    return intents, outcomes


def test_bank_invariant_under_worker_crashes(pg_engine: Engine, tmp_path: Path) -> None:
    ledger = _setup(pg_engine)
    checker = Checker(make_engine(POSTGRES_URL))
    aborter = ConnectionAborter(make_engine(POSTGRES_URL))
    checker.start()
    aborter.start()
    try:
        crashes, _clean_exits = _run_workers(tmp_path)
    finally:
        for thread in (aborter, checker):
            thread.stop.set()
            thread.join(timeout=10)
    assert crashes >= CRASHES_WANTED
    assert aborter.aborted >= 10  # connections killed inside transactions, on top of the crashes
    assert checker.reads > 100
    assert checker.violations == []

    intents, outcomes = _read_logs(tmp_path)
    with pg_engine.connect() as conn:
        stored = {r.id: r for r in conn.execute(select(transfers).where(transfers.c.id.not_like("fund-%")))}
        legs: dict[str, int] = dict(
            conn.execute(select(entries.c.transfer_id, func.count()).group_by(entries.c.transfer_id)).all()
        )
    assert set(stored) <= set(intents)  # nothing the client never asked for
    for tid, outcome in outcomes.items():
        if outcome == "ok":
            row = stored[tid]
            want = intents[tid]
            got = (row.debit_account_id, row.credit_account_id, int(row.amount_minor))
            assert got == (want.debit_account_id, want.credit_account_id, want.amount_minor)
        else:
            assert tid not in stored, (tid, outcome)
    assert all(count == 2 for count in legs.values())
    assert set(legs) == set(stored) | {f"fund-{i}" for i in range(WALLETS)}

    # the client retries every transfer whose outcome it never learned, with the same id
    unknown = [intents[t] for t in intents if t not in outcomes]
    applied_before = {t.id for t in unknown if t.id in stored}
    retried = [dataclasses.replace(t, linked=False) for t in unknown]
    results = ledger.transfer_batch(retried) if retried else []
    for result in results:
        if result.id in applied_before:
            assert result.replayed, result  # never applied twice
    assert ledger.total_balance() == (0, WALLETS + 1)
    _check_entry_chains(pg_engine)
    counts = f"crashes={crashes} aborts={aborter.aborted} reads={checker.reads}"
    print(f"{counts} transfers={len(stored)} unknown={len(unknown)}")


def _check_entry_chains(engine: Engine) -> None:
    """Each account's entries, in order, step from 0 to its balance by exactly their amounts."""
    with engine.connect() as conn:
        balances = {
            r.id: int(r.balance_minor) for r in conn.execute(select(accounts.c.id, accounts.c.balance_minor))
        }
        rows = conn.execute(select(entries).order_by(entries.c.account_id, entries.c.account_seq)).all()
    running: dict[str, tuple[int, int]] = {}
    for row in rows:
        balance, seq = running.get(row.account_id, (0, 0))
        delta = -int(row.amount_minor) if row.direction == "DEBIT" else int(row.amount_minor)
        assert int(row.account_seq) == seq + 1
        assert int(row.balance_after_minor) == balance + delta
        running[row.account_id] = (balance + delta, seq + 1)
    assert {k: v[0] for k, v in running.items()} == {k: v for k, v in balances.items() if k in running}


KEYS = 150
API_CRASHES_WANTED = 30


def _key_command(index: int) -> tuple[str, Pay]:
    """Key ``index`` always carries the same payment (as a client retrying it would)."""
    payer, payee = f"w{index % WALLETS:02d}", f"w{(index * 7 + 3) % WALLETS:02d}"
    if payer == payee:
        payee = f"w{(index + 1) % WALLETS:02d}"
    return f"key-{index:04d}", Pay(payer, payee, 100 + index, "EUR", reference=f"order-{index}")


def _api_worker(seed: int) -> None:
    rng = random.Random(seed)

    def fault(point: str) -> None:
        if rng.random() < CRASH_PROBABILITY:
            os._exit(CRASH_EXIT)

    ledger = SqlLedger(
        make_engine(POSTGRES_URL), fault_hook=fault, seed=seed, retry=RetryPolicy(10, 0.005, 0.1)
    )
    service = PaymentService(ledger, PaymentsSettings(events_topic="payments.events.it-jepsen"))
    for _ in range(60):
        key, command = _key_command(rng.randrange(KEYS))  # keys collide across workers: concurrent retries
        service.execute(command, idempotency_key=key, scope="client")
    os._exit(0)


def test_idempotent_payments_under_crashes_and_concurrent_retries(pg_engine: Engine) -> None:
    ledger = _setup(pg_engine)
    service = PaymentService(ledger, PaymentsSettings(events_topic="payments.events.it-jepsen"))
    context = multiprocessing.get_context("fork")
    crashes = seed = 0
    running: list[multiprocessing.context.ForkProcess] = []
    deadline = time.monotonic() + DEADLINE_S
    while crashes < API_CRASHES_WANTED and time.monotonic() < deadline:
        while len(running) < WORKERS:
            seed += 1
            process = context.Process(target=_api_worker, args=(seed,))
            process.start()
            running.append(process)
        time.sleep(0.01)
        for process in [p for p in running if p.exitcode is not None]:
            running.remove(process)
            if process.exitcode not in (0, CRASH_EXIT):
                raise AssertionError(f"worker failed with exit code {process.exitcode}")
            crashes += process.exitcode == CRASH_EXIT
    for process in running:
        process.join(timeout=60)
    assert crashes >= API_CRASHES_WANTED

    # every client retries every key once more: all are replays or first executions, never doubles
    responses = {}
    for index in range(KEYS):
        key, command = _key_command(index)
        responses[index] = service.execute(command, idempotency_key=key, scope="client")
    with pg_engine.connect() as conn:
        rows = conn.execute(select(payments).where(payments.c.kind == "payment")).all()
    by_reference = Counter(row.reference for row in rows)
    assert max(by_reference.values()) == 1  # 0 double charges
    paid = {row.id: row for row in rows}
    for index, response in responses.items():
        if response.status_code == 201:
            row = paid[response.body["id"]]
            assert (row.reference, int(row.amount_minor)) == (f"order-{index}", 100 + index)
        else:
            assert response.body["code"] == "InsufficientFunds" and f"order-{index}" not in by_reference
    assert len(paid) == sum(1 for r in responses.values() if r.status_code == 201)
    balances = ledger.balances()
    spent = Counter[str]()
    for row in rows:
        spent[row.payer_account_id] -= int(row.amount_minor)
        spent[row.payee_account_id] += int(row.amount_minor)
    assert {a: b - START_BALANCE for a, b in balances.items() if a != "ext"} == {
        f"w{i:02d}": spent[f"w{i:02d}"] for i in range(WALLETS)
    }
    assert ledger.total_balance() == (0, WALLETS + 1)
