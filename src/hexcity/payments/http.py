"""The payments HTTP API: ``build_payments_router(service)`` → ``/payments/v1/...``.

Thin: validate the body (pydantic, strict integers), check scope and ownership, call the
service on a worker thread, answer JSON. Writes that move money take an ``Idempotency-Key``
header (1-255 printable characters, UUIDv7 recommended); a replayed response carries
``Idempotent-Replayed: true``. Every error is ``{"code": ..., "message": ...}``.

Scopes: ``payments:read`` / ``payments:write`` for the payment API (the caller must own the
wallet or account: rider → its wallet, driver → its earnings, merchant → its shop; admins all),
``ledger:read`` / ``ledger:write`` for the raw ledger (accounts, transfer batches).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Header, Query
from pydantic import BaseModel, ConfigDict, Field, StrictInt
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse

from hexcity.infra.auth import Forbidden, Principal, authorize_owner, require
from hexcity.kernel import HexcityError
from hexcity.payments.domain.commands import Command, Pay, Payout, Refund, TopUp
from hexcity.payments.domain.ledger import (
    Account,
    AccountKind,
    AccountState,
    Overdraft,
    Transfer,
    TransferKind,
    TransferRequest,
)
from hexcity.payments.errors import InvalidPaymentInput
from hexcity.payments.service import PaymentService

T = TypeVar("T")
PREFIX = "/payments/v1"
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]

ReadCaller = Annotated[Principal, Depends(require("payments:read"))]
WriteCaller = Annotated[Principal, Depends(require("payments:write"))]
LedgerReader = Annotated[Principal, Depends(require("ledger:read"))]
LedgerWriter = Annotated[Principal, Depends(require("ledger:write"))]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TopUpBody(_Body):
    wallet_account_id: str = Field(max_length=64)
    amount_minor: StrictInt
    currency: str = Field(max_length=3)
    reference: str = Field(default="", max_length=255)


class PayBody(_Body):
    payer_account_id: str = Field(max_length=64)
    payee_account_id: str = Field(max_length=64)
    amount_minor: StrictInt
    currency: str = Field(max_length=3)
    fee_minor: StrictInt = 0
    reference: str = Field(default="", max_length=255)


class RefundBody(_Body):
    amount_minor: StrictInt = 0
    reason: str = Field(default="", max_length=255)


class PayoutBody(_Body):
    account_id: str = Field(max_length=64)
    amount_minor: StrictInt
    currency: str = Field(max_length=3)
    reference: str = Field(default="", max_length=255)


class AccountBody(_Body):
    id: str = Field(max_length=64)
    kind: AccountKind
    currency: str = Field(max_length=3)
    overdraft: Overdraft = Overdraft.NONE
    credit_limit_minor: StrictInt = 0
    owner_kind: Literal["rider", "driver", "shop"] | None = None
    owner_id: str | None = Field(default=None, max_length=64)


class AccountsBody(_Body):
    accounts: list[AccountBody] = Field(min_length=1, max_length=1000)


class TransferBody(_Body):
    id: str = Field(max_length=64)
    debit_account_id: str = Field(default="", max_length=64)
    credit_account_id: str = Field(default="", max_length=64)
    amount_minor: StrictInt = 0
    currency: str = Field(default="", max_length=3)
    kind: TransferKind = TransferKind.POSTED
    pending_id: str | None = Field(default=None, max_length=64)
    timeout_s: StrictInt = 0
    linked: bool = False
    code: str = Field(default="transfer", max_length=64)
    reference: str = Field(default="", max_length=255)


class TransfersBody(_Body):
    transfers: list[TransferBody] = Field(min_length=1, max_length=8190)


def error_response(exc: HexcityError) -> JSONResponse:
    headers = {"Retry-After": "1"} if exc.status in (429, 503) else None
    return JSONResponse({"code": exc.code, "message": exc.message}, exc.status, headers=headers)


def account_json(state: AccountState) -> dict[str, Any]:
    a = state.account
    return {
        "id": a.id,
        "kind": a.kind.value,
        "currency": a.currency,
        "overdraft": a.overdraft.value,
        "credit_limit_minor": a.credit_limit_minor,
        "owner_kind": a.owner_kind,
        "owner_id": a.owner_id,
        "balance_minor": state.balance_minor,
        "pending_debits_minor": state.pending_debits_minor,
        "available_minor": state.available_minor,
    }


def transfer_json(t: Transfer) -> dict[str, Any]:
    return {
        "id": t.id,
        "debit_account_id": t.debit_account_id,
        "credit_account_id": t.credit_account_id,
        "amount_minor": t.amount_minor,
        "currency": t.currency,
        "kind": t.kind.value,
        "status": t.status.value,
        "pending_id": t.pending_id,
        "created_at_s": t.created_at_s,
        "expires_at_s": t.expires_at_s,
    }


def build_payments_router(service: PaymentService) -> APIRouter:
    """The payments routes; mount with ``app.include_router``. Needs ``install_auth`` on the app."""
    router = APIRouter(prefix=PREFIX, tags=["payments"])

    async def call(fn: Callable[[], T]) -> T | JSONResponse:
        try:
            return await run_in_threadpool(fn)
        except HexcityError as exc:
            return error_response(exc)

    def owns_account(principal: Principal, account_id: str) -> None:
        account = service.account(account_id).account
        if principal.is_admin:
            return
        if account.owner_kind not in ("rider", "driver", "shop") or account.owner_id is None:
            raise Forbidden("only admins may use platform accounts")
        authorize_owner(principal, account.owner_kind, account.owner_id)  # type: ignore[arg-type]

    async def execute(
        principal: Principal, key: str | None, command: Command, owned: list[str]
    ) -> JSONResponse:
        def run() -> JSONResponse:
            if key is None:
                raise InvalidPaymentInput("the Idempotency-Key header is required")
            for account_id in owned:
                owns_account(principal, account_id)
            response = service.execute(
                command, idempotency_key=key, scope=f"{principal.role}:{principal.subject}"[:96]
            )
            headers = {"Idempotent-Replayed": "true"} if response.replayed else None
            return JSONResponse(response.body, response.status_code, headers=headers)

        return await call(run)

    @router.post("/topups", status_code=201)
    async def top_up(body: TopUpBody, principal: WriteCaller, key: IdempotencyKey = None) -> JSONResponse:
        command = TopUp(body.wallet_account_id, body.amount_minor, body.currency, body.reference)
        return await execute(principal, key, command, [body.wallet_account_id])

    @router.post("/payments", status_code=201)
    async def pay(body: PayBody, principal: WriteCaller, key: IdempotencyKey = None) -> JSONResponse:
        if body.fee_minor and not principal.is_admin:
            return error_response(Forbidden("only the platform sets fees"))
        command = Pay(
            body.payer_account_id,
            body.payee_account_id,
            body.amount_minor,
            body.currency,
            body.fee_minor,
            body.reference,
        )
        return await execute(principal, key, command, [body.payer_account_id])

    @router.post("/payments/{payment_id}/refunds", status_code=201)
    async def refund(
        payment_id: str, body: RefundBody, principal: WriteCaller, key: IdempotencyKey = None
    ) -> JSONResponse:
        paid = await call(lambda: service.payment(payment_id))
        if isinstance(paid, JSONResponse):
            return paid
        return await execute(
            principal, key, Refund(payment_id, body.amount_minor, body.reason), [paid.payee_account_id]
        )

    @router.post("/payouts", status_code=201)
    async def payout(body: PayoutBody, principal: WriteCaller, key: IdempotencyKey = None) -> JSONResponse:
        command = Payout(body.account_id, body.amount_minor, body.currency, body.reference)
        return await execute(principal, key, command, [body.account_id])

    @router.get("/payments/{payment_id}")
    async def get_payment(payment_id: str, principal: ReadCaller) -> Any:
        def run() -> dict[str, Any]:
            paid = service.payment(payment_id)
            errors: list[HexcityError] = []
            for account_id in (paid.payer_account_id, paid.payee_account_id):
                try:
                    owns_account(principal, account_id)
                    return paid.to_json()
                except HexcityError as exc:
                    errors.append(exc)
            raise errors[0]

        return await call(run)

    @router.get("/accounts/{account_id}")
    async def get_account(account_id: str, principal: ReadCaller) -> Any:
        def run() -> dict[str, Any]:
            owns_account(principal, account_id)
            return account_json(service.account(account_id))

        return await call(run)

    @router.get("/accounts/{account_id}/entries")
    async def get_entries(
        account_id: str,
        principal: ReadCaller,
        after_seq: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Any:
        def run() -> dict[str, Any]:
            owns_account(principal, account_id)
            found = service.entries(account_id, after_seq=after_seq, limit=limit)
            items = [
                {
                    "transfer_id": e.transfer_id,
                    "leg_no": e.leg_no,
                    "direction": e.direction,
                    "counterparty_id": e.counterparty_id,
                    "amount_minor": e.amount_minor,
                    "currency": e.currency,
                    "balance_after_minor": e.balance_after_minor,
                    "seq": e.account_seq,
                    "created_at_s": e.created_at_s,
                }
                for e in found
            ]
            return {"entries": items, "next_after_seq": items[-1]["seq"] if len(items) == limit else None}

        return await call(run)

    @router.post("/ledger/accounts", status_code=201)
    async def create_accounts(body: AccountsBody, principal: LedgerWriter) -> Any:
        accounts = [Account(**a.model_dump()) for a in body.accounts]
        created = await call(lambda: service.ledger.create_accounts(accounts))
        if isinstance(created, JSONResponse):
            return created
        return JSONResponse({"accounts": [a.id for a in created]}, 201)

    @router.post("/ledger/transfers")
    async def create_transfers(body: TransfersBody, principal: LedgerWriter) -> Any:
        if len(body.transfers) > service.settings.max_batch_size:
            return error_response(
                InvalidPaymentInput(f"at most {service.settings.max_batch_size} transfers per call")
            )
        requests = [TransferRequest(**t.model_dump()) for t in body.transfers]
        results = await call(lambda: service.ledger.transfer_batch(requests))
        if isinstance(results, JSONResponse):
            return results
        return {
            "results": [
                {
                    "id": r.id,
                    "ok": r.ok,
                    "replayed": r.replayed,
                    "transfer": transfer_json(r.transfer) if r.transfer else None,
                    "error": {"code": r.error.code, "message": r.error.message} if r.error else None,
                }
                for r in results
            ]
        }

    @router.get("/ledger/trial-balance")
    async def trial_balance(principal: LedgerReader) -> Any:
        del principal
        return await call(service.ledger.trial_balance)

    @router.get("/ledger/accounts/{account_id}")
    async def ledger_account(
        account_id: str,
        principal: LedgerReader,
        at_s: Annotated[float | None, Query()] = None,
    ) -> Any:
        def run() -> dict[str, Any]:
            body = account_json(service.account(account_id))
            if at_s is not None:
                body["balance_at_s"] = at_s
                body["balance_at_minor"] = service.ledger.balance_at(account_id, at_s)
            return body

        return await call(run)

    return router
