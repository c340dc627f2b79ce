"""SQL plumbing shared by infra: one ``metadata`` with every table, and ``make_engine``.

Tables are created with ``metadata.create_all(engine)`` for now (tests, the embedded SQLite
default); Alembic migrations generated from this metadata come later.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    create_engine,
    event,
    make_url,
)

DEFAULT_DATABASE_URL = "sqlite:///var/hexcity.db"
CONNECT_TIMEOUT_S = 5
STATEMENT_TIMEOUT_MS = 30_000
LOCK_TIMEOUT_MS = 5_000

metadata = MetaData()

_BigId = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER only

outbox = Table(
    "outbox",
    metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("event_id", String(64), nullable=False, unique=True),
    Column("topic", String(255), nullable=False),
    Column("key", String(255), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("headers", JSON, nullable=False),
    Column("occurred_at_s", Float, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Index("ix_outbox_unsent", "sent_at", "id"),
)

processed_events = Table(
    "processed_events",
    metadata,
    Column("consumer", String(255), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("processed_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("consumer", "event_id", name="pk_processed_events"),
)


def make_engine(url: str | None = None, *, echo: bool = False) -> Engine:
    """An Engine with bounded pools and timeouts; SQLite file ``var/hexcity.db`` by default.

    PostgreSQL (``postgresql+psycopg://...``): pool of 5 + 5 overflow, 5 s pool and connect
    timeouts, pre-ping, 30 s statement timeout and 5 s lock timeout. SQLite: 5 s busy timeout;
    the parent directory of a file database is created, write-ahead logging is on, and
    transactions are real (see :func:`_sqlite_real_transactions`; write with :func:`writer`).
    """
    parsed = make_url(url or DEFAULT_DATABASE_URL)
    kwargs: dict[str, Any] = {"echo": echo, "future": True}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": CONNECT_TIMEOUT_S}
    elif parsed.get_backend_name() == "postgresql":
        kwargs.update(
            pool_size=5,
            max_overflow=5,
            pool_timeout=CONNECT_TIMEOUT_S,
            pool_pre_ping=True,
            pool_recycle=1800,
            connect_args={
                "connect_timeout": CONNECT_TIMEOUT_S,
                "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS} -c lock_timeout={LOCK_TIMEOUT_MS}",
            },
        )
    engine = create_engine(parsed, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        _sqlite_real_transactions(engine)
    return engine


def _sqlite_real_transactions(engine: Engine) -> None:
    """SQLite with real transactions (the SQLAlchemy recipe for pysqlite), in WAL mode.

    pysqlite by default opens a transaction only at the first write, so a SAVEPOINT before it acts
    as the outer transaction and its RELEASE commits; its driver-level handling is switched off
    and SQLAlchemy emits ``BEGIN`` itself. Plain transactions are ``BEGIN`` (deferred: readers
    never wait, and in WAL mode never block the writer). A transaction that reads and then writes
    must take the write lock up front — ``BEGIN IMMEDIATE``, through :func:`writer` — or it fails
    at once with "database is locked" when another connection writes meanwhile (SQLite does not
    wait there, to avoid a deadlock).
    """

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer, nor it them
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get("sqlite_begin") == "immediate"
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def writer(engine: Engine) -> Engine:
    """The engine for transactions that write: ``BEGIN IMMEDIATE`` on SQLite (the write lock first,
    waiting up to the busy timeout for it), so read-then-write transactions queue instead of
    failing; unchanged on other databases (they lock rows)."""
    if engine.dialect.name != "sqlite":
        return engine
    return engine.execution_options(sqlite_begin="immediate")
