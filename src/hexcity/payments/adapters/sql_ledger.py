"""The ledger on SQLAlchemy Core: SQLite (embedded default), PostgreSQL and MySQL/MariaDB.

Concurrency: every transaction locks the touched account rows with ``SELECT ... FOR UPDATE`` in
ascending id order (one statement for the whole batch), then re-reads the pending transfers it
closes (locked too), re-checks every rule in :class:`~hexcity.payments.domain.ledger.Posting` and
writes. SQLite has one writer: the store serializes its transactions and starts each with a write
so the database lock is held from the first read. Deadlocks, serialization failures, lock
timeouts and unique-key races are retried by :meth:`SqlLedger.run` with bounded full-jitter
backoff; each attempt starts from scratch (re-read, re-validate), never a blind replay.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from sqlalchemy import Engine, Row, bindparam, case, func, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from hexcity.infra.logging import get_logger
from hexcity.payments.adapters.bulk_pg import PostgresBulkWriter
from hexcity.payments.adapters.rows import (
    account_of,
    account_row,
    entry_of,
    entry_row,
    state_of,
    transfer_of,
    transfer_row,
)
from hexcity.payments.adapters.tables import accounts, create_schema, entries, transfers
from hexcity.payments.domain.batch import TransferResult, post_chains, validate_shapes
from hexcity.payments.domain.ledger import (
    Account,
    AccountState,
    Entry,
    Transfer,
    TransferRequest,
    TransferStatus,
)
from hexcity.payments.domain.posting import Posting
from hexcity.payments.domain.retry import RetryPolicy
from hexcity.payments.errors import (
    AccountExists,
    AccountNotFound,
    InvalidPaymentInput,
    LedgerBusy,
)

log = get_logger(__name__)
T = TypeVar("T")

MAX_BATCH_SIZE = 8190  # TigerBeetle's per-request limit
_IN_CHUNK = 500  # ids per IN (...) list
_UPDATE_ACCOUNT = (
    update(accounts)
    .where(accounts.c.id == bindparam("b_id"))
    .values(
        balance_minor=bindparam("b_balance"),
        pending_debits_minor=bindparam("b_pending_debits"),
        pending_credits_minor=bindparam("b_pending_credits"),
        entry_seq=bindparam("b_seq"),
    )
)
_PG_RETRY_STATES = {"40001", "40P01", "55P03"}  # serialization failure, deadlock, lock timeout
_MYSQL_RETRY_CODES = {1213, 1205}  # deadlock, lock wait timeout
FaultHook = Callable[[str], None]


def is_retryable(exc: BaseException) -> bool:
    """Deadlock, serialization failure, lock timeout, busy SQLite, or a unique-key race."""
    if isinstance(exc, IntegrityError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    if getattr(orig, "sqlstate", None) in _PG_RETRY_STATES:
        return True
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int) and args[0] in _MYSQL_RETRY_CODES:
        return True
    return "database is locked" in str(orig)


class SqlLedger:
    """Accounts and transfers in SQL. Thread-safe; use one instance per engine."""

    def __init__(
        self,
        engine: Engine,
        *,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
        fault_hook: FaultHook | None = None,
        max_batch_size: int = MAX_BATCH_SIZE,
    ) -> None:
        if not 1 <= max_batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"max_batch_size must be within 1..{MAX_BATCH_SIZE}")
        self.engine = engine
        self.retry = retry or RetryPolicy()
        self.clock, self.sleep = clock, sleep
        self.fault_hook = fault_hook
        self.max_batch_size = max_batch_size
        self._rng = random.Random(seed)
        self._sqlite = engine.dialect.name == "sqlite"
        self._sqlite_lock = threading.Lock()
        self._bulk = PostgresBulkWriter() if engine.dialect.name == "postgresql" else None
        self.retries_total = 0

    def create_schema(self) -> None:
        """Create the payments tables if missing."""
        create_schema(self.engine)

    # -- transactions ------------------------------------------------------------------------

    def run(self, work: Callable[[Session], T]) -> T:
        """Run ``work(session)`` in one transaction; retry retryable failures, then :class:`LedgerBusy`.

        ``work`` must read everything it decides on inside the session (it is re-run from scratch
        on every attempt). Errors raised by ``work`` roll the transaction back and propagate.
        """
        attempt = 0
        while True:
            attempt += 1
            try:
                with self._transaction() as session:
                    result = work(session)
                    self._fault("before_commit")
                return result
            except (DBAPIError, IntegrityError) as exc:
                if not is_retryable(exc):
                    raise
                if attempt >= self.retry.max_attempts:
                    log.warning("ledger.retries_exhausted", attempts=attempt, error=repr(exc.orig))
                    raise LedgerBusy(f"ledger busy after {attempt} attempts; nothing was applied") from exc
                self.retries_total += 1
                self.sleep(self.retry.delay_s(attempt, self._rng))

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Session]:
        guard = self._sqlite_lock if self._sqlite else contextlib.nullcontext()
        with guard, Session(self.engine) as session, session.begin():
            if self._sqlite:  # take SQLite's write lock before the first read
                session.execute(update(accounts).where(text("1 = 0")).values(entry_seq=accounts.c.entry_seq))
            yield session

    def _fault(self, point: str) -> None:
        if self.fault_hook is not None:
            self.fault_hook(point)

    # -- accounts ----------------------------------------------------------------------------

    def create_accounts(self, new_accounts: Sequence[Account]) -> list[Account]:
        """Create accounts; an id that exists with the same fields is fine, with other fields
        raises :class:`AccountExists`. All or nothing."""
        for account in new_accounts:
            account.validate()
        if len({a.id for a in new_accounts}) != len(new_accounts):
            raise InvalidPaymentInput("duplicate account ids in one call")

        def work(session: Session) -> list[Account]:
            existing = {
                row.id: account_of(row)
                for row in self._select_accounts(session, [a.id for a in new_accounts])
            }
            rows = []
            for account in new_accounts:
                found = existing.get(account.id)
                if found is not None:
                    if found != account:
                        raise AccountExists(f"account {account.id} exists with different fields")
                    continue
                rows.append(account_row(account, self.clock()))
            if rows:
                session.execute(accounts.insert(), rows)
            return list(new_accounts)

        return self.run(work)

    def account(self, account_id: str) -> AccountState:
        """Current balances of one account; :class:`AccountNotFound` if missing."""
        with self.engine.connect() as conn:
            row = conn.execute(select(accounts).where(accounts.c.id == account_id)).first()
        if row is None:
            raise AccountNotFound(f"account {account_id!r} does not exist")
        return state_of(row)

    def read_account(self, session: Session, account_id: str) -> AccountState:
        """An account as seen inside the caller's transaction."""
        row = session.execute(select(accounts).where(accounts.c.id == account_id)).first()
        if row is None:
            raise AccountNotFound(f"account {account_id!r} does not exist")
        return state_of(row)

    def balances(self) -> dict[str, int]:
        """Posted balance of every account (one consistent read)."""
        with self.engine.connect() as conn:
            return {
                r.id: int(r.balance_minor)
                for r in conn.execute(select(accounts.c.id, accounts.c.balance_minor))
            }

    def trial_balance(self) -> dict[str, Any]:
        """The books in one consistent read: per currency the accounts, the sum of balances and the
        posted debits and credits, plus every account whose balance is not its credits minus its
        debits. ``balanced`` is true when every currency sums to 0 with debits equal to credits and
        no account disagrees with its entries."""
        signed = case(
            (entries.c.direction == "CREDIT", entries.c.amount_minor), else_=-entries.c.amount_minor
        )
        per_account = (
            select(entries.c.account_id, func.sum(signed).label("net"))
            .group_by(entries.c.account_id)
            .subquery()
        )
        with self.engine.connect() as conn, conn.begin():
            if self.engine.dialect.name == "postgresql":
                conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            books = conn.execute(
                select(accounts.c.currency, func.count(), func.sum(accounts.c.balance_minor)).group_by(
                    accounts.c.currency
                )
            ).all()
            legs = conn.execute(
                select(entries.c.currency, entries.c.direction, func.sum(entries.c.amount_minor)).group_by(
                    entries.c.currency, entries.c.direction
                )
            ).all()
            disagree = conn.execute(
                select(accounts.c.id, accounts.c.balance_minor, per_account.c.net)
                .select_from(accounts.outerjoin(per_account, per_account.c.account_id == accounts.c.id))
                .where(accounts.c.balance_minor != func.coalesce(per_account.c.net, 0))
                .limit(100)
            ).all()
        currencies: dict[str, dict[str, int]] = {}
        for currency, count, total in books:
            currencies[str(currency)] = {
                "accounts": int(count),
                "sum_minor": int(total or 0),
                "debits_minor": 0,
                "credits_minor": 0,
            }
        for currency, direction, total in legs:
            row = currencies.setdefault(
                str(currency), {"accounts": 0, "sum_minor": 0, "debits_minor": 0, "credits_minor": 0}
            )
            row["credits_minor" if direction == "CREDIT" else "debits_minor"] += int(total or 0)
        mismatched = [
            {"account_id": r.id, "balance_minor": int(r.balance_minor), "entries_net_minor": int(r.net or 0)}
            for r in disagree
        ]
        balanced = not mismatched and all(
            c["sum_minor"] == 0 and c["debits_minor"] == c["credits_minor"] for c in currencies.values()
        )
        return {"balanced": balanced, "currencies": currencies, "mismatched_accounts": mismatched}

    def balance_at(self, account_id: str, at_s: float) -> int:
        """Posted balance of ``account_id`` as of epoch second ``at_s`` (from the entries)."""
        self.account(account_id)
        query = (
            select(entries.c.balance_after_minor)
            .where(entries.c.account_id == account_id, entries.c.created_at_s <= at_s)
            .order_by(entries.c.account_seq.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            value = conn.execute(query).scalar()
        return int(value or 0)

    def entries(self, account_id: str, *, after_seq: int = 0, limit: int = 100) -> list[Entry]:
        """Entries of one account in order, ``limit`` (1..1000) after sequence ``after_seq``."""
        if not 1 <= limit <= 1000:
            raise InvalidPaymentInput("limit must be within 1..1000")
        query = (
            select(entries)
            .where(entries.c.account_id == account_id, entries.c.account_seq > after_seq)
            .order_by(entries.c.account_seq)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [entry_of(r) for r in conn.execute(query)]

    def transfer_by_id(self, transfer_id: str) -> Transfer | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(transfers).where(transfers.c.id == transfer_id)).first()
        return None if row is None else transfer_of(row)

    # -- transfers ---------------------------------------------------------------------------

    def transfer(self, request: TransferRequest) -> Transfer:
        """Apply one transfer (or replay it if the id exists with the same fields); raises its error."""
        if request.linked:
            raise InvalidPaymentInput("a single transfer cannot be linked")
        result = self.transfer_batch([request])[0]
        if result.error is not None:
            raise result.error
        if result.transfer is None:  # pragma: no cover - a result has one or the other
            raise LedgerBusy("no result")
        return result.transfer

    def transfer_batch(self, requests: Sequence[TransferRequest]) -> list[TransferResult]:
        """Apply many transfers in one database transaction; one result per request, in order.

        Each transfer succeeds or fails on its own, except linked chains (``linked=True`` links
        a transfer to the next), which succeed or fail together. A failed transfer writes nothing.
        """
        return self.run(lambda session: self.apply_batch(session, requests))

    def apply_batch(self, session: Session, requests: Sequence[TransferRequest]) -> list[TransferResult]:
        """:meth:`transfer_batch` inside the caller's transaction (e.g. with a payment row and an
        outbox event); the caller runs it through :meth:`run`."""
        if not 1 <= len(requests) <= self.max_batch_size:
            raise InvalidPaymentInput(f"a batch holds 1..{self.max_batch_size} transfers")
        if requests[-1].linked:
            raise InvalidPaymentInput("the last transfer of a batch cannot be linked to a next one")
        shape_errors = validate_shapes(requests)
        ids = sorted({r.id for r in requests})
        existing = {t.id: t for t in self._select_transfers(session, ids)}
        pending_ids = sorted({r.pending_id for r in requests if r.pending_id})
        pending_pre = {t.id: t for t in self._select_transfers(session, pending_ids)}
        touched = {a for r in requests for a in (r.debit_account_id, r.credit_account_id) if a}
        touched |= {a for t in pending_pre.values() for a in (t.debit_account_id, t.credit_account_id)}
        states = {row.id: state_of(row) for row in self._select_accounts(session, sorted(touched), lock=True)}
        pending = {t.id: t for t in self._select_transfers(session, sorted(pending_pre), lock=True)}
        self._fault("locked")
        before = _balances_of(states)
        posting = Posting(accounts=states, pending=dict(pending), now_s=self.clock())
        results = post_chains(posting, requests, shape_errors, existing)
        self._write(session, posting, before=before)
        self._fault("written")
        return results

    def expire_pending(self, now_s: float | None = None, *, limit: int = 1000) -> int:
        """Release pending transfers whose timeout passed (status EXPIRED); returns how many."""
        at_s = self.clock() if now_s is None else now_s
        with self.engine.connect() as conn:
            due = [
                r.id
                for r in conn.execute(
                    select(transfers.c.id)
                    .where(
                        transfers.c.status == TransferStatus.PENDING.value, transfers.c.expires_at_s <= at_s
                    )
                    .order_by(transfers.c.expires_at_s)
                    .limit(limit)
                )
            ]
        if not due:
            return 0

        def work(session: Session) -> int:
            pre = self._select_transfers(session, due)
            touched = sorted({a for t in pre for a in (t.debit_account_id, t.credit_account_id)})
            states = {row.id: state_of(row) for row in self._select_accounts(session, touched, lock=True)}
            locked = {t.id: t for t in self._select_transfers(session, due, lock=True)}
            posting = Posting(accounts=states, pending=locked, now_s=at_s)
            before = _balances_of(states)
            for pending_id, transfer in locked.items():
                if transfer.status is TransferStatus.PENDING:
                    posting.expire(pending_id)
            self._write(session, posting, before=before)
            return len(posting.closed_pending)

        return self.run(work)

    # -- SQL helpers -------------------------------------------------------------------------

    def _select_accounts(self, session: Session, ids: Sequence[str], *, lock: bool = False) -> list[Row[Any]]:
        rows: list[Row[Any]] = []
        for chunk in _chunks(sorted(ids)):
            query = select(accounts).where(accounts.c.id.in_(chunk)).order_by(accounts.c.id)
            if lock:
                query = query.with_for_update()
            rows.extend(session.execute(query).all())
        return rows

    def _select_transfers(
        self, session: Session, ids: Sequence[str], *, lock: bool = False
    ) -> list[Transfer]:
        found: list[Transfer] = []
        for chunk in _chunks(sorted(ids)):
            query = select(transfers).where(transfers.c.id.in_(chunk)).order_by(transfers.c.id)
            if lock:
                query = query.with_for_update()
            found.extend(transfer_of(r) for r in session.execute(query))
        return found

    def _write(
        self, session: Session, posting: Posting, *, before: dict[str, tuple[int, int, int, int]]
    ) -> None:
        """Write a posting: on PostgreSQL one ``unnest`` statement per table (cached, one round
        trip each); elsewhere DBAPI executemany (pymysql folds INSERTs into multi-row VALUES)."""
        changed = [s for s in posting.accounts.values() if before.get(s.account.id) != _balance_key(s)]
        transfer_rows = [transfer_row(t) for t in posting.transfers]
        entry_rows = [entry_row(e) for e in posting.entries]
        account_rows = [
            {
                "b_id": s.account.id,
                "b_balance": s.balance_minor,
                "b_pending_debits": s.pending_debits_minor,
                "b_pending_credits": s.pending_credits_minor,
                "b_seq": s.entry_seq,
            }
            for s in changed
        ]
        conn = session.connection()
        if self._bulk is not None:
            self._bulk.write(conn, transfer_rows, entry_rows, account_rows)
        else:
            if transfer_rows:
                conn.execute(transfers.insert(), transfer_rows)
            if entry_rows:
                conn.execute(entries.insert(), entry_rows)
            if account_rows:
                conn.execute(_UPDATE_ACCOUNT, account_rows)
        if posting.closed_pending:
            conn.execute(
                update(transfers)
                .where(transfers.c.id == bindparam("p_id"))
                .values(status=bindparam("p_status")),
                [{"p_id": k, "p_status": v.value} for k, v in sorted(posting.closed_pending.items())],
            )

    def total_balance(self) -> tuple[int, int]:
        """(sum of balances, number of accounts) in one statement: the bank-invariant read."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(func.coalesce(func.sum(accounts.c.balance_minor), 0), func.count())
            ).one()
        return int(row[0]), int(row[1])


def _balances_of(states: dict[str, AccountState]) -> dict[str, tuple[int, int, int, int]]:
    """Balances as loaded (taken before posting), to write only the accounts a posting changed."""
    return {k: _balance_key(v) for k, v in states.items()}


def _balance_key(state: AccountState) -> tuple[int, int, int, int]:
    # entry_seq included: A→B then B→A of the same amount leaves the balance but not the sequence
    return state.balance_minor, state.pending_debits_minor, state.pending_credits_minor, state.entry_seq


def _chunks(ids: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(ids), _IN_CHUNK):
        yield ids[start : start + _IN_CHUNK]
