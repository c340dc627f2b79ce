"""Double-entry ledger model and the rules of a transfer, after TigerBeetle's transfer semantics.

Pure: no I/O. A store loads the touched :class:`AccountState` rows (locked), the transfers that
already use the requested ids and the pending transfers referenced, hands them to a ``Posting``
(``domain/posting.py``) and writes back what it produced. Every rule is re-checked on every attempt.

Sign convention: ``balance = credits - debits``; a debit lowers the balance. An account's floor
is 0 (overdraft NONE), ``-credit_limit`` (LIMITED) or none (UNBOUNDED: external settlement).
Pending transfers reserve the amount on the debit side (``pending_debits``) so that the available
balance ``balance - pending_debits`` respects the floor.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from hexcity.payments.errors import (
    InvalidAmount,
    InvalidPaymentInput,
    SameAccount,
)

MAX_AMOUNT_MINOR = 2**63 - 1  # amounts are 1 .. 2^63 - 1 minor units (signed 64-bit columns)
MIN_BALANCE_MINOR = -(2**63) + 1
MAX_ID_LENGTH = 64
MAX_TIMEOUT_S = 7 * 86_400
_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")
_CURRENCY_PATTERN = re.compile(r"^[A-Z]{3}$")


class AccountKind(StrEnum):
    WALLET = "wallet"
    MERCHANT = "merchant"
    DRIVER_EARNINGS = "driver_earnings"
    PLATFORM_REVENUE = "platform_revenue"
    CAMPAIGN_BUDGET = "campaign_budget"
    EXTERNAL_SETTLEMENT = "external_settlement"


class Overdraft(StrEnum):
    NONE = "none"  # the default: never below zero
    LIMITED = "limited"  # down to -credit_limit_minor
    UNBOUNDED = "unbounded"  # only designated external accounts


class TransferKind(StrEnum):
    POSTED = "posted"  # a plain transfer, applied at once
    PENDING = "pending"  # phase one: reserve on the debit account
    POST_PENDING = "post_pending"  # phase two: apply (part of) a pending transfer
    VOID_PENDING = "void_pending"  # phase two: release a pending transfer


class TransferStatus(StrEnum):
    POSTED = "posted"
    PENDING = "pending"
    VOIDED = "voided"
    EXPIRED = "expired"


def check_id(value: str, what: str) -> str:
    """``value`` if it is 1-64 characters of ``[A-Za-z0-9_.:-]``; else :class:`InvalidPaymentInput`."""
    if not isinstance(value, str) or not _ID_PATTERN.match(value):
        raise InvalidPaymentInput(f"{what} must be 1-{MAX_ID_LENGTH} characters of A-Z a-z 0-9 _ . : -")
    return value


def check_currency(value: str) -> str:
    """``value`` if it is an ISO-4217-shaped code (three capital letters)."""
    if not isinstance(value, str) or not _CURRENCY_PATTERN.match(value):
        raise InvalidPaymentInput(f"currency must be three capital letters, got {value!r}")
    return value


def check_amount(amount_minor: int, what: str = "amount_minor") -> int:
    """``amount_minor`` if it is an int in 1 .. 2^63 - 1; else :class:`InvalidAmount`."""
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
        raise InvalidAmount(f"{what} must be an integer number of minor units")
    if amount_minor <= 0:
        raise InvalidAmount(f"{what} must be positive, got {amount_minor}")
    if amount_minor > MAX_AMOUNT_MINOR:
        raise InvalidAmount(f"{what} must be below 2^63")
    return amount_minor


@dataclass(frozen=True, slots=True)
class Account:
    """A ledger account; ``owner_kind``/``owner_id`` say who may see it (rider, driver, shop)."""

    id: str
    kind: AccountKind
    currency: str
    overdraft: Overdraft = Overdraft.NONE
    credit_limit_minor: int = 0
    owner_kind: str | None = None
    owner_id: str | None = None

    def validate(self) -> Account:
        check_id(self.id, "account id")
        check_currency(self.currency)
        if self.overdraft is Overdraft.LIMITED:
            check_amount(self.credit_limit_minor, "credit_limit_minor")
        elif self.credit_limit_minor != 0:
            raise InvalidPaymentInput("credit_limit_minor is only allowed with overdraft 'limited'")
        if self.overdraft is Overdraft.UNBOUNDED and self.kind is not AccountKind.EXTERNAL_SETTLEMENT:
            raise InvalidPaymentInput("only external_settlement accounts may have an unbounded overdraft")
        if (self.owner_kind is None) != (self.owner_id is None):
            raise InvalidPaymentInput("owner_kind and owner_id go together")
        if self.owner_kind is not None and self.owner_kind not in {"rider", "driver", "shop"}:
            raise InvalidPaymentInput("owner_kind must be rider, driver or shop")
        return self

    @property
    def floor_minor(self) -> int | None:
        """Lowest allowed available balance, ``None`` for no floor."""
        if self.overdraft is Overdraft.UNBOUNDED:
            return None
        return -self.credit_limit_minor if self.overdraft is Overdraft.LIMITED else 0


@dataclass(slots=True)
class AccountState:
    """An account with its balances as locked in the current transaction."""

    account: Account
    balance_minor: int = 0
    pending_debits_minor: int = 0
    pending_credits_minor: int = 0
    entry_seq: int = 0  # number of entries written for this account so far

    @property
    def available_minor(self) -> int:
        return self.balance_minor - self.pending_debits_minor


@dataclass(frozen=True, slots=True)
class TransferRequest:
    """One transfer to apply. ``linked=True`` chains it with the next one in the batch (all or none).

    POST_PENDING / VOID_PENDING name the pending transfer in ``pending_id``; their debit/credit
    accounts and currency may be left empty (taken from the pending transfer); a POST_PENDING
    ``amount_minor`` of 0 means the full pending amount. ``timeout_s`` (PENDING only, 0 = none)
    voids the reservation when it passes.
    """

    id: str
    debit_account_id: str = ""
    credit_account_id: str = ""
    amount_minor: int = 0
    currency: str = ""
    kind: TransferKind = TransferKind.POSTED
    pending_id: str | None = None
    timeout_s: int = 0
    linked: bool = False
    code: str = "transfer"
    reference: str = ""

    def validate(self) -> TransferRequest:
        """Shape checks that need no stored state; raises an InvalidInput-family error."""
        check_id(self.id, "transfer id")
        check_id(self.code, "transfer code")
        if len(self.reference) > 255:
            raise InvalidPaymentInput("reference is at most 255 characters")
        if self.kind in (TransferKind.POSTED, TransferKind.PENDING):
            check_id(self.debit_account_id, "debit_account_id")
            check_id(self.credit_account_id, "credit_account_id")
            check_currency(self.currency)
            check_amount(self.amount_minor)
            if self.debit_account_id == self.credit_account_id:
                raise SameAccount("debit and credit account must differ")
            if self.pending_id is not None:
                raise InvalidPaymentInput("pending_id is only for post_pending / void_pending")
        else:
            if self.pending_id is None:
                raise InvalidPaymentInput(f"{self.kind} needs pending_id")
            check_id(self.pending_id, "pending_id")
            if self.amount_minor != 0:
                check_amount(self.amount_minor)
        if self.timeout_s != 0 and (self.kind is not TransferKind.PENDING):
            raise InvalidPaymentInput("timeout_s is only for pending transfers")
        if not 0 <= self.timeout_s <= MAX_TIMEOUT_S:
            raise InvalidPaymentInput(f"timeout_s must be within 0..{MAX_TIMEOUT_S}")
        return self


@dataclass(frozen=True, slots=True)
class Transfer:
    """A stored transfer. For PENDING transfers ``status`` moves to POSTED/VOIDED/EXPIRED."""

    id: str
    debit_account_id: str
    credit_account_id: str
    amount_minor: int
    currency: str
    kind: TransferKind
    status: TransferStatus
    created_at_s: float
    pending_id: str | None = None
    expires_at_s: float | None = None
    code: str = "transfer"
    reference: str = ""
    requested_amount_minor: int = 0  # what the request asked (0 = full pending), for idempotency


@dataclass(frozen=True, slots=True)
class Entry:
    """One leg of a transfer (leg 0 = debit, leg 1 = credit), with the balance after it."""

    transfer_id: str
    leg_no: int
    account_id: str
    counterparty_id: str
    amount_minor: int
    currency: str
    direction: str  # "DEBIT" | "CREDIT"
    balance_after_minor: int
    account_seq: int
    created_at_s: float
