"""Flash-sale commerce: catalog, campaigns, reservations that never oversell, async orders, saga.

See docs/commerce.md. Other modules import only from here.
"""

from hexcity.commerce.adapters.payments_fake import ApprovingGateway, ScriptedGateway
from hexcity.commerce.adapters.payments_ledger import LedgerCheckoutPayments
from hexcity.commerce.adapters.rate_limit import MemoryRateLimiter, RedisRateLimiter
from hexcity.commerce.adapters.reservation_memory import MemoryReservationEngine
from hexcity.commerce.adapters.reservation_redis import RedisReservationEngine
from hexcity.commerce.adapters.store_sql import SqlCommerceStore
from hexcity.commerce.adapters.waiting_room import MemoryWaitingRoom, RedisWaitingRoom
from hexcity.commerce.domain.catalog import Campaign, Merchant, Order, OrderStatus, Product, Sku
from hexcity.commerce.domain.reservation import ConfirmStatus, Hold, HoldState, ReserveResult, ReserveStatus
from hexcity.commerce.errors import (
    AdmissionRequired,
    CommerceError,
    LimitExceeded,
    NotAdmittedYet,
    PaymentDeclined,
    RateLimited,
    ReservationExpired,
    SaleNotOpen,
    SoldOut,
    SystemBusy,
    VirtualClockUnsupported,
)
from hexcity.commerce.http import build_commerce_router
from hexcity.commerce.orders import ORDERS_TOPIC, OrderWriter
from hexcity.commerce.ports import (
    PaymentGateway,
    PaymentResult,
    PaymentStatus,
    RateLimiter,
    ReservationEngine,
    WaitingRoomPort,
)
from hexcity.commerce.service import STOCK_RETURNED_TOPIC, CommerceService, PurchaseReceipt, ReconcileReport
from hexcity.commerce.settings import CommerceSettings
from hexcity.commerce.wiring import build_commerce_service, check_virtual_clock, redis_client

__all__ = [
    "ORDERS_TOPIC",
    "STOCK_RETURNED_TOPIC",
    "AdmissionRequired",
    "ApprovingGateway",
    "Campaign",
    "CommerceError",
    "CommerceService",
    "CommerceSettings",
    "ConfirmStatus",
    "Hold",
    "HoldState",
    "LedgerCheckoutPayments",
    "LimitExceeded",
    "MemoryRateLimiter",
    "MemoryReservationEngine",
    "MemoryWaitingRoom",
    "Merchant",
    "NotAdmittedYet",
    "Order",
    "OrderStatus",
    "OrderWriter",
    "PaymentDeclined",
    "PaymentGateway",
    "PaymentResult",
    "PaymentStatus",
    "Product",
    "PurchaseReceipt",
    "RateLimited",
    "RateLimiter",
    "ReconcileReport",
    "RedisRateLimiter",
    "RedisReservationEngine",
    "RedisWaitingRoom",
    "ReservationEngine",
    "ReservationExpired",
    "ReserveResult",
    "ReserveStatus",
    "SaleNotOpen",
    "ScriptedGateway",
    "Sku",
    "SoldOut",
    "SqlCommerceStore",
    "SystemBusy",
    "VirtualClockUnsupported",
    "WaitingRoomPort",
    "build_commerce_router",
    "build_commerce_service",
    "check_virtual_clock",
    "redis_client",
]
