"""Sagas other modules call: ride (authorise at match, capture at completion, void on cancel)
and flash-sale order (reserve stock → authorise payment → confirm, or release).

Each step is one ledger transaction with deterministic transfer ids (``ride:<trip>:a`` ...), so
a retried step is idempotent: it returns the stored state instead of applying twice. Authorising
is a two-phase *pending* transfer (TigerBeetle-style) that reserves the money in the payer's
wallet; capture posts at most the authorised amount and splits the platform fee off the payee in
the same linked chain; void (or the authorisation timeout, see :meth:`TwoPhasePayments.sweep_expired`)
releases it. Every state change emits an event through the outbox.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from hexcity.payments.adapters import records
from hexcity.payments.adapters.records import Payment
from hexcity.payments.adapters.tables import payments, transfers
from hexcity.payments.chains import apply_transfers
from hexcity.payments.domain import accounts as naming
from hexcity.payments.domain.ledger import (
    Account,
    TransferKind,
    TransferRequest,
    TransferStatus,
    check_amount,
    check_currency,
    check_id,
)
from hexcity.payments.errors import InvalidAmount, InvalidPaymentInput, InvalidPaymentState, PaymentsError

if TYPE_CHECKING:
    from hexcity.payments.service import PaymentService

MAX_SAGA_ID_LENGTH = 48
SWEEP_LIMIT = 1000


class TwoPhasePayments:
    """Authorise → capture / void for one kind of payment (``ride`` or ``order``)."""

    kind = "two_phase"

    def __init__(
        self,
        service: PaymentService,
        payer: Callable[[str, str], Account],
        payee: Callable[[str, str], Account],
    ) -> None:
        self.service = service
        self._payer, self._payee = payer, payee

    def payment_id(self, reference: str) -> str:
        if not isinstance(reference, str) or len(reference) > MAX_SAGA_ID_LENGTH:
            raise InvalidPaymentInput(f"{self.kind} id must be at most {MAX_SAGA_ID_LENGTH} characters")
        return check_id(f"{self.kind}:{reference}", f"{self.kind} id")

    def authorize(
        self, reference: str, payer_id: str, payee_id: str, amount_minor: int, currency: str, timeout_s: int
    ) -> Payment:
        """Reserve ``amount_minor`` in the payer's wallet for ``timeout_s``; idempotent per reference.

        Raises InsufficientFunds / AccountNotFound / CurrencyMismatch (nothing written), or
        :class:`InvalidPaymentState` if the reference was authorised with other parameters.
        """
        payment_id = self.payment_id(reference)
        check_amount(amount_minor)
        check_currency(currency)
        payer, payee = self._payer(payer_id, currency).id, self._payee(payee_id, currency).id

        def work(session: Session) -> Payment:
            now_s = self.service.clock()
            existing = records.find_payment(session, payment_id)
            if existing is not None:
                if (existing.payer_account_id, existing.payee_account_id, existing.currency) != (
                    payer,
                    payee,
                    currency,
                ):
                    raise InvalidPaymentState(f"{payment_id} was authorised with other parameters")
                return existing
            self._apply(
                session,
                TransferRequest(
                    f"{payment_id}:a",
                    payer,
                    payee,
                    amount_minor,
                    currency,
                    kind=TransferKind.PENDING,
                    timeout_s=timeout_s,
                    code=f"{self.kind}_auth",
                    reference=payment_id,
                ),
            )
            payment = records.insert_payment(
                session,
                Payment(
                    payment_id,
                    self.kind,
                    "authorized",
                    payer,
                    payee,
                    amount_minor,
                    0,
                    0,
                    currency,
                    reference,
                    None,
                    now_s,
                    now_s,
                ),
            )
            self.service.emit(session, f"{self.kind}.authorized", payer, payment.to_json(), now_s)
            return payment

        return self.service.ledger.run(work)

    def capture(self, reference: str, amount_minor: int | None = None, fee_minor: int = 0) -> Payment:
        """Post ``amount_minor`` (default: all authorised; never more) and move ``fee_minor`` of it
        from the payee to the platform, atomically. Idempotent: capturing again returns the result."""
        payment_id = self.payment_id(reference)
        if amount_minor is not None:
            check_amount(amount_minor)
        if isinstance(fee_minor, bool) or not isinstance(fee_minor, int) or fee_minor < 0:
            raise InvalidAmount("fee_minor must be a non-negative integer")

        def work(session: Session) -> Payment:
            now_s = self.service.clock()
            payment = records.get_payment(session, payment_id, lock=True)
            final = payment.amount_minor if amount_minor is None else amount_minor
            if payment.status == "captured" and (payment.amount_minor, payment.fee_minor) == (
                final,
                fee_minor,
            ):
                return payment
            if payment.status != "authorized":
                raise InvalidPaymentState(f"{payment_id} is {payment.status}, not authorized")
            if fee_minor >= final and fee_minor:
                raise InvalidAmount("fee_minor must be below the captured amount")
            legs = [
                TransferRequest(
                    f"{payment_id}:c",
                    kind=TransferKind.POST_PENDING,
                    pending_id=f"{payment_id}:a",
                    amount_minor=final,
                    code=f"{self.kind}_capture",
                    reference=payment_id,
                    linked=fee_minor > 0,
                )
            ]
            if fee_minor:
                platform = naming.platform_revenue_account(payment.currency).id
                legs.append(
                    TransferRequest(
                        f"{payment_id}:f",
                        payment.payee_account_id,
                        platform,
                        fee_minor,
                        payment.currency,
                        code="fee",
                        reference=payment_id,
                    )
                )
            self._apply(session, *legs)
            records.update_payment(
                session,
                payment_id,
                status="captured",
                amount_minor=final,
                fee_minor=fee_minor,
                updated_at_s=now_s,
            )
            captured = records.get_payment(session, payment_id)
            self.service.emit(
                session, f"{self.kind}.captured", payment.payer_account_id, captured.to_json(), now_s
            )
            return captured

        return self.service.ledger.run(work)

    def void(self, reference: str) -> Payment:
        """Release the authorisation (cancel); idempotent. A captured payment is refunded instead."""
        payment_id = self.payment_id(reference)

        def work(session: Session) -> Payment:
            now_s = self.service.clock()
            payment = records.get_payment(session, payment_id, lock=True)
            if payment.status in {"voided", "expired"}:
                return payment
            if payment.status != "authorized":
                raise InvalidPaymentState(f"{payment_id} is {payment.status}; refund it instead")
            auth = session.execute(
                select(transfers.c.status).where(transfers.c.id == f"{payment_id}:a")
            ).scalar()
            status = "voided"
            if auth == TransferStatus.EXPIRED.value:
                status = "expired"
            else:
                self._apply(
                    session,
                    TransferRequest(
                        f"{payment_id}:v",
                        kind=TransferKind.VOID_PENDING,
                        pending_id=f"{payment_id}:a",
                        code=f"{self.kind}_void",
                        reference=payment_id,
                    ),
                )
            records.update_payment(session, payment_id, status=status, updated_at_s=now_s)
            done = records.get_payment(session, payment_id)
            self.service.emit(
                session, f"{self.kind}.{status}", payment.payer_account_id, done.to_json(), now_s
            )
            return done

        return self.service.ledger.run(work)

    def sweep_expired(self, now_s: float | None = None) -> int:
        """Expire overdue authorisations in the ledger and mark their payments ``expired``
        (event ``<kind>.expired``); returns how many payments changed. Run periodically."""
        self.service.ledger.expire_pending(now_s, limit=SWEEP_LIMIT)

        def work(session: Session) -> int:
            at_s = self.service.clock() if now_s is None else now_s
            auth_expired = (
                select(transfers.c.id)
                .where(
                    transfers.c.id == payments.c.id + ":a",
                    transfers.c.status == TransferStatus.EXPIRED.value,
                )
                .exists()
            )
            rows = session.execute(
                select(payments.c.id)
                .where(payments.c.kind == self.kind, payments.c.status == "authorized", auth_expired)
                .order_by(payments.c.id)
                .limit(SWEEP_LIMIT)
            ).all()
            changed = 0
            for (payment_id,) in rows:
                payment = records.get_payment(session, payment_id, lock=True)
                if payment.status != "authorized":
                    continue
                records.update_payment(session, payment_id, status="expired", updated_at_s=at_s)
                self.service.emit(
                    session, f"{self.kind}.expired", payment.payer_account_id, {"id": payment_id}, at_s
                )
                changed += 1
            return changed

        return self.service.ledger.run(work)

    def _apply(self, session: Session, *legs: TransferRequest) -> None:
        apply_transfers(self.service.ledger, session, list(legs))


class RidePayments(TwoPhasePayments):
    """Fare authorised from the rider's wallet at match; captured (≤ authorised) to the driver at
    completion with the platform fee split off; voided on cancel."""

    kind = "ride"

    def __init__(self, service: PaymentService) -> None:
        super().__init__(service, naming.wallet_account, naming.driver_account)

    def authorize_fare(
        self,
        trip_id: str,
        rider_id: str,
        driver_id: str,
        fare_minor: int,
        currency: str,
        timeout_s: int | None = None,
    ) -> Payment:
        """Authorise the quoted fare at match (pending transfer rider wallet → driver earnings)."""
        timeout = self.service.settings.ride_authorization_timeout_s if timeout_s is None else timeout_s
        return self.authorize(trip_id, rider_id, driver_id, fare_minor, currency, timeout)

    def complete(self, trip_id: str, final_fare_minor: int, fee_minor: int | None = None) -> Payment:
        """Capture the final fare (≤ authorised); the platform keeps ``fee_minor`` (default
        ``platform_fee_bps`` of the fare), the driver the rest."""
        check_amount(final_fare_minor, "final_fare_minor")
        fee = (
            final_fare_minor * self.service.settings.platform_fee_bps // 10_000
            if fee_minor is None
            else fee_minor
        )
        return self.capture(trip_id, final_fare_minor, fee)

    def cancel(self, trip_id: str) -> Payment:
        return self.void(trip_id)


class StockReservation(Protocol):
    """What the commerce side offers the flash-sale saga (all idempotent per order id)."""

    def reserve(self, order_id: str) -> None: ...

    def confirm(self, order_id: str) -> None: ...

    def release(self, order_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class OrderOutcome:
    """Result of a flash-sale order: ``confirmed``, ``out_of_stock``, ``payment_failed`` or ``released``."""

    order_id: str
    status: str
    payment: Payment | None = None
    error_code: str | None = None


class OrderPayments(TwoPhasePayments):
    """Flash-sale order: reserve stock → authorise payment → confirm stock → capture; on payment
    failure, stock failure or expiry the stock and the money are released (compensations)."""

    kind = "order"

    def __init__(self, service: PaymentService) -> None:
        super().__init__(service, naming.wallet_account, naming.merchant_account)

    def run(
        self,
        order_id: str,
        rider_id: str,
        shop_id: str,
        amount_minor: int,
        currency: str,
        stock: StockReservation,
        *,
        fee_minor: int = 0,
    ) -> OrderOutcome:
        """Run the whole saga; a stock error from ``reserve`` means out of stock."""
        try:
            stock.reserve(order_id)
        except Exception:
            return OrderOutcome(order_id, "out_of_stock")
        try:
            self.authorize(
                order_id,
                rider_id,
                shop_id,
                amount_minor,
                currency,
                self.service.settings.order_payment_timeout_s,
            )
        except PaymentsError as exc:
            stock.release(order_id)
            return OrderOutcome(order_id, "payment_failed", error_code=exc.code)
        try:
            stock.confirm(order_id)
        except Exception:
            payment = self.void(order_id)
            stock.release(order_id)
            return OrderOutcome(order_id, "released", payment, error_code="StockConfirmFailed")
        try:
            payment = self.capture(order_id, amount_minor, fee_minor)
        except PaymentsError as exc:  # e.g. the authorisation expired meanwhile
            self.void(order_id)
            stock.release(order_id)
            return OrderOutcome(order_id, "released", error_code=exc.code)
        return OrderOutcome(order_id, "confirmed", payment)
