"""A batch of transfers: per-transfer results, linked chains applied all-or-nothing (pure)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from hexcity.payments.domain.ledger import Transfer, TransferRequest
from hexcity.payments.domain.posting import Posting, check_existing
from hexcity.payments.errors import LinkedTransferFailed, PaymentsError


@dataclass(frozen=True, slots=True)
class TransferResult:
    """Outcome of one transfer of a batch: the stored transfer, or the error that refused it."""

    id: str
    transfer: Transfer | None = None
    error: PaymentsError | None = None
    replayed: bool = False  # the id existed with the same fields: nothing new was applied

    @property
    def ok(self) -> bool:
        return self.error is None


def validate_shapes(requests: Sequence[TransferRequest]) -> dict[int, PaymentsError]:
    errors: dict[int, PaymentsError] = {}
    for index, request in enumerate(requests):
        try:
            request.validate()
        except PaymentsError as exc:
            errors[index] = exc
    return errors


def _chains(requests: Sequence[TransferRequest]) -> Iterator[list[int]]:
    chain: list[int] = []
    for index, request in enumerate(requests):
        chain.append(index)
        if not request.linked:
            yield chain
            chain = []


def post_chains(
    posting: Posting,
    requests: Sequence[TransferRequest],
    shape_errors: dict[int, PaymentsError],
    existing: dict[str, Transfer],
) -> list[TransferResult]:
    results: list[TransferResult | None] = [None] * len(requests)
    applied: dict[str, Transfer] = {}
    for chain in _chains(requests):
        snap = posting.snapshot() if len(chain) > 1 else None
        chain_results: dict[int, TransferResult] = {}
        in_chain: dict[str, Transfer] = {}  # a repeated id inside one chain is a replay too
        failed: tuple[int, PaymentsError] | None = None
        for index in chain:
            request = requests[index]
            try:
                if index in shape_errors:
                    raise shape_errors[index]
                stored = existing.get(request.id) or applied.get(request.id) or in_chain.get(request.id)
                if stored is not None:
                    chain_results[index] = TransferResult(
                        request.id, check_existing(stored, request), replayed=True
                    )
                    continue
                transfer = posting.apply(request)
                in_chain[transfer.id] = transfer
                chain_results[index] = TransferResult(request.id, transfer)
            except PaymentsError as exc:
                failed = (index, exc)
                break
        if failed is not None:
            if snap is not None:  # a lone transfer failed before changing anything
                posting.restore(snap)
            for index in chain:
                error = (
                    failed[1]
                    if index == failed[0]
                    else LinkedTransferFailed(f"not applied: linked transfer {requests[failed[0]].id} failed")
                )
                results[index] = TransferResult(requests[index].id, error=error)
            continue
        for index, result in chain_results.items():
            results[index] = result
            if result.transfer is not None and not result.replayed:
                applied[result.id] = result.transfer
    return [r for r in results if r is not None]
