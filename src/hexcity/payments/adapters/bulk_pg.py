"""PostgreSQL bulk writes for a ledger batch: ``INSERT ... SELECT FROM unnest(arrays)`` and
``UPDATE ... FROM unnest(arrays)``. Each statement is constant (arrays are parameters), so
SQLAlchemy compiles it once and a batch of any size costs one round trip per table — instead
of one statement per row (executemany) or a fresh compile per multi-row VALUES."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Connection, Double, Integer, String, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.expression import Executable

from hexcity.payments.adapters.tables import accounts, entries, transfers

_TYPES = {BigInteger: BigInteger, Integer: Integer, String: String, Double: Double}


def _array_type(column: Any) -> ARRAY[Any]:
    for base, kind in _TYPES.items():
        if isinstance(column.type, base):
            return ARRAY(kind())
    raise TypeError(f"no array type for {column}")  # pragma: no cover - every column is mapped


def _insert_from_unnest(table: Any) -> Executable:
    columns = list(table.columns)
    arrays = [bindparam(f"a_{c.name}", type_=_array_type(c)) for c in columns]
    source = func.unnest(*arrays).table_valued(*[c.name for c in columns]).render_derived(name="src")
    statement: Executable = table.insert().from_select(
        [c.name for c in columns], select(*[source.c[c.name] for c in columns])
    )
    return statement


def _update_accounts_from_unnest() -> Executable:
    names = ("id", "balance_minor", "pending_debits_minor", "pending_credits_minor", "entry_seq")
    arrays = [bindparam(f"a_{n}", type_=ARRAY(String() if n == "id" else BigInteger())) for n in names]
    source = func.unnest(*arrays).table_valued(*names).render_derived(name="src")
    return (
        update(accounts)
        .where(accounts.c.id == source.c.id)
        .values({n: source.c[n] for n in names if n != "id"})
    )


class PostgresBulkWriter:
    """Writes the rows of one posting with three constant statements."""

    def __init__(self) -> None:
        self._insert_transfers = _insert_from_unnest(transfers)
        self._insert_entries = _insert_from_unnest(entries)
        self._update_accounts = _update_accounts_from_unnest()

    def write(
        self,
        conn: Connection,
        transfer_rows: list[dict[str, Any]],
        entry_rows: list[dict[str, Any]],
        account_rows: list[dict[str, Any]],
    ) -> None:
        if transfer_rows:
            conn.execute(self._insert_transfers, _columns(transfers, transfer_rows))
        if entry_rows:
            conn.execute(self._insert_entries, _columns(entries, entry_rows))
        if account_rows:
            conn.execute(
                self._update_accounts,
                {
                    "a_id": [r["b_id"] for r in account_rows],
                    "a_balance_minor": [r["b_balance"] for r in account_rows],
                    "a_pending_debits_minor": [r["b_pending_debits"] for r in account_rows],
                    "a_pending_credits_minor": [r["b_pending_credits"] for r in account_rows],
                    "a_entry_seq": [r["b_seq"] for r in account_rows],
                },
            )


def _columns(table: Any, rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    return {f"a_{c.name}": [row[c.name] for row in rows] for c in table.columns}
