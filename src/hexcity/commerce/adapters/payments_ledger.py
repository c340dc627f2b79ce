"""The checkout saga's :class:`PaymentGateway` on the payments module's ledger.

authorise = a pending transfer from the buyer's wallet to the merchant (the payments module's
order saga, idempotent per order id); the shortfall of an empty wallet is charged to the card on
file first (a top-up from external settlement, idempotent per order); capture posts it, void
cancels it. The gateway's payment id is the order id (the saga's reference).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from hexcity.commerce.domain.catalog import Order
from hexcity.commerce.ports import PaymentResult, PaymentStatus
from hexcity.kernel import HexcityError
from hexcity.payments import PaymentService, TopUp, merchant_account, wallet_account

__all__ = ["LedgerCheckoutPayments"]

DECLINED_CODES = frozenset({"InsufficientFunds", "AccountNotFound", "CurrencyMismatch", "InvalidAmount"})


class LedgerCheckoutPayments:
    """``PaymentGateway`` over ``hexcity.payments`` (``order_of`` reads the order being paid)."""

    def __init__(self, payments: PaymentService, order_of: Callable[[str], Order | None]) -> None:
        self.payments = payments
        self.order_of = order_of

    def _authorize(self, order_id: str, amount_minor: int, currency: str) -> PaymentResult:
        order = self.order_of(order_id)
        if order is None:
            return PaymentResult(PaymentStatus.DECLINED, order_id, "unknown order")
        wallet = wallet_account(order.user_id, currency)
        self.payments.open_accounts([wallet, merchant_account(order.merchant_id, currency)])
        available = self.payments.account(wallet.id).available_minor
        if available < amount_minor:
            self.payments.execute(
                TopUp(wallet.id, amount_minor - available, currency, f"card on file for order {order_id}"),
                idempotency_key=f"order-card:{order_id}",
                scope="commerce",
            )
        timeout_s = self.payments.settings.order_payment_timeout_s
        try:
            self.payments.orders.authorize(
                order_id, order.user_id, order.merchant_id, amount_minor, currency, timeout_s
            )
        except HexcityError as exc:
            if exc.code in DECLINED_CODES:
                return PaymentResult(PaymentStatus.DECLINED, order_id, exc.code)
            raise
        return PaymentResult(PaymentStatus.APPROVED, order_id)

    async def authorize(
        self, order_id: str, amount_minor: int, currency: str, *, idempotency_key: str
    ) -> PaymentResult:
        del idempotency_key  # the payments saga is idempotent per order id
        return await asyncio.to_thread(self._authorize, order_id, amount_minor, currency)

    async def capture(self, payment_id: str, *, idempotency_key: str) -> PaymentResult:
        del idempotency_key
        await asyncio.to_thread(self.payments.orders.capture, payment_id)
        return PaymentResult(PaymentStatus.APPROVED, payment_id)

    async def void(self, payment_id: str, *, idempotency_key: str) -> None:
        del idempotency_key
        await asyncio.to_thread(self.payments.orders.void, payment_id)
