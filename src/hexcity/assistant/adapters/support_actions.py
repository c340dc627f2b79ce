"""The assistant's support actions over the business modules' public services (their ``__init__`` only).

* ``quote_ride``: dispatch's own quote (the road route on the loaded graph × the pickup cell's
  surge, stored and locked like any quote), with the fare breakdown the ``fare-breakdown`` card
  shows: the fare before surge from the product's tariff and the route, the locked multiplier, the
  total (= the quote's price), the platform's fee (payments' ``platform_fee_bps`` of the total) and
  how long the quote stays valid.
* ``request_refund``: a real ``Refund`` through the idempotent payments API, for the payment of an
  order the customer owns (the order is the customer's per ``orders_of`` AND the payment was made
  from the customer's wallet); the amount never exceeds what is left to refund (payments checks it
  in the same transaction). The idempotency key is the caller's (``Idempotency-Key``) or derived
  from (customer, order, reason); keys are scoped per customer, so one customer's key can never
  replay another's refund.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Callable, Sequence
from decimal import ROUND_HALF_UP, Decimal

from hexcity.assistant.errors import RecordNotFound
from hexcity.assistant.ports import RefundResult
from hexcity.dispatch import DispatchService
from hexcity.kernel import HexcityError, InvalidInput, LatLng, Unavailable
from hexcity.payments import Payment, PaymentService, PaymentsSettings, Refund, wallet_account

MAX_ORDERS_PER_CUSTOMER = 200
MAX_REASON_CHARS = 200
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_REFUNDABLE = frozenset({"captured", "succeeded", "partially_refunded"})
_PAID_KINDS = frozenset({"order", "payment"})


class NothingToRefund(HexcityError):
    """The order's payment is already refunded in full (or was never captured)."""

    code = "NothingToRefund"
    status = 409


class RefundFailed(HexcityError):
    """Payments refused the refund; ``code``/``status`` are payments' own."""

    code = "RefundFailed"
    status = 409


class PlatformSupportActions:
    """:class:`~hexcity.assistant.ports.SupportActions` over dispatch, payments and order ownership.

    ``orders_of(customer_id)`` lists the customer's order ids (e.g. fulfillment's
    ``SqlAllocationStore.orders_of_customer``); a missing service makes its action ``Unavailable``.
    """

    def __init__(
        self,
        *,
        dispatch: DispatchService | None = None,
        payments: PaymentService | None = None,
        orders_of: Callable[[str, int], Sequence[str]] | None = None,
    ) -> None:
        self.dispatch = dispatch
        self.payments = payments
        self.orders_of = orders_of
        self.fee_bps = (payments.settings if payments is not None else PaymentsSettings()).platform_fee_bps

    # -- quotes ------------------------------------------------------------------------------------
    async def quote_ride(
        self, rider_id: str, pickup: tuple[float, float], dropoff: tuple[float, float], product: str
    ) -> dict[str, int | float | str]:
        if self.dispatch is None:
            raise Unavailable(
                "ride quotes are not available (dispatch is not running)", code="ActionUnavailable"
            )
        stored = await self.dispatch.quote(
            rider_id, LatLng(pickup[0], pickup[1]), LatLng(dropoff[0], dropoff[1]), product
        )
        tariff = self.dispatch.tariffs[stored.product]
        metered = (
            Decimal(tariff.base_cents)
            + Decimal(tariff.per_km_cents) * _dec(stored.distance_m) / Decimal(1000)
            + Decimal(tariff.per_min_cents) * _dec(stored.duration_s) / Decimal(60)
        )
        base = max(Decimal(tariff.minimum_cents), metered).quantize(Decimal(1), rounding=ROUND_HALF_UP)
        return {
            "quote_id": stored.quote_id,
            "product": stored.product,
            "base_fare_cents": int(base),
            "surge_multiplier": float(stored.multiplier),
            "total_cents": stored.amount_cents,
            "platform_fee_cents": stored.amount_cents * self.fee_bps // 10_000,
            "valid_for_s": max(0, int(stored.expires_at_s - stored.issued_at_s)),
            "currency": stored.currency,
            "distance_m": round(stored.distance_m, 1),
            "duration_s": round(stored.duration_s, 1),
        }

    # -- refunds -----------------------------------------------------------------------------------
    async def refundable_cents(self, customer_id: str, order_id: str) -> int:
        payments = self._payments()
        _, paid = await asyncio.to_thread(self._paid, payments, customer_id, order_id)
        return max(0, paid.amount_minor - paid.refunded_minor) if paid is not None else 0

    async def request_refund(
        self,
        customer_id: str,
        order_id: str,
        reason: str,
        *,
        amount_cents: int = 0,
        idempotency_key: str | None = None,
    ) -> RefundResult:
        payments = self._payments()
        reason = _reason(reason)
        if isinstance(amount_cents, bool) or not isinstance(amount_cents, int) or amount_cents < 0:
            raise InvalidInput("amount_cents must be a non-negative integer (0 = all that is left)")
        return await asyncio.to_thread(
            self._refund, payments, customer_id, order_id, reason, amount_cents, idempotency_key
        )

    def _refund(
        self,
        payments: PaymentService,
        customer_id: str,
        order_id: str,
        reason: str,
        amount_cents: int,
        idempotency_key: str | None,
    ) -> RefundResult:
        own, paid = self._paid(payments, customer_id, order_id)
        key = idempotency_key or _digest(f"{customer_id}\n{order_id}\n{reason}")
        if paid is None:  # all refunded: a repeat of the request that did it still gets its answer
            stored = payments.lookup(key, scope=_scope(customer_id))
            if stored is None or stored.status_code >= 400 or stored.body.get("parent_id") not in own:
                raise NothingToRefund(f"order {order_id} has no payment left to refund")
            response = stored
            payment_id = str(stored.body.get("parent_id"))
        else:
            command = Refund(paid.id, amount_cents, f"assistant: {reason}")
            response = payments.execute(command, idempotency_key=key, scope=_scope(customer_id))
            payment_id = paid.id
        body = response.body
        if response.status_code >= 400:
            raise RefundFailed(
                str(body.get("message", "refund refused")),
                code=str(body.get("code", RefundFailed.code)),
                status=response.status_code,
            )
        return RefundResult(
            refund_id=str(body["id"]),
            order_id=order_id,
            payment_id=payment_id,
            amount_cents=int(body["amount_minor"]),
            currency=str(body["currency"]),
            status=str(body["status"]),
            replayed=response.replayed,
        )

    def _paid(
        self, payments: PaymentService, customer_id: str, order_id: str
    ) -> tuple[frozenset[str], Payment | None]:
        """The ids of the customer's payments of their own ``order_id`` and the one to refund (None
        if nothing is left); :class:`RecordNotFound` if the order is not theirs (exactly like a
        missing one) or they paid nothing for it."""
        if not _ID.fullmatch(order_id or "") or self.orders_of is None:
            raise RecordNotFound(f"no order {order_id!r} on your account")
        if order_id not in set(self.orders_of(customer_id, MAX_ORDERS_PER_CUSTOMER)):
            raise RecordNotFound(f"no order {order_id!r} on your account")
        own = [
            p
            for p in payments.payments_by_reference(order_id, limit=100)
            if p.kind in _PAID_KINDS and _paid_by(p, customer_id)
        ]
        if not own:
            raise RecordNotFound(f"no payment of order {order_id!r} on your account")
        open_ = [p for p in own if p.status in _REFUNDABLE and p.amount_minor > p.refunded_minor]
        chosen = min(open_, key=lambda p: (p.created_at_s, p.id)) if open_ else None
        return frozenset(p.id for p in own), chosen

    def _payments(self) -> PaymentService:
        if self.payments is None:
            raise Unavailable("refunds are not available (payments is not running)", code="ActionUnavailable")
        return self.payments


def _paid_by(payment: Payment, customer_id: str) -> bool:
    try:
        return payment.payer_account_id == wallet_account(customer_id, payment.currency).id
    except HexcityError:  # a subject that cannot name a wallet owns none
        return False


def _reason(reason: str) -> str:
    text = " ".join(str(reason).split())[:MAX_REASON_CHARS]
    if not text:
        raise InvalidInput("a refund needs a reason")
    return text


def _scope(customer_id: str) -> str:
    return f"assistant:{_digest(customer_id)[:40]}"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _dec(x: float) -> Decimal:
    return Decimal(repr(float(x)))
