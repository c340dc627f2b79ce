"""Catalog, flash-sale campaigns and orders: plain records and their validation rules.

Money is integer minor units with an ISO-4217 currency; stock is an integer count. A campaign
moves ``sale_stock`` units out of the SKU's normal stock when it is created (so the sale can never
sell units the shop does not have), and is open for purchases in ``[starts_at_s, ends_at_s)``.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from enum import StrEnum

from hexcity.commerce.domain.reservation import MAX_QUANTITY, MAX_SHARDS, MAX_STOCK, validate_id
from hexcity.commerce.errors import InvalidCommerceInput, SaleNotOpen

MAX_PRICE_MINOR = 10**12
MAX_CAMPAIGN_S = 30 * 86_400
ORDER_SHARDS = 128  # orders carry user_shard = crc32(user_id) % 128 from day one (commerce.md §2.14)
_CURRENCY = re.compile(r"^[A-Z]{3}$")


class OrderStatus(StrEnum):
    RECEIVED = "received"  # reservation held, order persisted, awaiting payment
    PAID = "paid"  # payment captured, confirming the hold
    CONFIRMED = "confirmed"  # sold
    RELEASED = "released"  # payment failed / hold expired: units back in stock


ORDER_RANK = {OrderStatus.RECEIVED: 0, OrderStatus.PAID: 1, OrderStatus.CONFIRMED: 2, OrderStatus.RELEASED: 2}


@dataclass(frozen=True, slots=True)
class Merchant:
    merchant_id: str
    name: str


@dataclass(frozen=True, slots=True)
class Product:
    product_id: str
    merchant_id: str
    name: str


@dataclass(frozen=True, slots=True)
class Sku:
    sku_id: str
    product_id: str
    merchant_id: str
    price_minor: int
    currency: str
    stock: int


@dataclass(frozen=True, slots=True)
class Campaign:
    campaign_id: str
    sku_id: str
    merchant_id: str
    starts_at_s: float
    ends_at_s: float
    sale_price_minor: int
    currency: str
    sale_stock: int
    per_user_limit: int
    shards: int

    def check_open(self, now_s: float) -> None:
        """Raise :class:`SaleNotOpen` unless ``starts_at_s <= now_s < ends_at_s``."""
        if now_s < self.starts_at_s:
            raise SaleNotOpen(f"campaign {self.campaign_id} starts in {self.starts_at_s - now_s:.0f} s")
        if now_s >= self.ends_at_s:
            raise SaleNotOpen(f"campaign {self.campaign_id} has ended")


@dataclass(frozen=True, slots=True)
class Order:
    order_id: str  # = the reservation id
    campaign_id: str
    sku_id: str
    merchant_id: str
    user_id: str
    quantity: int
    unit_price_minor: int
    amount_minor: int
    currency: str
    status: OrderStatus
    created_at_s: float
    payment_id: str | None = None

    @property
    def user_shard(self) -> int:
        return zlib.crc32(self.user_id.encode("utf-8")) % ORDER_SHARDS


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= 200:
        raise InvalidCommerceInput("name must be 1-200 characters")
    return name.strip()


def validate_money(name: str, amount_minor: int, currency: str) -> None:
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
        raise InvalidCommerceInput(f"{name} must be an integer amount in minor units")
    if not 0 <= amount_minor <= MAX_PRICE_MINOR:
        raise InvalidCommerceInput(f"{name} must be in 0..{MAX_PRICE_MINOR} minor units")
    if not _CURRENCY.match(currency):
        raise InvalidCommerceInput("currency must be an ISO-4217 code like EUR")


def validate_sku(sku: Sku) -> Sku:
    for name, value in (("sku_id", sku.sku_id), ("product_id", sku.product_id)):
        validate_id(name, value)
    validate_money("price_minor", sku.price_minor, sku.currency)
    if isinstance(sku.stock, bool) or not 0 <= sku.stock <= MAX_STOCK:
        raise InvalidCommerceInput(f"stock must be an integer in 0..{MAX_STOCK}")
    return sku


def validate_campaign(campaign: Campaign) -> Campaign:
    validate_id("campaign_id", campaign.campaign_id)
    validate_id("sku_id", campaign.sku_id)
    validate_money("sale_price_minor", campaign.sale_price_minor, campaign.currency)
    if not campaign.ends_at_s > campaign.starts_at_s >= 0:
        raise InvalidCommerceInput("ends_at_s must be after starts_at_s (seconds since the epoch)")
    if campaign.ends_at_s - campaign.starts_at_s > MAX_CAMPAIGN_S:
        raise InvalidCommerceInput("a campaign lasts at most 30 days")
    if isinstance(campaign.sale_stock, bool) or not 1 <= campaign.sale_stock <= MAX_STOCK:
        raise InvalidCommerceInput(f"sale_stock must be an integer in 1..{MAX_STOCK}")
    if not 1 <= campaign.per_user_limit <= MAX_QUANTITY:
        raise InvalidCommerceInput(f"per_user_limit must be in 1..{MAX_QUANTITY}")
    if not 1 <= campaign.shards <= MAX_SHARDS:
        raise InvalidCommerceInput(f"shards must be in 1..{MAX_SHARDS}")
    return campaign
