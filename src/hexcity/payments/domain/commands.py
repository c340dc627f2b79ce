"""The commands of the idempotent payment API, validated and fingerprinted (pure).

A command's fingerprint (SHA-256 of its canonical JSON) is what an idempotency key is bound to:
the same key with a different fingerprint is :class:`IdempotencyKeyReuse`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from hexcity.payments.domain.ledger import check_amount, check_currency, check_id
from hexcity.payments.errors import InvalidAmount, InvalidPaymentInput, SameAccount

MAX_IDEMPOTENCY_KEY_LENGTH = 255
MAX_REFERENCE_LENGTH = 255


def check_reference(reference: str) -> str:
    if not isinstance(reference, str) or len(reference) > MAX_REFERENCE_LENGTH:
        raise InvalidPaymentInput(f"reference is a string of at most {MAX_REFERENCE_LENGTH} characters")
    return reference


def check_idempotency_key(key: str) -> str:
    """An opaque key of 1..255 printable ASCII characters (UUIDv7 recommended)."""
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH:
        raise InvalidPaymentInput(f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY_LENGTH} characters")
    if not all(32 < ord(c) < 127 for c in key):
        raise InvalidPaymentInput("Idempotency-Key must be printable ASCII without spaces")
    return key


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Command:
    def validate(self) -> Command:
        raise NotImplementedError

    def fingerprint(self) -> str:
        """SHA-256 of the command type and fields as canonical JSON."""
        body = {"type": type(self).__name__, **asdict(self)}
        return sha256_hex(json.dumps(body, sort_keys=True, separators=(",", ":")))


@dataclass(frozen=True, slots=True)
class TopUp(Command):
    """Money arrives from outside (card, bank) into a wallet."""

    wallet_account_id: str
    amount_minor: int
    currency: str
    reference: str = ""

    def validate(self) -> TopUp:
        check_id(self.wallet_account_id, "wallet_account_id")
        check_amount(self.amount_minor)
        check_currency(self.currency)
        check_reference(self.reference)
        return self


@dataclass(frozen=True, slots=True)
class Pay(Command):
    """A customer pays a merchant; the platform keeps ``fee_minor`` of ``amount_minor``."""

    payer_account_id: str
    payee_account_id: str
    amount_minor: int
    currency: str
    fee_minor: int = 0
    reference: str = ""

    def validate(self) -> Pay:
        check_id(self.payer_account_id, "payer_account_id")
        check_id(self.payee_account_id, "payee_account_id")
        check_amount(self.amount_minor)
        check_currency(self.currency)
        check_reference(self.reference)
        if self.payer_account_id == self.payee_account_id:
            raise SameAccount("payer and payee must differ")
        if isinstance(self.fee_minor, bool) or not isinstance(self.fee_minor, int):
            raise InvalidAmount("fee_minor must be an integer")
        if not 0 <= self.fee_minor < self.amount_minor:
            raise InvalidAmount("fee_minor must be within 0 .. amount_minor - 1")
        return self


@dataclass(frozen=True, slots=True)
class Refund(Command):
    """Give back (part of) a payment; ``amount_minor`` 0 = everything not refunded yet."""

    payment_id: str
    amount_minor: int = 0
    reason: str = ""

    def validate(self) -> Refund:
        check_id(self.payment_id, "payment_id")
        if self.amount_minor != 0:
            check_amount(self.amount_minor)
        check_reference(self.reason)
        return self


@dataclass(frozen=True, slots=True)
class Payout(Command):
    """Pay a driver's or merchant's earnings out to their bank (external settlement)."""

    account_id: str
    amount_minor: int
    currency: str
    reference: str = ""

    def validate(self) -> Payout:
        check_id(self.account_id, "account_id")
        check_amount(self.amount_minor)
        check_currency(self.currency)
        check_reference(self.reference)
        return self
