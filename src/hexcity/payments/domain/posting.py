"""Applying transfers to locked account states (pure), after TigerBeetle's transfer semantics.

:class:`Posting` applies a transfer completely — new balances, the stored transfer, two entries
for posted money, the status change of a pending transfer — or raises and changes nothing (all
checks run before the first mutation). A linked chain takes a snapshot to undo its earlier members.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from hexcity.payments.domain.ledger import (
    MAX_AMOUNT_MINOR,
    MIN_BALANCE_MINOR,
    AccountState,
    Entry,
    Overdraft,
    Transfer,
    TransferKind,
    TransferRequest,
    TransferStatus,
)
from hexcity.payments.errors import (
    AccountNotFound,
    AmountExceedsPending,
    BalanceOverflow,
    CurrencyMismatch,
    InsufficientFunds,
    InvalidPaymentInput,
    OverdraftLimitExceeded,
    PendingTransferClosed,
    PendingTransferExpired,
    PendingTransferNotFound,
    TransferExists,
)


def same_request(existing: Transfer, request: TransferRequest) -> bool:
    """Whether ``request`` repeats the transfer already stored under its id (idempotent replay)."""
    if existing.kind is not request.kind or existing.pending_id != request.pending_id:
        return False
    if request.kind in (TransferKind.POSTED, TransferKind.PENDING):
        return (
            existing.debit_account_id == request.debit_account_id
            and existing.credit_account_id == request.credit_account_id
            and existing.amount_minor == request.amount_minor
            and existing.currency == request.currency
            and existing.code == request.code
            and existing.reference == request.reference
            and (existing.expires_at_s is not None) == (request.timeout_s > 0)
        )
    return existing.requested_amount_minor == request.amount_minor and existing.code == request.code


@dataclass(frozen=True, slots=True)
class PostingSnapshot:
    accounts: dict[str, AccountState]
    pending: dict[str, Transfer]
    transfers: int
    entries: int
    closed_pending: dict[str, TransferStatus]


@dataclass(slots=True)
class Posting:
    """Applies transfers to locked account states in memory; the store persists the result.

    ``apply`` either applies a transfer completely (new balances, a stored transfer, two entries
    for posted money, a status change of a pending transfer) or raises and changes nothing.
    """

    accounts: dict[str, AccountState]
    pending: dict[str, Transfer]
    now_s: float
    transfers: list[Transfer] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    closed_pending: dict[str, TransferStatus] = field(default_factory=dict)

    def snapshot(self) -> PostingSnapshot:
        """State to :meth:`restore` if a linked chain fails part-way."""
        return PostingSnapshot(
            accounts={k: replace(v) for k, v in self.accounts.items()},
            pending=dict(self.pending),
            transfers=len(self.transfers),
            entries=len(self.entries),
            closed_pending=dict(self.closed_pending),
        )

    def restore(self, snap: PostingSnapshot) -> None:
        """Undo everything applied since ``snap`` was taken."""
        self.accounts = {k: replace(v) for k, v in snap.accounts.items()}
        self.pending = dict(snap.pending)
        del self.transfers[snap.transfers :]
        del self.entries[snap.entries :]
        self.closed_pending = dict(snap.closed_pending)

    def apply(self, request: TransferRequest) -> Transfer:
        """Apply one validated request; raises a PaymentsError (and changes nothing) on any rule.

        All checks run before the first mutation, so a single failed apply needs no snapshot;
        a linked chain takes a :meth:`snapshot` to undo its earlier members.
        """
        if request.kind is TransferKind.POSTED:
            return self._apply_new(request, pending=False)
        if request.kind is TransferKind.PENDING:
            return self._apply_new(request, pending=True)
        return self._apply_second_phase(request)

    def _state(self, account_id: str) -> AccountState:
        state = self.accounts.get(account_id)
        if state is None:
            raise AccountNotFound(f"account {account_id!r} does not exist")
        return state

    def _apply_new(self, request: TransferRequest, *, pending: bool) -> Transfer:
        debit, credit = self._state(request.debit_account_id), self._state(request.credit_account_id)
        for state in (debit, credit):
            if state.account.currency != request.currency:
                raise CurrencyMismatch(
                    f"account {state.account.id} holds {state.account.currency}, not {request.currency}"
                )
        amount = request.amount_minor
        _check_debit(debit, amount)
        _check_credit(credit, amount)
        transfer = Transfer(
            id=request.id,
            debit_account_id=debit.account.id,
            credit_account_id=credit.account.id,
            amount_minor=amount,
            currency=request.currency,
            kind=request.kind,
            status=TransferStatus.PENDING if pending else TransferStatus.POSTED,
            created_at_s=self.now_s,
            expires_at_s=self.now_s + request.timeout_s if pending and request.timeout_s else None,
            code=request.code,
            reference=request.reference,
            requested_amount_minor=amount,
        )
        if pending:
            debit.pending_debits_minor += amount
            credit.pending_credits_minor += amount
            self.pending[transfer.id] = transfer
        else:
            self._post(transfer, debit, credit, amount)
        self.transfers.append(transfer)
        return transfer

    def _apply_second_phase(self, request: TransferRequest) -> Transfer:
        original = self.pending.get(request.pending_id or "")
        if original is None or original.kind is not TransferKind.PENDING:
            raise PendingTransferNotFound(f"no pending transfer {request.pending_id!r}")
        status = self.closed_pending.get(original.id, original.status)
        if status is not TransferStatus.PENDING:
            raise PendingTransferClosed(f"pending transfer {original.id} is already {status}")
        for given, stored, what in (
            (request.debit_account_id, original.debit_account_id, "debit_account_id"),
            (request.credit_account_id, original.credit_account_id, "credit_account_id"),
            (request.currency, original.currency, "currency"),
        ):
            if given and given != stored:
                raise InvalidPaymentInput(f"{what} differs from the pending transfer's")
        debit, credit = self._state(original.debit_account_id), self._state(original.credit_account_id)
        expired = original.expires_at_s is not None and self.now_s >= original.expires_at_s
        if expired and request.kind is TransferKind.POST_PENDING:
            raise PendingTransferExpired(f"pending transfer {original.id} expired")
        amount = request.amount_minor or original.amount_minor
        if amount > original.amount_minor:
            raise AmountExceedsPending(
                f"post of {amount} exceeds the pending {original.amount_minor} of {original.id}"
            )
        posting = request.kind is TransferKind.POST_PENDING
        if (
            posting
            and credit.balance_minor + credit.pending_credits_minor - original.amount_minor + amount
            > (MAX_AMOUNT_MINOR)
        ):
            raise BalanceOverflow(f"account {credit.account.id} would overflow")
        # every check passed: from here on nothing raises, so a failed apply changes nothing
        debit.pending_debits_minor -= original.amount_minor
        credit.pending_credits_minor -= original.amount_minor
        transfer = Transfer(
            id=request.id,
            debit_account_id=original.debit_account_id,
            credit_account_id=original.credit_account_id,
            amount_minor=amount if posting else original.amount_minor,
            currency=original.currency,
            kind=request.kind,
            status=TransferStatus.POSTED if posting else TransferStatus.VOIDED,
            created_at_s=self.now_s,
            pending_id=original.id,
            code=request.code,
            reference=request.reference,
            requested_amount_minor=request.amount_minor,
        )
        if posting:
            self._post(transfer, debit, credit, amount)
        self.closed_pending[original.id] = TransferStatus.POSTED if posting else TransferStatus.VOIDED
        self.transfers.append(transfer)
        return transfer

    def _post(self, transfer: Transfer, debit: AccountState, credit: AccountState, amount: int) -> None:
        debit.balance_minor -= amount
        credit.balance_minor += amount
        for leg_no, state, other, direction in ((0, debit, credit, "DEBIT"), (1, credit, debit, "CREDIT")):
            state.entry_seq += 1
            self.entries.append(
                Entry(
                    transfer_id=transfer.id,
                    leg_no=leg_no,
                    account_id=state.account.id,
                    counterparty_id=other.account.id,
                    amount_minor=amount,
                    currency=transfer.currency,
                    direction=direction,
                    balance_after_minor=state.balance_minor,
                    account_seq=state.entry_seq,
                    created_at_s=self.now_s,
                )
            )

    def expire(self, pending_id: str) -> None:
        """Release an expired pending transfer (status EXPIRED, reservation returned)."""
        original = self.pending[pending_id]
        if self.closed_pending.get(pending_id, original.status) is not TransferStatus.PENDING:
            return
        self._state(original.debit_account_id).pending_debits_minor -= original.amount_minor
        self._state(original.credit_account_id).pending_credits_minor -= original.amount_minor
        self.closed_pending[pending_id] = TransferStatus.EXPIRED


def _check_debit(state: AccountState, amount: int) -> None:
    floor = state.account.floor_minor
    after = state.available_minor - amount
    if after < MIN_BALANCE_MINOR:
        raise BalanceOverflow(f"account {state.account.id} would overflow")
    if floor is not None and after < floor:
        if state.account.overdraft is Overdraft.LIMITED:
            raise OverdraftLimitExceeded(
                f"account {state.account.id} would pass its limit {state.account.credit_limit_minor}"
            )
        raise InsufficientFunds(
            f"account {state.account.id} has {state.available_minor} available, needs {amount}"
        )


def _check_credit(state: AccountState, amount: int) -> None:
    if state.balance_minor + state.pending_credits_minor + amount > MAX_AMOUNT_MINOR:
        raise BalanceOverflow(f"account {state.account.id} would overflow")


def check_existing(existing: Transfer, request: TransferRequest) -> Transfer:
    """The stored transfer if ``request`` repeats it; :class:`TransferExists` if it differs."""
    if not same_request(existing, request):
        raise TransferExists(f"transfer {request.id} exists with different fields")
    return existing
