"""The trip store's contract on PostgreSQL: the same test bodies as on SQLite, real threads racing."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from tests.conftest import require_service
from tests.unit.dispatch.test_trips import STORE_TESTS

from hexcity.dispatch.adapters.trip_store_sql import SqlTripStore
from hexcity.dispatch.adapters.trip_store_sql import metadata as dispatch_metadata
from hexcity.infra.sql import make_engine

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
pytestmark = pytest.mark.integration


def fresh_store() -> SqlTripStore:
    engine = make_engine(PG_URL)
    try:
        with engine.connect() as c:
            c.execute(text("select 1"))
    except Exception as exc:
        require_service("PostgreSQL", False, f"{PG_URL}: {exc}")
    dispatch_metadata.drop_all(engine, checkfirst=True)
    with engine.begin() as c:
        c.execute(text("DROP TABLE IF EXISTS outbox"))
    store = SqlTripStore(engine)
    store.create_schema()
    return store


@pytest.mark.parametrize("check", STORE_TESTS, ids=lambda f: f.__name__.removeprefix("check_"))
def test_store_on_postgres(check) -> None:  # type: ignore[no-untyped-def]
    store = fresh_store()
    try:
        check(store)
    finally:
        store.engine.dispose()
