"""Payments errors: one small tree, each with a stable ``code`` and an HTTP ``status``.

Ledger errors are raised before anything is written (a transfer either applies completely or
leaves no trace). The HTTP layer maps every error to ``{"code": ..., "message": ...}``.
"""

from __future__ import annotations

from hexcity.kernel import HexcityError, InvalidInput, NotFound, Unavailable


class PaymentsError(HexcityError):
    """Base of payments errors."""

    code = "PaymentsError"
    status = 400


class InvalidPaymentInput(PaymentsError, InvalidInput):
    """Malformed ids, currencies, flags or combinations of fields."""

    code = "InvalidInput"
    status = 400


class InvalidAmount(PaymentsError, InvalidInput):
    """An amount that is zero, negative or not below 2^63 minor units."""

    code = "InvalidAmount"
    status = 400


class SameAccount(PaymentsError, InvalidInput):
    """Debit and credit account are the same."""

    code = "SameAccount"
    status = 400


class AccountNotFound(PaymentsError, NotFound):
    code = "AccountNotFound"
    status = 404


class AccountExists(PaymentsError):
    """An account id already exists with different fields."""

    code = "AccountExists"
    status = 409


class CurrencyMismatch(PaymentsError):
    """The transfer's currency differs from an account's currency."""

    code = "CurrencyMismatch"
    status = 422


class InsufficientFunds(PaymentsError):
    """The debit would take an account without overdraft below zero."""

    code = "InsufficientFunds"
    status = 409


class OverdraftLimitExceeded(PaymentsError):
    """The debit would take an account below minus its credit limit."""

    code = "OverdraftLimitExceeded"
    status = 409


class BalanceOverflow(PaymentsError):
    """A balance would leave the signed 64-bit range."""

    code = "BalanceOverflow"
    status = 409


class TransferExists(PaymentsError):
    """A transfer id is already used by a transfer with different fields."""

    code = "TransferExists"
    status = 409


class PendingTransferNotFound(PaymentsError, NotFound):
    code = "PendingTransferNotFound"
    status = 404


class PendingTransferClosed(PaymentsError):
    """The pending transfer was already posted, voided or expired."""

    code = "PendingTransferClosed"
    status = 409


class PendingTransferExpired(PaymentsError):
    code = "PendingTransferExpired"
    status = 409


class AmountExceedsPending(PaymentsError):
    """A post asks for more than the pending transfer reserved."""

    code = "AmountExceedsPending"
    status = 409


class LinkedTransferFailed(PaymentsError):
    """Another transfer of the same linked chain failed, so this one was not applied."""

    code = "LinkedTransferFailed"
    status = 409


class LedgerBusy(PaymentsError, Unavailable):
    """Deadlock / serialization retries exhausted: nothing was applied; retry later."""

    code = "LedgerBusy"
    status = 503


class IdempotencyKeyReuse(PaymentsError):
    """The idempotency key was used before with different parameters."""

    code = "IdempotencyKeyReuse"
    status = 422


class PaymentNotFound(PaymentsError, NotFound):
    code = "PaymentNotFound"
    status = 404


class RefundExceedsPayment(PaymentsError):
    """The refunds of a payment would exceed what was paid."""

    code = "RefundExceedsPayment"
    status = 409


class InvalidPaymentState(PaymentsError):
    """The payment or saga is not in a state that allows this operation."""

    code = "InvalidPaymentState"
    status = 409


class CampaignNotFound(PaymentsError, NotFound):
    code = "CampaignNotFound"
    status = 404


class InvalidSettlementFile(PaymentsError, InvalidInput):
    """A settlement CSV row is malformed (line number in the message)."""

    code = "InvalidSettlementFile"
    status = 400
