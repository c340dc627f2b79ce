"""Schema migrations for :data:`hexcity.infra.sql.metadata`, run with Alembic from the package.

The Alembic environment lives in ``hexcity/infra/migrations`` (shipped in the wheel), so no
``alembic.ini`` is needed::

    upgrade("postgresql+psycopg://app@db/hexcity")   # to head; a no-op when already there
    current("postgresql+psycopg://app@db/hexcity")   # "0001", or None before the first upgrade

PostgreSQL: put the tables in another schema with ``?options=-csearch_path%3D<schema>``.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, make_url
from sqlalchemy.pool import NullPool

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def _sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL, ``None`` for other backends and in-memory databases."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        return Path(parsed.database)
    return None


def alembic_config(url: str) -> Config:
    """An Alembic ``Config`` for the packaged migrations against ``url`` (no ini file)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    # ConfigParser interpolates "%": escape it (URL-encoded passwords, search_path options).
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["url"] = url
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at ``url`` up to ``revision``; creates a SQLite file's directory."""
    db_file = _sqlite_file(url)
    if db_file is not None:
        db_file.parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), revision)


def current(url: str) -> str | None:
    """The revision the database at ``url`` is at, or ``None`` when it was never migrated.

    Read-only: a SQLite file that does not exist yet is reported as ``None``, not created.
    """
    db_file = _sqlite_file(url)
    if db_file is not None and not db_file.exists():
        return None
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
