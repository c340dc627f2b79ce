"""Helpers the use cases share to post transfers inside their own ledger transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from sqlalchemy.orm import Session

from hexcity.payments.adapters.sql_ledger import SqlLedger
from hexcity.payments.domain.ledger import Transfer, TransferRequest
from hexcity.payments.errors import LinkedTransferFailed


def apply_transfers(
    ledger: SqlLedger, session: Session, requests: Sequence[TransferRequest]
) -> list[Transfer]:
    """Apply one linked chain inside ``session``; raise the error that refused it (nothing written)."""
    results = ledger.apply_batch(session, requests)
    errors = [r.error for r in results if r.error is not None]
    if errors:
        raise next((e for e in errors if not isinstance(e, LinkedTransferFailed)), errors[0])
    return [r.transfer for r in results if r.transfer is not None]


def chain(*requests: TransferRequest) -> list[TransferRequest]:
    """Link ``requests`` so they apply all together or not at all."""
    return [replace(r, linked=i < len(requests) - 1) for i, r in enumerate(requests)]
