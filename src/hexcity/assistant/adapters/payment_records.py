"""Platform records from the payments module (through ``hexcity.payments`` only).

A customer's payment (a card/wallet ``payment``, a ride fare, an order payment — paid from a
wallet the customer owns) becomes a ``payment`` record; a refund paid back into such a wallet
becomes a ``refund`` record linked ``REFUNDS`` to the payment it reverses. What a payment paid
for is a link ``PAID_FOR``: a ride fare's reference is its trip id and an order payment's its
order id (the payments module sets both from the trip/order it charges, payer = that trip's
rider / order's buyer). A plain ``payment`` names a free-form reference chosen by its caller, so
it is linked only to a record the customer is already known to own (``own``): a reference to
someone else's order never plants an edge towards it.

The same function reads a stored payment (``Payment.to_json()``) and a ``payments.events``
payload (which carries ``Payment.to_json()`` plus ``type``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from hexcity.assistant.adapters.trip_records import money, utc_time
from hexcity.assistant.domain.records import PlatformRecord
from hexcity.payments import CustomerPayments, PaymentsError, wallet_account

PAID_KINDS = frozenset({"payment", "ride", "order"})
MAX_PAYMENTS_PER_CUSTOMER = 50
_PAID_FOR = {"ride": "trip", "order": "order"}


def wallet_owner(account_id: str) -> str | None:
    """The customer owning wallet ``account_id`` (``wallet:<owner>:<currency>``), else None."""
    if not account_id.startswith("wallet:"):
        return None
    owner, _, currency = account_id.removeprefix("wallet:").rpartition(":")
    if not owner:
        return None
    try:
        return owner if wallet_account(owner, currency).id == account_id else None
    except PaymentsError:
        return None


def customer_of_payment(payment: Mapping[str, Any]) -> str | None:
    """The customer whose money this is: the paying wallet's owner, or a refund's receiving one."""
    kind = payment.get("kind")
    if kind in PAID_KINDS:
        return wallet_owner(str(payment.get("payer_account_id", "")))
    if kind == "refund":
        return wallet_owner(str(payment.get("payee_account_id", "")))
    return None


def record_from_payment(
    payment: Mapping[str, Any], customer_id: str, *, own: Collection[str] = ()
) -> PlatformRecord | None:
    """The customer's record of one payment or refund; None for other kinds (top-ups, payouts).

    ``own``: node ids (``order:<id>``, ``trip:<id>``) the customer is known to own, the only
    targets a plain payment's free-form reference may link to. Raises KeyError/TypeError/
    ValueError on a malformed payment.
    """
    kind = str(payment["kind"])
    if kind not in PAID_KINDS and kind != "refund":
        return None
    currency = str(payment["currency"])
    attrs = {
        "status": str(payment["status"]),
        "amount": money(int(payment["amount_minor"]), currency),
        "created_at": utc_time(float(payment["created_at_s"])),
    }
    reference = str(payment.get("reference") or "")
    links: list[tuple[str, str, str, str]] = []
    if kind == "refund":
        if reference:
            attrs["reason"] = reference
        parent = payment.get("parent_id")
        if parent:
            attrs["refunds"] = str(parent)
            links.append(("REFUNDS", "payment", str(parent), ""))
        return PlatformRecord("refund", str(payment["id"]), customer_id, attrs, tuple(links))
    attrs["type"] = kind
    refunded = int(payment.get("refunded_minor") or 0)
    if refunded:
        attrs["refunded"] = money(refunded, currency)
    target_kind = _PAID_FOR.get(kind)
    if target_kind is None and reference:
        target_kind = next((k for k in ("order", "trip") if f"{k}:{reference}" in own), None)
        if target_kind is None:
            attrs["reference"] = reference
    if target_kind is not None and reference:
        attrs["paid_for"] = f"{target_kind} {reference}"
        links.append(("PAID_FOR", target_kind, reference, ""))
    return PlatformRecord("payment", str(payment["id"]), customer_id, attrs, tuple(links))


class PaymentRecordReader:
    """Payments and refunds of a customer over :class:`hexcity.payments.CustomerPayments`, newest
    first; ``own`` as in :func:`record_from_payment` (the composite reader passes the ids of the
    customer's orders and trips it read first)."""

    def __init__(self, payments: CustomerPayments) -> None:
        self._payments = payments

    def records_for(
        self, customer_id: str, *, limit: int, own: Collection[str] = ()
    ) -> Sequence[PlatformRecord]:
        bounded = max(0, min(limit, MAX_PAYMENTS_PER_CUSTOMER))
        if bounded == 0:
            return []
        records = []
        for payment in self._payments.payments_of_customer(customer_id, bounded):
            record = record_from_payment(payment.to_json(), customer_id, own=own)
            if record is not None:
                records.append(record)
        return records
