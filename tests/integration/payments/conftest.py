"""Real PostgreSQL and MariaDB for the payments integration tests (fresh payments tables each test)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, delete, text
from tests.conftest import require_service

from hexcity.infra.sql import make_engine, outbox
from hexcity.payments.adapters.tables import create_schema, metadata

POSTGRES_URL = "postgresql+psycopg://postgres@localhost:5432/test"
MARIADB_URL = "mysql+pymysql://root@127.0.0.1:3306/test"
URLS = {"postgresql": POSTGRES_URL, "mariadb": MARIADB_URL}
TEST_TOPIC_PREFIX = "payments.events.it-"  # every integration test publishes on its own topic


_RECREATED: set[str] = set()  # tables are dropped once per session, then emptied per test


def fresh_engine(kind: str) -> Engine:
    """An engine on ``kind`` with empty payments tables (other modules' tables untouched)."""
    engine = make_engine(URLS[kind])
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any connect failure means "not reachable"
        engine.dispose()
        require_service(kind, False, f"{URLS[kind]}: {exc!r}"[:300])
    if kind not in _RECREATED:
        metadata.drop_all(engine, checkfirst=True)
        create_schema(engine)
        _RECREATED.add(kind)
    else:
        with engine.begin() as conn:
            for table in reversed(metadata.sorted_tables):
                conn.execute(table.delete())
    return engine


def _cleanup(engine: Engine) -> None:
    """Remove the outbox rows of the tests' private topics from the shared outbox table."""
    with engine.begin() as conn:
        conn.execute(delete(outbox).where(outbox.c.topic.like(f"{TEST_TOPIC_PREFIX}%")))
    engine.dispose()


@pytest.fixture
def pg_engine() -> Iterator[Engine]:
    engine = fresh_engine("postgresql")
    yield engine
    _cleanup(engine)


@pytest.fixture(params=["postgresql", "mariadb"])
def sql_engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    engine = fresh_engine(request.param)
    yield engine
    _cleanup(engine)
