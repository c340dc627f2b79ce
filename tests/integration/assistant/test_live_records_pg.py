"""Live records read through dispatch's and payments' queries on PostgreSQL: the same exact
expectations as on SQLite (order, attributes, links, access), in a database of its own so other
suites' table drops on ``test`` cannot interfere."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from tests.conftest import require_service
from tests.unit.assistant.test_live_records import World, build_world_on, check_answers, check_reader

from hexcity.infra.sql import make_engine

ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DATABASE = "hexcity_assistant_live"
pytestmark = pytest.mark.integration


def fresh_database() -> Engine:
    admin = make_engine(ADMIN_URL)
    try:
        with admin.connect() as c:
            c.execute(text("select 1"))
    except Exception as exc:
        require_service("PostgreSQL", False, f"{ADMIN_URL}: {exc}")
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"))
        c.execute(text(f"CREATE DATABASE {DATABASE}"))
    admin.dispose()
    return make_engine(ADMIN_URL.rsplit("/", 1)[0] + f"/{DATABASE}")


@pytest.fixture
def pg_world() -> Iterator[World]:
    world = build_world_on(fresh_database())
    yield world
    world.engine.dispose()


def test_reader_on_postgres(pg_world: World) -> None:
    check_reader(pg_world)


def test_answers_on_postgres(pg_world: World) -> None:
    check_answers(pg_world)
