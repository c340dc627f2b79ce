"""Payment use cases: the idempotent payment API (top-up, pay, refund, payout), queries, pruning.

Every call is one ledger transaction (retried on deadlocks, re-validating): the idempotency key's
row, the ledger transfers, the payment record and the outbox event commit together (Stripe-style
keys; the durable claim lives in the same transaction as the work, never only in Redis).

Idempotency: same key + same command → the first response replayed (errors included, 5xx too);
same key + different command → :class:`IdempotencyKeyReuse` (422); a request that fails
validation is not stored; a concurrent duplicate waits for the first on the key's unique row,
then replays its response. Keys are kept ``idempotency_retention_s`` (≥ 24 h), then pruned.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from hexcity.infra.logging import get_logger
from hexcity.payments.adapters import records
from hexcity.payments.adapters.records import REFUNDABLE_STATUSES, SETTLED_KINDS, Payment
from hexcity.payments.adapters.sql_ledger import SqlLedger
from hexcity.payments.campaigns import Campaigns
from hexcity.payments.chains import apply_transfers, chain
from hexcity.payments.domain import accounts as naming
from hexcity.payments.domain.commands import (
    Command,
    Pay,
    Payout,
    Refund,
    TopUp,
    check_idempotency_key,
    sha256_hex,
)
from hexcity.payments.domain.ledger import Account, AccountState, Entry, TransferRequest
from hexcity.payments.domain.reconciliation import ReconciliationReport, Record
from hexcity.payments.errors import (
    IdempotencyKeyReuse,
    InvalidPaymentInput,
    InvalidPaymentState,
    PaymentsError,
    RefundExceedsPayment,
)
from hexcity.payments.reports import reconcile_window
from hexcity.payments.sagas import OrderPayments, RidePayments
from hexcity.payments.settings import PaymentsSettings

log = get_logger(__name__)

MAX_SCOPE_LENGTH = 96
Handler = Callable[[Session, Any, float], tuple[int, dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class ApiResponse:
    """What the HTTP layer returns: status, JSON body, and whether it is a stored replay."""

    status_code: int
    body: dict[str, Any]
    replayed: bool = False


def error_json(exc: PaymentsError) -> dict[str, Any]:
    return {"code": exc.code, "message": exc.message}


class PaymentService:
    """The payments module's entry point; ``rides``, ``orders`` and ``campaigns`` hang off it."""

    def __init__(
        self,
        ledger: SqlLedger,
        settings: PaymentsSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ledger = ledger
        self.settings = settings or PaymentsSettings()
        self.clock = clock
        self.topic = self.settings.events_topic
        self._handlers: dict[type[Command], Handler] = {
            TopUp: self._top_up,
            Pay: self._pay,
            Refund: self._refund,
            Payout: self._payout,
        }
        self.rides = RidePayments(self)
        self.orders = OrderPayments(self)
        self.campaigns = Campaigns(self)

    def create_schema(self) -> None:
        """Create the payments (and outbox) tables if missing."""
        self.ledger.create_schema()

    # -- accounts and queries ----------------------------------------------------------------

    def open_accounts(self, new_accounts: Sequence[Account]) -> list[Account]:
        """Create accounts (idempotent) plus the platform and external accounts of their currencies."""
        currencies = sorted({a.currency for a in new_accounts})
        system = [a for c in currencies for a in naming.system_accounts(c)]
        wanted = {a.id: a for a in [*system, *new_accounts]}
        self.ledger.create_accounts(list(wanted.values()))
        return list(new_accounts)

    def account(self, account_id: str) -> AccountState:
        return self.ledger.account(account_id)

    def entries(self, account_id: str, *, after_seq: int = 0, limit: int = 100) -> list[Entry]:
        return self.ledger.entries(account_id, after_seq=after_seq, limit=limit)

    def payment(self, payment_id: str) -> Payment:
        """A payment record; :class:`PaymentNotFound` if missing."""
        with Session(self.ledger.engine) as session:
            return records.get_payment(session, payment_id)

    def payments_by_reference(self, reference: str, *, limit: int = 100) -> list[Payment]:
        """Payment records carrying ``reference`` (an order or trip id), at most ``limit`` (1..1000)."""
        if not 1 <= limit <= 1000:
            raise InvalidPaymentInput("limit must be within 1..1000")
        with Session(self.ledger.engine) as session:
            return records.payments_with_reference(session, reference, limit)

    def reconcile(
        self,
        expected: Sequence[Record],
        settlement_csv: str,
        *,
        since_s: float,
        until_s: float,
        enqueue: bool = False,
    ) -> ReconciliationReport:
        """Three-way reconciliation of one window; see :func:`hexcity.payments.reports.reconcile_window`."""
        return reconcile_window(
            self, expected, settlement_csv, since_s=since_s, until_s=until_s, enqueue=enqueue
        )

    # -- the idempotent API ------------------------------------------------------------------

    def execute(self, command: Command, *, idempotency_key: str, scope: str) -> ApiResponse:
        """Run ``command`` once per (``scope``, ``idempotency_key``); see the module docstring.

        ``scope`` isolates callers' keys (e.g. the principal's subject). Raises the validation
        error (not stored), :class:`IdempotencyKeyReuse`, or :class:`LedgerBusy` (not stored).
        """
        handler = self._handlers.get(type(command))
        if handler is None:
            raise InvalidPaymentInput(f"unknown command {type(command).__name__}")
        command.validate()
        check_idempotency_key(idempotency_key)
        if not 1 <= len(scope) <= MAX_SCOPE_LENGTH:
            raise InvalidPaymentInput(f"scope must be 1-{MAX_SCOPE_LENGTH} characters")
        key_hash, request_hash = sha256_hex(idempotency_key), command.fingerprint()

        def work(session: Session) -> ApiResponse:
            now_s = self.clock()
            stored = records.find_response(session, scope, key_hash)
            if stored is not None and stored.created_at_s > now_s - self.settings.idempotency_retention_s:
                if stored.request_hash != request_hash:
                    raise IdempotencyKeyReuse("this Idempotency-Key was used with different parameters")
                return ApiResponse(stored.status_code, stored.body, replayed=True)
            if stored is not None:  # expired but not pruned yet: a new request
                records.delete_expired_keys(session, now_s - self.settings.idempotency_retention_s, 1)
            records.claim_key(session, scope, key_hash, request_hash, now_s)
            status_code, body = self._run_handler(session, handler, command, now_s)
            records.store_response(session, scope, key_hash, status_code, body)
            return ApiResponse(status_code, body)

        return self.ledger.run(work)

    def _run_handler(
        self, session: Session, handler: Handler, command: Command, now_s: float
    ) -> tuple[int, dict[str, Any]]:
        savepoint = session.begin_nested()
        try:
            result = handler(session, command, now_s)
        except DBAPIError:
            raise  # the whole transaction is retried (or fails): nothing is stored
        except PaymentsError as exc:
            savepoint.rollback()
            return exc.status, error_json(exc)
        except Exception as exc:  # stored and replayed like Stripe's 500s
            savepoint.rollback()
            log.exception("payments.handler_failed", command=type(command).__name__, error=repr(exc))
            return 500, {"code": "InternalError", "message": "internal error"}
        savepoint.commit()
        return result

    def lookup(self, idempotency_key: str, *, scope: str) -> ApiResponse | None:
        """The stored response of a key (to resolve an UNKNOWN outcome), or None if never executed."""
        check_idempotency_key(idempotency_key)
        with Session(self.ledger.engine) as session:
            stored = records.find_response(session, scope, sha256_hex(idempotency_key))
        return None if stored is None else ApiResponse(stored.status_code, stored.body, replayed=True)

    def prune(self, now_s: float | None = None) -> int:
        """Delete idempotency keys older than the retention; returns how many (one batch)."""
        before_s = (self.clock() if now_s is None else now_s) - self.settings.idempotency_retention_s
        limit = self.settings.prune_batch_size
        return self.ledger.run(lambda session: records.delete_expired_keys(session, before_s, limit))

    # -- command handlers (inside the transaction) -------------------------------------------

    def _top_up(self, session: Session, command: TopUp, now_s: float) -> tuple[int, dict[str, Any]]:
        payment_id = records.new_id("top")
        source = naming.external_settlement_account(command.currency).id
        apply_transfers(
            self.ledger,
            session,
            [
                TransferRequest(
                    f"{payment_id}:t",
                    source,
                    command.wallet_account_id,
                    command.amount_minor,
                    command.currency,
                    code="topup",
                    reference=payment_id,
                )
            ],
        )
        payment = self._record(
            session, payment_id, "topup", source, command.wallet_account_id, command, now_s
        )
        self.emit(session, "topup.succeeded", command.wallet_account_id, payment.to_json(), now_s)
        return 201, payment.to_json()

    def _pay(self, session: Session, command: Pay, now_s: float) -> tuple[int, dict[str, Any]]:
        payment_id = records.new_id("pay")
        legs = [
            TransferRequest(
                f"{payment_id}:p",
                command.payer_account_id,
                command.payee_account_id,
                command.amount_minor,
                command.currency,
                code="payment",
                reference=payment_id,
            )
        ]
        if command.fee_minor:
            platform = naming.platform_revenue_account(command.currency).id
            legs.append(
                TransferRequest(
                    f"{payment_id}:f",
                    command.payee_account_id,
                    platform,
                    command.fee_minor,
                    command.currency,
                    code="fee",
                    reference=payment_id,
                )
            )
        apply_transfers(self.ledger, session, chain(*legs))
        payment = records.insert_payment(
            session,
            Payment(
                payment_id,
                "payment",
                "succeeded",
                command.payer_account_id,
                command.payee_account_id,
                command.amount_minor,
                command.fee_minor,
                0,
                command.currency,
                command.reference,
                None,
                now_s,
                now_s,
            ),
        )
        self.emit(session, "payment.succeeded", command.payer_account_id, payment.to_json(), now_s)
        return 201, payment.to_json()

    def _refund(self, session: Session, command: Refund, now_s: float) -> tuple[int, dict[str, Any]]:
        paid = records.get_payment(session, command.payment_id, lock=True)
        if paid.kind not in SETTLED_KINDS or paid.status not in REFUNDABLE_STATUSES:
            raise InvalidPaymentState(f"{paid.kind} {paid.id} in status {paid.status} cannot be refunded")
        refundable = paid.amount_minor - paid.refunded_minor
        amount = command.amount_minor or refundable
        if refundable <= 0 or amount > refundable:
            raise RefundExceedsPayment(f"refund of {amount} exceeds the {refundable} left of {paid.id}")
        refunded = paid.refunded_minor + amount
        # the platform gives back its fee pro rata; cumulative rounding makes a full refund exact
        fee_back = (
            paid.fee_minor * refunded // paid.amount_minor
            - paid.fee_minor * paid.refunded_minor // paid.amount_minor
        )
        refund_id = records.new_id("ref")
        legs = []
        if amount - fee_back:
            legs.append(
                TransferRequest(
                    f"{refund_id}:r",
                    paid.payee_account_id,
                    paid.payer_account_id,
                    amount - fee_back,
                    paid.currency,
                    code="refund",
                    reference=refund_id,
                )
            )
        if fee_back:
            legs.append(
                TransferRequest(
                    f"{refund_id}:f",
                    naming.platform_revenue_account(paid.currency).id,
                    paid.payer_account_id,
                    fee_back,
                    paid.currency,
                    code="fee_refund",
                    reference=refund_id,
                )
            )
        apply_transfers(self.ledger, session, chain(*legs))
        status = "refunded" if refunded == paid.amount_minor else "partially_refunded"
        records.update_payment(session, paid.id, refunded_minor=refunded, status=status, updated_at_s=now_s)
        refund = records.insert_payment(
            session,
            Payment(
                refund_id,
                "refund",
                "succeeded",
                paid.payee_account_id,
                paid.payer_account_id,
                amount,
                fee_back,
                0,
                paid.currency,
                command.reason,
                paid.id,
                now_s,
                now_s,
            ),
        )
        self.emit(session, "payment.refunded", paid.payer_account_id, refund.to_json(), now_s)
        return 201, refund.to_json()

    def _payout(self, session: Session, command: Payout, now_s: float) -> tuple[int, dict[str, Any]]:
        payment_id = records.new_id("out")
        target = naming.external_settlement_account(command.currency).id
        apply_transfers(
            self.ledger,
            session,
            [
                TransferRequest(
                    f"{payment_id}:o",
                    command.account_id,
                    target,
                    command.amount_minor,
                    command.currency,
                    code="payout",
                    reference=payment_id,
                )
            ],
        )
        payment = self._record(session, payment_id, "payout", command.account_id, target, command, now_s)
        self.emit(session, "payout.succeeded", command.account_id, payment.to_json(), now_s)
        return 201, payment.to_json()

    @staticmethod
    def _record(
        session: Session,
        payment_id: str,
        kind: str,
        payer: str,
        payee: str,
        command: TopUp | Payout,
        now_s: float,
    ) -> Payment:
        return records.insert_payment(
            session,
            Payment(
                payment_id,
                kind,
                "succeeded",
                payer,
                payee,
                command.amount_minor,
                0,
                0,
                command.currency,
                command.reference,
                None,
                now_s,
                now_s,
            ),
        )

    def emit(
        self, session: Session, event_type: str, key: str, payload: dict[str, Any], now_s: float
    ) -> None:
        """Add an event to the outbox (topic ``events_topic``) in the current transaction."""
        records.emit(session, self.topic, event_type, key, payload, now_s)
