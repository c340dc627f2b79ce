"""In-process ``PaymentGateway`` adapters until the payments module is wired in.

:class:`ApprovingGateway` approves everything (the embedded default); :class:`ScriptedGateway`
declines chosen orders (or every n-th) and can raise, for the saga's failure tests. Both are
idempotent on ``idempotency_key`` like the real gateway.
"""

from __future__ import annotations

from collections.abc import Callable

from hexcity.commerce.ports import PaymentResult, PaymentStatus

__all__ = ["ApprovingGateway", "ScriptedGateway"]


class ApprovingGateway:
    """Approves and captures every payment; remembers results per idempotency key (bounded)."""

    def __init__(self, *, max_keys: int = 1_000_000) -> None:
        self._results: dict[str, PaymentResult] = {}
        self._max_keys = max_keys
        self._amounts: dict[str, int] = {}
        self.captured_minor = 0
        self.voided: set[str] = set()

    def decide(self, order_id: str, amount_minor: int) -> PaymentResult:
        return PaymentResult(PaymentStatus.APPROVED, f"pay_{order_id}")

    async def authorize(
        self, order_id: str, amount_minor: int, currency: str, *, idempotency_key: str
    ) -> PaymentResult:
        found = self._results.get(idempotency_key)
        if found is None:
            found = self.decide(order_id, amount_minor)
            if len(self._results) >= self._max_keys:
                self._results.pop(next(iter(self._results)))
            self._results[idempotency_key] = found
            self._amounts[found.payment_id] = amount_minor
        return found

    async def capture(self, payment_id: str, *, idempotency_key: str) -> PaymentResult:
        if idempotency_key not in self._results:
            self._results[idempotency_key] = PaymentResult(PaymentStatus.APPROVED, payment_id)
            self.captured_minor += self._amounts.get(payment_id, 0)
        return self._results[idempotency_key]

    async def void(self, payment_id: str, *, idempotency_key: str) -> None:
        self.voided.add(payment_id)


class ScriptedGateway(ApprovingGateway):
    """Declines when ``declines(order_id)`` is true; raises ``ConnectionError`` when ``fails(order_id)``."""

    def __init__(
        self,
        declines: Callable[[str], bool] = lambda _: False,
        fails: Callable[[str], bool] = lambda _: False,
    ) -> None:
        super().__init__()
        self._declines = declines
        self._fails = fails

    def decide(self, order_id: str, amount_minor: int) -> PaymentResult:
        if self._fails(order_id):
            raise ConnectionError(f"payment provider unreachable for {order_id}")
        if self._declines(order_id):
            return PaymentResult(PaymentStatus.DECLINED, f"pay_{order_id}", "card declined")
        return PaymentResult(PaymentStatus.APPROVED, f"pay_{order_id}")
