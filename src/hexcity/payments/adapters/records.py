"""Payment rows, idempotency rows and events, inside the caller's ledger transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, Row, delete, insert, select, update
from sqlalchemy.orm import Session

from hexcity.infra.outbox import add_to_outbox
from hexcity.kernel.events import Event
from hexcity.payments.adapters.tables import idempotency_keys, payments
from hexcity.payments.errors import PaymentNotFound

SETTLED_KINDS = frozenset({"payment", "ride", "order"})  # money that reached a merchant or driver
REFUNDABLE_STATUSES = frozenset({"succeeded", "captured", "partially_refunded", "refunded"})


@dataclass(frozen=True, slots=True)
class Payment:
    """A payment-level record (payment, refund, payout, top-up, ride, order)."""

    id: str
    kind: str
    status: str
    payer_account_id: str
    payee_account_id: str
    amount_minor: int
    fee_minor: int
    refunded_minor: int
    currency: str
    reference: str
    parent_id: str | None
    created_at_s: float
    updated_at_s: float

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "status": self.status,
            "payer_account_id": self.payer_account_id,
            "payee_account_id": self.payee_account_id,
            "amount_minor": self.amount_minor,
            "fee_minor": self.fee_minor,
            "refunded_minor": self.refunded_minor,
            "currency": self.currency,
            "reference": self.reference,
            "parent_id": self.parent_id,
            "created_at_s": self.created_at_s,
        }


def new_id(prefix: str) -> str:
    """A random id (uuid4, 24 hex digits) with a kind prefix, e.g. ``pay_0f3a...``."""
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def insert_payment(session: Session, payment: Payment) -> Payment:
    session.execute(insert(payments).values(**_row(payment)))
    return payment


def get_payment(session: Session, payment_id: str, *, lock: bool = False) -> Payment:
    query = select(payments).where(payments.c.id == payment_id)
    if lock:
        query = query.with_for_update()
    row = session.execute(query).first()
    if row is None:
        raise PaymentNotFound(f"payment {payment_id!r} does not exist")
    return _payment(row)


def find_payment(session: Session, payment_id: str) -> Payment | None:
    row = session.execute(select(payments).where(payments.c.id == payment_id)).first()
    return None if row is None else _payment(row)


def payments_between(session: Session, since_s: float, until_s: float, kinds: list[str]) -> list[Payment]:
    """Payments of ``kinds`` created in [since_s, until_s), in id order."""
    rows = session.execute(
        select(payments)
        .where(
            payments.c.created_at_s >= since_s, payments.c.created_at_s < until_s, payments.c.kind.in_(kinds)
        )
        .order_by(payments.c.id)
    )
    return [_payment(row) for row in rows]


def payments_with_reference(session: Session, reference: str, limit: int) -> list[Payment]:
    rows = session.execute(
        select(payments).where(payments.c.reference == reference).order_by(payments.c.id).limit(limit)
    )
    return [_payment(row) for row in rows]


def update_payment(session: Session, payment_id: str, **values: Any) -> None:
    session.execute(update(payments).where(payments.c.id == payment_id).values(**values))


def emit(
    session: Session, topic: str, event_type: str, key: str, payload: dict[str, Any], at_s: float
) -> None:
    """Add ``{"type": event_type, **payload}`` to the outbox in the current transaction."""
    add_to_outbox(
        session, Event(topic=topic, key=key, payload={"type": event_type, **payload}, occurred_at_s=at_s)
    )


@dataclass(frozen=True, slots=True)
class StoredResponse:
    request_hash: str
    status_code: int
    body: dict[str, Any]
    created_at_s: float


def find_response(session: Session, scope: str, key_hash: str) -> StoredResponse | None:
    row = session.execute(
        select(idempotency_keys).where(
            idempotency_keys.c.scope == scope, idempotency_keys.c.key_hash == key_hash
        )
    ).first()
    if row is None:
        return None
    return StoredResponse(row.request_hash, int(row.status_code), dict(row.body), float(row.created_at_s))


def claim_key(session: Session, scope: str, key_hash: str, request_hash: str, now_s: float) -> None:
    """Insert the key's row (unique): a concurrent claim of the same key blocks, then fails."""
    session.execute(
        insert(idempotency_keys).values(
            scope=scope,
            key_hash=key_hash,
            request_hash=request_hash,
            status_code=0,
            body={},
            created_at_s=now_s,
        )
    )


def store_response(
    session: Session, scope: str, key_hash: str, status_code: int, body: dict[str, Any]
) -> None:
    session.execute(
        update(idempotency_keys)
        .where(idempotency_keys.c.scope == scope, idempotency_keys.c.key_hash == key_hash)
        .values(status_code=status_code, body=body)
    )


def delete_expired_keys(session: Session, before_s: float, limit: int) -> int:
    """Delete the oldest keys created before ``before_s``, about ``limit`` at a time; returns how many."""
    cutoff = session.execute(
        select(idempotency_keys.c.created_at_s)
        .where(idempotency_keys.c.created_at_s < before_s)
        .order_by(idempotency_keys.c.created_at_s)
        .offset(limit - 1)
        .limit(1)
    ).scalar()
    condition = idempotency_keys.c.created_at_s < before_s
    if cutoff is not None:
        condition = condition & (idempotency_keys.c.created_at_s <= cutoff)
    result = cast(CursorResult[Any], session.execute(delete(idempotency_keys).where(condition)))
    return int(result.rowcount or 0)


def _row(payment: Payment) -> dict[str, Any]:
    return {
        "id": payment.id,
        "kind": payment.kind,
        "status": payment.status,
        "payer_account_id": payment.payer_account_id,
        "payee_account_id": payment.payee_account_id,
        "amount_minor": payment.amount_minor,
        "fee_minor": payment.fee_minor,
        "refunded_minor": payment.refunded_minor,
        "currency": payment.currency,
        "reference": payment.reference,
        "parent_id": payment.parent_id,
        "created_at_s": payment.created_at_s,
        "updated_at_s": payment.updated_at_s,
    }


def _payment(row: Row[Any]) -> Payment:
    return Payment(
        id=row.id,
        kind=row.kind,
        status=row.status,
        payer_account_id=row.payer_account_id,
        payee_account_id=row.payee_account_id,
        amount_minor=int(row.amount_minor),
        fee_minor=int(row.fee_minor),
        refunded_minor=int(row.refunded_minor),
        currency=row.currency,
        reference=row.reference,
        parent_id=row.parent_id,
        created_at_s=float(row.created_at_s),
        updated_at_s=float(row.updated_at_s),
    )
