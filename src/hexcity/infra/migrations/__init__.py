"""Alembic environment for :data:`hexcity.infra.sql.metadata`, shipped inside the package.

Run it through :mod:`hexcity.infra.migrate` (no ``alembic.ini`` needed).
"""
