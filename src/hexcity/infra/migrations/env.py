"""Alembic environment: online (a live connection) and offline (``--sql`` script) modes.

The database URL comes from ``config.attributes["url"]`` (set by :func:`hexcity.infra.migrate.alembic_config`)
or the ``sqlalchemy.url`` option; a caller may instead hand over an open connection in
``config.attributes["connection"]``. SQLite runs in batch mode (ALTER via table copy).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine, make_url
from sqlalchemy.pool import NullPool

from hexcity.infra.sql import metadata

config = context.config
target_metadata = metadata


def _url() -> str:
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL: use hexcity.infra.migrate.alembic_config(url)")
    return str(url)


def run_migrations_offline() -> None:
    """Emit the SQL script for the configured dialect without connecting."""
    url = _url()
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=make_url(url).get_backend_name() == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate over a caller's connection, or a fresh unpooled one to the configured URL."""
    given = config.attributes.get("connection")
    if isinstance(given, Connection):
        _run(given)
        return
    engine = create_engine(_url(), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
