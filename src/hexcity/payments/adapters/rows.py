"""Mapping between ledger table rows and the domain records."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Row

from hexcity.payments.domain.ledger import (
    Account,
    AccountKind,
    AccountState,
    Entry,
    Overdraft,
    Transfer,
    TransferKind,
    TransferStatus,
    check_id,
)


def account_of(row: Row[Any]) -> Account:
    return Account(
        id=row.id,
        kind=AccountKind(row.kind),
        currency=row.currency,
        overdraft=Overdraft(row.overdraft),
        credit_limit_minor=int(row.credit_limit_minor),
        owner_kind=row.owner_kind,
        owner_id=row.owner_id,
    )


def state_of(row: Row[Any]) -> AccountState:
    return AccountState(
        account=account_of(row),
        balance_minor=int(row.balance_minor),
        pending_debits_minor=int(row.pending_debits_minor),
        pending_credits_minor=int(row.pending_credits_minor),
        entry_seq=int(row.entry_seq),
    )


def account_row(account: Account, now_s: float) -> dict[str, Any]:
    return {
        "id": check_id(account.id, "account id"),
        "kind": account.kind.value,
        "currency": account.currency,
        "overdraft": account.overdraft.value,
        "credit_limit_minor": account.credit_limit_minor,
        "owner_kind": account.owner_kind,
        "owner_id": account.owner_id,
        "balance_minor": 0,
        "pending_debits_minor": 0,
        "pending_credits_minor": 0,
        "entry_seq": 0,
        "created_at_s": now_s,
    }


def transfer_of(row: Row[Any]) -> Transfer:
    return Transfer(
        id=row.id,
        debit_account_id=row.debit_account_id,
        credit_account_id=row.credit_account_id,
        amount_minor=int(row.amount_minor),
        currency=row.currency,
        kind=TransferKind(row.kind),
        status=TransferStatus(row.status),
        created_at_s=float(row.created_at_s),
        pending_id=row.pending_id,
        expires_at_s=None if row.expires_at_s is None else float(row.expires_at_s),
        code=row.code,
        reference=row.reference,
        requested_amount_minor=int(row.requested_amount_minor),
    )


def transfer_row(t: Transfer) -> dict[str, Any]:
    return {
        "id": t.id,
        "debit_account_id": t.debit_account_id,
        "credit_account_id": t.credit_account_id,
        "amount_minor": t.amount_minor,
        "requested_amount_minor": t.requested_amount_minor,
        "currency": t.currency,
        "kind": t.kind.value,
        "status": t.status.value,
        "pending_id": t.pending_id,
        "expires_at_s": t.expires_at_s,
        "created_at_s": t.created_at_s,
        "code": t.code,
        "reference": t.reference,
    }


def entry_of(row: Row[Any]) -> Entry:
    return Entry(
        transfer_id=row.transfer_id,
        leg_no=int(row.leg_no),
        account_id=row.account_id,
        counterparty_id=row.counterparty_id,
        amount_minor=int(row.amount_minor),
        currency=row.currency,
        direction=row.direction,
        balance_after_minor=int(row.balance_after_minor),
        account_seq=int(row.account_seq),
        created_at_s=float(row.created_at_s),
    )


def entry_row(e: Entry) -> dict[str, Any]:
    return {
        "entry_id": uuid.uuid4().hex,
        "transfer_id": e.transfer_id,
        "leg_no": e.leg_no,
        "account_id": e.account_id,
        "counterparty_id": e.counterparty_id,
        "amount_minor": e.amount_minor,
        "currency": e.currency,
        "direction": e.direction,
        "balance_after_minor": e.balance_after_minor,
        "account_seq": e.account_seq,
        "status": "posted",
        "created_at_s": e.created_at_s,
    }
