"""Campaign cashback with a hard budget, applied asynchronously from payment events.

The budget is a ledger account without overdraft: a grant is a transfer budget → payer wallet
with the deterministic id ``cb:<campaign>:<payment>``, so the row locks that protect every
balance also make "never past the budget" atomic under any concurrency, and a redelivered event
replays instead of paying twice (the dedupe record is the transfer row, written in the grant's
own transaction). A grant larger than the remainder is refused but the campaign stays open until
the remainder is below ``min_grant_minor``; it closes exactly once (conditional UPDATE) and emits
``campaign.exhausted``. Payments never call this module: a slow or stopped campaign worker only
delays cashback.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import CursorResult, insert, select, update
from sqlalchemy.orm import Session

from hexcity.infra.bus.port import Delivery, Handler
from hexcity.kernel.events import Event
from hexcity.payments.adapters.tables import campaigns
from hexcity.payments.chains import apply_transfers
from hexcity.payments.domain import accounts as naming
from hexcity.payments.domain.ledger import TransferRequest, check_amount, check_currency, check_id
from hexcity.payments.errors import (
    CampaignNotFound,
    InsufficientFunds,
    InvalidPaymentInput,
    InvalidPaymentState,
)

if TYPE_CHECKING:
    from hexcity.payments.service import PaymentService

MAX_CAMPAIGN_ID_LENGTH = 24
OPEN, CLOSED = "open", "closed"


@dataclass(frozen=True, slots=True)
class Campaign:
    id: str
    status: str
    budget_account_id: str
    currency: str
    cashback_bps: int
    max_grant_minor: int
    min_grant_minor: int
    merchant_account_id: str | None

    def grant_for(self, amount_minor: int) -> int:
        """Cashback for a payment of ``amount_minor``: bps of it, capped; 0 if below the minimum."""
        grant = min(amount_minor * self.cashback_bps // 10_000, self.max_grant_minor)
        return grant if grant >= self.min_grant_minor else 0


@dataclass(frozen=True, slots=True)
class Grant:
    campaign_id: str
    payment_id: str
    amount_minor: int
    status: str  # granted | replayed | rejected


class Campaigns:
    """Create campaigns and apply ``payment.succeeded`` events to them."""

    def __init__(self, service: PaymentService) -> None:
        self.service = service

    def create(
        self,
        campaign_id: str,
        currency: str,
        budget_minor: int,
        cashback_bps: int,
        max_grant_minor: int,
        *,
        min_grant_minor: int = 1,
        merchant_account_id: str | None = None,
    ) -> Campaign:
        """Open a campaign funded with ``budget_minor`` from external settlement (the sponsor)."""
        if len(campaign_id) > MAX_CAMPAIGN_ID_LENGTH:
            raise InvalidPaymentInput(f"campaign id is at most {MAX_CAMPAIGN_ID_LENGTH} characters")
        check_id(campaign_id, "campaign id")
        check_currency(currency)
        check_amount(budget_minor, "budget_minor")
        check_amount(max_grant_minor, "max_grant_minor")
        check_amount(min_grant_minor, "min_grant_minor")
        if not 1 <= cashback_bps <= 10_000:
            raise InvalidPaymentInput("cashback_bps must be within 1..10000")
        if min_grant_minor > max_grant_minor:
            raise InvalidPaymentInput("min_grant_minor must not exceed max_grant_minor")
        budget = naming.campaign_budget_account(campaign_id, currency)
        self.service.open_accounts([budget])
        campaign = Campaign(
            campaign_id,
            OPEN,
            budget.id,
            currency,
            cashback_bps,
            max_grant_minor,
            min_grant_minor,
            merchant_account_id,
        )

        def work(session: Session) -> Campaign:
            existing = self._find(session, campaign_id)
            if existing is not None:
                if existing.cashback_bps != cashback_bps or existing.currency != currency:
                    raise InvalidPaymentState(f"campaign {campaign_id} exists with other terms")
                return existing
            apply_transfers(
                self.service.ledger,
                session,
                [
                    TransferRequest(
                        f"campaign:{campaign_id}:fund",
                        naming.external_settlement_account(currency).id,
                        budget.id,
                        budget_minor,
                        currency,
                        code="campaign_fund",
                    )
                ],
            )
            session.execute(
                insert(campaigns).values(
                    id=campaign.id,
                    status=OPEN,
                    budget_account_id=budget.id,
                    currency=currency,
                    cashback_bps=cashback_bps,
                    max_grant_minor=max_grant_minor,
                    min_grant_minor=min_grant_minor,
                    merchant_account_id=merchant_account_id,
                    closed_at_s=None,
                )
            )
            return campaign

        return self.service.ledger.run(work)

    def get(self, campaign_id: str) -> Campaign:
        with Session(self.service.ledger.engine) as session:
            found = self._find(session, campaign_id)
        if found is None:
            raise CampaignNotFound(f"campaign {campaign_id!r} does not exist")
        return found

    def remaining_minor(self, campaign_id: str) -> int:
        return self.service.account(self.get(campaign_id).budget_account_id).available_minor

    def handle(self, event: Event) -> list[Grant]:
        """Apply one payment event to every matching open campaign; idempotent per payment."""
        payload = event.payload
        if payload.get("type") != "payment.succeeded":
            return []
        payment_id, payer, payee = (
            payload.get("id"),
            payload.get("payer_account_id"),
            payload.get("payee_account_id"),
        )
        amount, currency = payload.get("amount_minor"), payload.get("currency")
        if not all(isinstance(v, str) for v in (payment_id, payer, payee, currency)) or not isinstance(
            amount, int
        ):
            raise InvalidPaymentInput(f"malformed payment event {event.event_id}")  # poison: goes to the DLQ
        with Session(self.service.ledger.engine) as session:
            open_ids = [
                r.id
                for r in session.execute(
                    select(campaigns.c.id)
                    .where(campaigns.c.status == OPEN, campaigns.c.currency == currency)
                    .order_by(campaigns.c.id)
                )
            ]
        grants = []
        for campaign_id in open_ids:
            grant = self._grant(campaign_id, str(payment_id), str(payer), str(payee), int(amount))
            if grant is not None:
                grants.append(grant)
        return grants

    def _grant(self, campaign_id: str, payment_id: str, payer: str, payee: str, amount: int) -> Grant | None:
        def work(session: Session) -> Grant | None:
            now_s = self.service.clock()
            campaign = self._find(session, campaign_id)
            if campaign is None or campaign.status != OPEN:
                return None
            if campaign.merchant_account_id not in (None, payee):
                return None
            value = campaign.grant_for(amount)
            if value == 0:
                return None
            transfer = TransferRequest(
                f"cb:{campaign_id}:{payment_id}"[:64],
                campaign.budget_account_id,
                payer,
                value,
                campaign.currency,
                code="cashback",
                reference=payment_id,
            )
            result = self.service.ledger.apply_batch(session, [transfer])[0]
            if result.error is not None and not isinstance(result.error, InsufficientFunds):
                raise result.error
            remaining = self.service.ledger.read_account(session, campaign.budget_account_id).available_minor
            if remaining < campaign.min_grant_minor:
                self._close(session, campaign, now_s)
            if result.error is not None:
                return Grant(campaign_id, payment_id, value, "rejected")
            status = "replayed" if result.replayed else "granted"
            if not result.replayed:
                payload = {
                    "campaign_id": campaign_id,
                    "payment_id": payment_id,
                    "wallet_account_id": payer,
                    "amount_minor": value,
                    "currency": campaign.currency,
                }
                self.service.emit(session, "cashback.granted", payer, payload, now_s)
            return Grant(campaign_id, payment_id, value, status)

        return self.service.ledger.run(work)

    def _close(self, session: Session, campaign: Campaign, now_s: float) -> None:
        closed = cast(
            CursorResult[Any],
            session.execute(
                update(campaigns)
                .where(campaigns.c.id == campaign.id, campaigns.c.status == OPEN)
                .values(status=CLOSED, closed_at_s=now_s)
            ),
        )
        if closed.rowcount == 1:  # exactly once, whoever gets here first
            self.service.emit(session, "campaign.exhausted", campaign.id, {"campaign_id": campaign.id}, now_s)

    @staticmethod
    def _find(session: Session, campaign_id: str) -> Campaign | None:
        row = session.execute(select(campaigns).where(campaigns.c.id == campaign_id)).first()
        if row is None:
            return None
        return Campaign(
            row.id,
            row.status,
            row.budget_account_id,
            row.currency,
            int(row.cashback_bps),
            int(row.max_grant_minor),
            int(row.min_grant_minor),
            row.merchant_account_id,
        )


def cashback_handler(campaigns_: Campaigns) -> Handler:
    """An :class:`~hexcity.infra.bus.EventBus` handler for ``payments.events`` (group
    ``payments.cashback``): runs :meth:`Campaigns.handle` on a worker thread. Idempotent by the
    grant's transfer id; a malformed event raises and is dead-lettered by the bus."""

    async def handle(delivery: Delivery) -> None:
        await asyncio.to_thread(campaigns_.handle, delivery.event)

    return handle
