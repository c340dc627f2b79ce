"""The packaged Alembic migrations build exactly ``hexcity.infra.sql.metadata``.

``test_upgrade_matches_metadata`` fails when a table in ``sql.py`` changes without a new
revision in ``hexcity/infra/migrations/versions``.
"""

from __future__ import annotations

import datetime as dt
import io
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Column,
    Engine,
    MetaData,
    String,
    UniqueConstraint,
    create_engine,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.pool import NullPool
from tests.conftest import require_service

from hexcity.infra.migrate import alembic_config, current, upgrade
from hexcity.infra.sql import metadata, outbox

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a temp SQLite file, or a unique PostgreSQL schema dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'db' / 'hexcity.db'}"  # upgrade() creates db/
        return
    base = create_engine(PG_URL, poolclass=NullPool, connect_args={"connect_timeout": 5})
    try:
        with base.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:
        base.dispose()
        require_service("PostgreSQL", False, f"{PG_URL}: {exc}")
    schema = f"hxt_migr_{uuid.uuid4().hex[:10]}"
    with base.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with base.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        base.dispose()


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    eng = create_engine(url, poolclass=NullPool)
    yield eng
    eng.dispose()


def _head() -> str:
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def _schema(engine: Engine) -> dict[str, Any]:
    """Tables → columns (nullability), primary key, unique constraints and indexes, by column."""
    insp = inspect(engine)
    out: dict[str, Any] = {}
    for name in sorted(set(insp.get_table_names()) - {"alembic_version"}):
        out[name] = {
            "columns": {c["name"]: c["nullable"] for c in insp.get_columns(name)},
            "pk": sorted(insp.get_pk_constraint(name)["constrained_columns"]),
            "unique": sorted(tuple(u["column_names"]) for u in insp.get_unique_constraints(name)),
            "indexes": sorted(
                (i["name"], tuple(str(c) for c in i["column_names"]), bool(i["unique"]))
                for i in insp.get_indexes(name)
                if not i.get("duplicates_constraint")  # PostgreSQL: the unique constraint's index
            ),
        }
    return out


def _expected() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, table in sorted(metadata.tables.items()):
        uniques = [
            tuple(c.name for c in uc.columns) for uc in table.constraints if isinstance(uc, UniqueConstraint)
        ]
        out[name] = {
            "columns": {c.name: c.nullable for c in table.columns},
            "pk": sorted(c.name for c in table.primary_key.columns),
            "unique": sorted(uniques),
            "indexes": sorted(
                (i.name, tuple(c.name for c in i.columns), bool(i.unique)) for i in table.indexes
            ),
        }
    return out


def test_upgrade_matches_metadata(url: str, engine: Engine) -> None:
    assert current(url) is None
    upgrade(url)
    assert _schema(engine) == _expected()
    assert _expected()["outbox"]["unique"] == [("event_id",)]  # the comparison is not vacuous
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == [], f"sql.py and the migrations differ; add a revision: {diff}"


def test_comparison_catches_drift(url: str, engine: Engine) -> None:
    """A column added or resized in sql.py without a revision shows up in the diff."""
    upgrade(url)
    changed = MetaData()
    for table in metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["outbox"].append_column(Column("tenant", String(64), nullable=True))
    changed.tables["processed_events"].c.consumer.type = String(512)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), changed)
    kinds = {d[0] if isinstance(d, tuple) else d[0][0] for d in diff}
    assert kinds == {"add_column", "modify_type"}, diff


def test_current_is_head_and_second_upgrade_is_noop(url: str, engine: Engine) -> None:
    upgrade(url)
    assert current(url) == _head() == "0001"
    with engine.begin() as conn:
        conn.execute(
            insert(outbox).values(
                event_id="e1",
                topic="t",
                key="k",
                payload={},
                headers={},
                occurred_at_s=1.0,
                created_at=dt.datetime.now(dt.UTC),
                attempts=0,
            )
        )
    upgrade(url)
    assert current(url) == _head()
    with engine.connect() as conn:
        assert conn.execute(select(outbox.c.event_id)).scalars().all() == ["e1"]


def test_downgrade_to_base_and_back(url: str, engine: Engine) -> None:
    upgrade(url)
    command.downgrade(alembic_config(url), "base")
    assert current(url) is None
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade(url)
    assert _schema(engine) == _expected()


@pytest.mark.parametrize("dialect_url", ["sqlite:///unused.db", PG_URL])
def test_offline_sql_script(dialect_url: str) -> None:
    """``--sql`` mode renders the DDL without connecting (for DBAs who apply scripts by hand)."""
    cfg = alembic_config(dialect_url)
    buf = io.StringIO()
    cfg.output_buffer = buf
    command.upgrade(cfg, "head", sql=True)
    script = buf.getvalue()
    assert "CREATE TABLE outbox" in script
    assert "CREATE TABLE processed_events" in script
    assert "CREATE INDEX ix_outbox_unsent" in script
    assert "alembic_version" in script
