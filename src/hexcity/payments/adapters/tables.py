"""The payments tables, on the module's own ``MetaData`` (created idempotently by ``create_schema``).

Money columns are signed 64-bit integers of minor units. Entry ids are random (uuid4 hex), so
inserts spread over the index instead of hitting one hot range.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Double,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

from hexcity.infra.sql import metadata as infra_metadata
from hexcity.infra.sql import outbox, processed_events, writer

metadata = MetaData()

accounts = Table(
    "payments_accounts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("overdraft", String(16), nullable=False),
    Column("credit_limit_minor", BigInteger, nullable=False),
    Column("owner_kind", String(16), nullable=True),
    Column("owner_id", String(64), nullable=True),
    Column("balance_minor", BigInteger, nullable=False),
    Column("pending_debits_minor", BigInteger, nullable=False),
    Column("pending_credits_minor", BigInteger, nullable=False),
    Column("entry_seq", BigInteger, nullable=False),
    Column("created_at_s", Double, nullable=False),
)

transfers = Table(
    "payments_transfers",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("debit_account_id", String(64), nullable=False),
    Column("credit_account_id", String(64), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("requested_amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("pending_id", String(64), nullable=True),
    Column("expires_at_s", Double, nullable=True),
    Column("created_at_s", Double, nullable=False),
    Column("code", String(64), nullable=False),
    Column("reference", String(255), nullable=False),
)
# only pending transfers are swept for expiry: a partial index where the dialect has them
Index(
    "ix_payments_transfers_pending_expiry",
    transfers.c.status,
    transfers.c.expires_at_s,
    postgresql_where=transfers.c.status == "pending",
    sqlite_where=transfers.c.status == "pending",
)

entries = Table(
    "payments_entries",
    metadata,
    Column("entry_id", String(32), primary_key=True),
    Column("transfer_id", String(64), nullable=False),
    Column("leg_no", Integer, nullable=False),
    Column("account_id", String(64), nullable=False),
    Column("counterparty_id", String(64), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("direction", String(6), nullable=False),
    Column("balance_after_minor", BigInteger, nullable=False),
    Column("account_seq", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at_s", Double, nullable=False),
    UniqueConstraint("transfer_id", "leg_no", name="uq_payments_entries_leg"),
    UniqueConstraint("account_id", "account_seq", name="uq_payments_entries_seq"),
)

payments = Table(
    "payments_payments",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("status", String(32), nullable=False),
    Column("payer_account_id", String(64), nullable=False),
    Column("payee_account_id", String(64), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("fee_minor", BigInteger, nullable=False),
    Column("refunded_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("reference", String(255), nullable=False),
    Column("parent_id", String(64), nullable=True),
    Column("created_at_s", Double, nullable=False),
    Column("updated_at_s", Double, nullable=False),
    Index("ix_payments_payments_reference", "reference"),
)

idempotency_keys = Table(
    "payments_idempotency_keys",
    metadata,
    Column("scope", String(96), primary_key=True),
    Column("key_hash", String(64), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("body", JSON, nullable=False),
    Column("created_at_s", Double, nullable=False),
    Index("ix_payments_idempotency_created", "created_at_s"),
)

campaigns = Table(
    "payments_campaigns",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("budget_account_id", String(64), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("cashback_bps", Integer, nullable=False),
    Column("max_grant_minor", BigInteger, nullable=False),
    Column("min_grant_minor", BigInteger, nullable=False),
    Column("merchant_account_id", String(64), nullable=True),
    Column("closed_at_s", Double, nullable=True),
)


def create_schema(engine: Engine) -> None:
    """Create the payments tables and the infra outbox tables if missing (idempotent)."""
    metadata.create_all(writer(engine), checkfirst=True)
    infra_metadata.create_all(writer(engine), tables=[outbox, processed_events], checkfirst=True)
