"""The commerce HTTP API (prefix ``/commerce/v1``), thin over :class:`CommerceService`.

Scopes: merchants administer catalog and campaigns with ``shops:write`` (their own shop only:
the token's tenant is the merchant id), buyers (role rider) purchase with ``orders:write`` and read
their orders with ``orders:read``, operators use ``admin``. A denied rate limit or a waiting-room
position not yet admitted answers 429 with ``Retry-After`` (whole seconds, rounded up).
"""

from __future__ import annotations

import asyncio
import functools
import math
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from hexcity.commerce.domain.catalog import Campaign, Order, Sku
from hexcity.commerce.errors import NotAdmittedYet, RateLimited
from hexcity.commerce.service import CommerceService
from hexcity.infra.auth import Principal, authorize_owner, require
from hexcity.infra.http import json_response

__all__ = ["build_commerce_router"]


# module level: with postponed annotations FastAPI resolves these names in the module's globals
ShopWriter = Annotated[Principal, Depends(require("shops:write"))]
Buyer = Annotated[Principal, Depends(require("orders:write"))]
Reader = Annotated[Principal, Depends(require("orders:read"))]
Admin = Annotated[Principal, Depends(require("admin"))]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MerchantBody(_Body):
    merchant_id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)


class ProductBody(_Body):
    product_id: str = Field(min_length=1, max_length=64)
    merchant_id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)


class SkuBody(_Body):
    sku_id: str = Field(min_length=1, max_length=64)
    product_id: str = Field(min_length=1, max_length=64)
    merchant_id: str = Field(min_length=1, max_length=64)
    price_minor: int = Field(ge=0)
    currency: str = Field(min_length=3, max_length=3)
    stock: int = Field(ge=0)


class CampaignBody(_Body):
    campaign_id: str = Field(min_length=1, max_length=64)
    sku_id: str = Field(min_length=1, max_length=64)
    merchant_id: str = Field(min_length=1, max_length=64)
    starts_at_s: float = Field(ge=0)
    ends_at_s: float = Field(gt=0)
    sale_price_minor: int = Field(ge=0)
    currency: str = Field(min_length=3, max_length=3)
    sale_stock: int = Field(ge=1)
    per_user_limit: int = Field(default=1, ge=1)
    shards: int | None = Field(default=None, ge=1, le=64)


class PurchaseBody(_Body):
    quantity: int = Field(default=1)


class QueueBody(_Body):
    token: str | None = Field(default=None, max_length=1000)


class RateBody(_Body):
    admissions_per_s: float = Field(ge=0, le=1_000_000)


def _too_many(exc: RateLimited | NotAdmittedYet) -> Response:
    response = json_response({"code": exc.code, "message": exc.message}, 429)
    response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
    return response


def _order_dict(order: Order) -> dict[str, Any]:
    body = asdict(order)
    body["status"] = order.status.value
    return body


def build_commerce_router(service: CommerceService) -> APIRouter:
    """All commerce routes; errors are ``HexcityError`` (mapped by the app), 429s are built here."""
    router = APIRouter(prefix="/commerce/v1", tags=["commerce"])

    @router.post("/merchants", status_code=201)
    async def add_merchant(body: MerchantBody, principal: ShopWriter) -> Response:
        authorize_owner(principal, "shop", body.merchant_id)
        merchant = await service.add_merchant(body.merchant_id, body.name)
        return json_response(asdict(merchant), 201)

    @router.post("/products", status_code=201)
    async def add_product(body: ProductBody, principal: ShopWriter) -> Response:
        authorize_owner(principal, "shop", body.merchant_id)
        product = await service.add_product(body.product_id, body.merchant_id, body.name)
        return json_response(asdict(product), 201)

    @router.post("/skus", status_code=201)
    async def add_sku(body: SkuBody, principal: ShopWriter) -> Response:
        authorize_owner(principal, "shop", body.merchant_id)
        sku = await service.add_sku(Sku(**body.model_dump()))
        return json_response(asdict(sku), 201)

    @router.post("/campaigns", status_code=201)
    async def schedule_campaign(body: CampaignBody, principal: ShopWriter) -> Response:
        authorize_owner(principal, "shop", body.merchant_id)
        values = body.model_dump()
        values["shards"] = body.shards or service.settings.default_shards
        campaign = await service.schedule_campaign(Campaign(**values))
        return json_response(asdict(campaign), 201)

    @router.get("/campaigns")
    async def list_campaigns(
        _: Reader, limit: Annotated[int, Query(ge=1, le=1000)] = 100, offset: Annotated[int, Query(ge=0)] = 0
    ) -> Response:
        page = min(limit, service.settings.list_limit)
        found = await asyncio.to_thread(
            functools.partial(service.store.list_campaigns, limit=page, offset=offset)
        )
        return json_response({"campaigns": [asdict(c) for c in found], "limit": limit, "offset": offset})

    @router.get("/campaigns/{campaign_id}")
    async def get_campaign(campaign_id: str, _: Reader) -> Response:
        campaign = await service.campaign(campaign_id)
        snap = await service.engine.snapshot(campaign_id)
        body = asdict(campaign)
        body["remaining"] = snap.remaining if snap else None
        return json_response(body)

    @router.post("/campaigns/{campaign_id}/queue")
    async def join_queue(campaign_id: str, body: QueueBody, principal: Buyer) -> Response:
        ticket = await service.join_queue(campaign_id, principal.subject, body.token)
        return json_response(asdict(ticket))

    @router.post("/campaigns/{campaign_id}/purchase", status_code=202)
    async def purchase(
        campaign_id: str,
        body: PurchaseBody,
        request: Request,
        principal: Buyer,
        idempotency_key: Annotated[str | None, Header(max_length=64)] = None,
        x_admission_token: Annotated[str | None, Header(max_length=1000)] = None,
    ) -> Response:
        try:
            receipt = await service.purchase(
                campaign_id,
                principal.subject,
                body.quantity,
                idempotency_key=idempotency_key,
                client_ip=request.client.host if request.client else "unknown",
                admission_token=x_admission_token,
            )
        except (RateLimited, NotAdmittedYet) as exc:
            return _too_many(exc)
        return json_response(asdict(receipt), 202)

    @router.get("/orders/{order_id}")
    async def get_order(order_id: str, principal: Reader) -> Response:
        order = await service.order(order_id)
        _authorize_order(principal, order)
        return json_response(_order_dict(order))

    @router.post("/orders/{order_id}/pay")
    async def pay(order_id: str, principal: Buyer) -> Response:
        _authorize_order(principal, await service.order(order_id), buyer_only=True)
        return json_response(_order_dict(await service.pay(order_id)))

    @router.post("/orders/{order_id}/cancel")
    async def cancel(order_id: str, principal: Buyer) -> Response:
        _authorize_order(principal, await service.order(order_id), buyer_only=True)
        return json_response(_order_dict(await service.cancel(order_id)))

    @router.post("/admin/campaigns/{campaign_id}/reconcile")
    async def reconcile(campaign_id: str, _: Admin) -> Response:
        report = await service.reconcile(campaign_id)
        body = asdict(report)
        body["snapshot"] = asdict(report.snapshot) if report.snapshot else None
        return json_response(body)

    @router.post("/admin/campaigns/{campaign_id}/preheat")
    async def preheat(campaign_id: str, _: Admin) -> Response:
        """Load (idempotently) and verify the sale stock, e.g. after Redis lost it."""
        return json_response(asdict(await service.preheat(campaign_id)))

    @router.put("/admin/waiting-room/rate")
    async def set_rate(body: RateBody, _: Admin) -> Response:
        await service.waiting_room.set_rate(body.admissions_per_s)
        return json_response({"admissions_per_s": service.waiting_room.admissions_per_s})

    return router


def _authorize_order(principal: Principal, order: Order, *, buyer_only: bool = False) -> None:
    """The buyer (rider subject), the merchant of the order's shop (read only), or an admin."""
    if principal.role.value == "merchant" and not buyer_only:
        authorize_owner(principal, "shop", order.merchant_id)
    else:
        authorize_owner(principal, "rider", order.user_id)
