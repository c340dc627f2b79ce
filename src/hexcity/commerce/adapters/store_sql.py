"""SQL store of the commerce module: catalog, campaigns and orders on the module's own MetaData.

Works on SQLite (embedded default), PostgreSQL and MariaDB. Order writes are idempotent bulk
inserts (``ON CONFLICT (order_id) DO NOTHING`` / ``INSERT IGNORE``); status changes only move
forward (received → paid → confirmed, or → released). Calls are synchronous: the async service
runs them in a worker thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from hexcity.commerce.domain.catalog import (
    ORDER_RANK,
    Campaign,
    Merchant,
    Order,
    OrderStatus,
    Product,
    Sku,
)
from hexcity.commerce.errors import CatalogConflict, CatalogNotFound, InvalidCommerceInput
from hexcity.infra.sql import writer

__all__ = ["SqlCommerceStore", "metadata"]

metadata = MetaData()
_Money = BigInteger()

merchants = Table(
    "commerce_merchants",
    metadata,
    Column("merchant_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
)
products = Table(
    "commerce_products",
    metadata,
    Column("product_id", String(64), primary_key=True),
    Column("merchant_id", String(64), nullable=False, index=True),
    Column("name", String(200), nullable=False),
)
skus = Table(
    "commerce_skus",
    metadata,
    Column("sku_id", String(64), primary_key=True),
    Column("product_id", String(64), nullable=False, index=True),
    Column("merchant_id", String(64), nullable=False),
    Column("price_minor", _Money, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("stock", BigInteger(), nullable=False),
)
campaigns = Table(
    "commerce_campaigns",
    metadata,
    Column("campaign_id", String(64), primary_key=True),
    Column("sku_id", String(64), nullable=False, index=True),
    Column("merchant_id", String(64), nullable=False),
    Column("starts_at_s", Float, nullable=False),
    Column("ends_at_s", Float, nullable=False),
    Column("sale_price_minor", _Money, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("sale_stock", BigInteger(), nullable=False),
    Column("per_user_limit", Integer, nullable=False),
    Column("shards", Integer, nullable=False),
)
orders = Table(
    "commerce_orders",
    metadata,
    Column("order_id", String(64), primary_key=True),
    Column("campaign_id", String(64), nullable=False),
    Column("sku_id", String(64), nullable=False),
    Column("merchant_id", String(64), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("user_shard", Integer, nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_price_minor", _Money, nullable=False),
    Column("amount_minor", _Money, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(16), nullable=False),
    Column("payment_id", String(64), nullable=True),
    Column("created_at_s", Float, nullable=False),
    Index("ix_commerce_orders_campaign_status", "campaign_id", "status"),
    Index("ix_commerce_orders_user", "user_shard", "user_id"),
)


class SqlCommerceStore:
    """Catalog + orders on one SQLAlchemy ``Engine`` (see :func:`hexcity.infra.sql.make_engine`)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name

    def create_schema(self) -> None:
        """Create the commerce tables if they do not exist (idempotent)."""
        metadata.create_all(writer(self._engine), checkfirst=True)

    # -- catalog ------------------------------------------------------------------------------------
    def add_merchant(self, merchant: Merchant) -> Merchant:
        self._insert_once(merchants, {"merchant_id": merchant.merchant_id, "name": merchant.name})
        return merchant

    def add_product(self, product: Product) -> Product:
        self._require(merchants, "merchant_id", product.merchant_id)
        row = {"product_id": product.product_id, "merchant_id": product.merchant_id, "name": product.name}
        self._insert_once(products, row)
        return product

    def add_sku(self, sku: Sku) -> Sku:
        product = self._require(products, "product_id", sku.product_id)
        if product["merchant_id"] != sku.merchant_id:
            raise CatalogNotFound(f"product {sku.product_id} is not the merchant's")
        self._insert_once(skus, _sku_row(sku))
        return sku

    def get_sku(self, sku_id: str) -> Sku:
        return Sku(**self._require(skus, "sku_id", sku_id))

    def add_campaign(self, campaign: Campaign) -> Campaign:
        """Store the campaign and move its sale stock out of the SKU's normal stock, atomically."""
        row = _campaign_row(campaign)
        with writer(self._engine).begin() as conn:
            existing = conn.execute(select(campaigns).where(campaigns.c.campaign_id == campaign.campaign_id))
            found = existing.mappings().first()
            if found is not None:
                if dict(found) != row:
                    raise CatalogConflict(f"campaign {campaign.campaign_id} exists with other content")
                return campaign
            sku = conn.execute(select(skus).where(skus.c.sku_id == campaign.sku_id)).mappings().first()
            if sku is None or sku["merchant_id"] != campaign.merchant_id:
                raise CatalogNotFound(f"no SKU {campaign.sku_id} of merchant {campaign.merchant_id}")
            taken = conn.execute(
                update(skus)
                .where(skus.c.sku_id == campaign.sku_id, skus.c.stock >= campaign.sale_stock)
                .values(stock=skus.c.stock - campaign.sale_stock)
            )
            if taken.rowcount != 1:
                raise InvalidCommerceInput(
                    f"sale_stock {campaign.sale_stock} exceeds the SKU's stock {sku['stock']}"
                )
            conn.execute(insert(campaigns).values(**row))
        return campaign

    def get_campaign(self, campaign_id: str) -> Campaign:
        return Campaign(**self._require(campaigns, "campaign_id", campaign_id))

    def list_campaigns(self, *, limit: int = 100, offset: int = 0) -> list[Campaign]:
        query = select(campaigns).order_by(campaigns.c.starts_at_s, campaigns.c.campaign_id)
        with self._engine.connect() as conn:
            rows = conn.execute(query.limit(max(1, min(limit, 1000))).offset(max(0, offset))).mappings()
            return [Campaign(**dict(r)) for r in rows]

    # -- orders -------------------------------------------------------------------------------------
    def insert_orders(self, batch: Sequence[Order]) -> int:
        """Insert the orders that are not there yet (one statement); how many were new."""
        if not batch:
            return 0
        rows = [_order_row(o) for o in {o.order_id: o for o in batch}.values()]
        with writer(self._engine).begin() as conn:
            result = conn.execute(self._insert_ignore(), rows)
            return max(0, result.rowcount)

    def _insert_ignore(self) -> Any:
        if self._dialect == "postgresql":
            return postgresql.insert(orders).on_conflict_do_nothing(index_elements=["order_id"])
        if self._dialect == "sqlite":
            return sqlite.insert(orders).on_conflict_do_nothing(index_elements=["order_id"])
        if self._dialect in ("mysql", "mariadb"):
            return mysql.insert(orders).prefix_with("IGNORE")
        raise NotImplementedError(f"no idempotent insert for {self._dialect}")

    def advance_order(self, order_id: str, status: OrderStatus, *, payment_id: str | None = None) -> bool:
        """Move the order forward to ``status``; False if it is missing or already at/after it."""
        earlier = [s.value for s, rank in ORDER_RANK.items() if rank < ORDER_RANK[status]]
        values: dict[str, Any] = {"status": status.value}
        if payment_id is not None:
            values["payment_id"] = payment_id
        query = update(orders).where(orders.c.order_id == order_id, orders.c.status.in_(earlier))
        with writer(self._engine).begin() as conn:
            return conn.execute(query.values(**values)).rowcount == 1

    def get_order(self, order_id: str) -> Order | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(orders).where(orders.c.order_id == order_id)).mappings().first()
            return _order(row) if row is not None else None

    def list_orders(
        self,
        *,
        campaign_id: str | None = None,
        user_id: str | None = None,
        statuses: Sequence[OrderStatus] = (),
        limit: int = 100,
        after_order_id: str = "",
    ) -> list[Order]:
        """Orders by id (keyset pagination with ``after_order_id``), at most ``limit`` (≤ 10,000)."""
        query = select(orders).where(orders.c.order_id > after_order_id)
        if campaign_id is not None:
            query = query.where(orders.c.campaign_id == campaign_id)
        if user_id is not None:
            query = query.where(orders.c.user_id == user_id)
        if statuses:
            query = query.where(orders.c.status.in_([s.value for s in statuses]))
        query = query.order_by(orders.c.order_id).limit(max(1, min(limit, 10_000)))
        with self._engine.connect() as conn:
            return [_order(r) for r in conn.execute(query).mappings()]

    def units_by_status(self, campaign_id: str) -> dict[OrderStatus, int]:
        """Units per order status of a campaign (the reconciler's SQL side)."""
        query = (
            select(orders.c.status, func.coalesce(func.sum(orders.c.quantity), 0))
            .where(orders.c.campaign_id == campaign_id)
            .group_by(orders.c.status)
        )
        with self._engine.connect() as conn:
            found = {OrderStatus(s): int(n) for s, n in conn.execute(query)}
        return {s: found.get(s, 0) for s in OrderStatus}

    # -- helpers ------------------------------------------------------------------------------------
    def _insert_once(self, table: Table, row: dict[str, Any]) -> None:
        key = next(iter(table.primary_key.columns))
        try:
            with writer(self._engine).begin() as conn:
                conn.execute(insert(table).values(**row))
        except IntegrityError:
            existing = self._require(table, key.name, row[key.name])
            if existing != row:
                raise CatalogConflict(f"{key.name} {row[key.name]} exists with other content") from None

    def _require(self, table: Table, column: str, value: str) -> dict[str, Any]:
        with self._engine.connect() as conn:
            row = conn.execute(select(table).where(table.c[column] == value)).mappings().first()
        if row is None:
            raise CatalogNotFound(f"no {column.removesuffix('_id')} {value}")
        return dict(row)


def _sku_row(sku: Sku) -> dict[str, Any]:
    return {
        "sku_id": sku.sku_id,
        "product_id": sku.product_id,
        "merchant_id": sku.merchant_id,
        "price_minor": sku.price_minor,
        "currency": sku.currency,
        "stock": sku.stock,
    }


def _campaign_row(c: Campaign) -> dict[str, Any]:
    return {
        "campaign_id": c.campaign_id,
        "sku_id": c.sku_id,
        "merchant_id": c.merchant_id,
        "starts_at_s": c.starts_at_s,
        "ends_at_s": c.ends_at_s,
        "sale_price_minor": c.sale_price_minor,
        "currency": c.currency,
        "sale_stock": c.sale_stock,
        "per_user_limit": c.per_user_limit,
        "shards": c.shards,
    }


def _order_row(o: Order) -> dict[str, Any]:
    return {
        "order_id": o.order_id,
        "campaign_id": o.campaign_id,
        "sku_id": o.sku_id,
        "merchant_id": o.merchant_id,
        "user_id": o.user_id,
        "user_shard": o.user_shard,
        "quantity": o.quantity,
        "unit_price_minor": o.unit_price_minor,
        "amount_minor": o.amount_minor,
        "currency": o.currency,
        "status": o.status.value,
        "payment_id": o.payment_id,
        "created_at_s": o.created_at_s,
    }


def _order(row: Any) -> Order:
    values = {k: v for k, v in dict(row).items() if k != "user_shard"}
    values["status"] = OrderStatus(values["status"])
    return Order(**values)
