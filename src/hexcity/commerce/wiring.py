"""Build the commerce service from settings (called from bootstrap; no I/O at import time)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from sqlalchemy import Engine

from hexcity.commerce.adapters.payments_fake import ApprovingGateway
from hexcity.commerce.adapters.rate_limit import MemoryRateLimiter, RedisRateLimiter
from hexcity.commerce.adapters.reservation_memory import MemoryReservationEngine
from hexcity.commerce.adapters.reservation_redis import RedisReservationEngine
from hexcity.commerce.adapters.store_sql import SqlCommerceStore
from hexcity.commerce.adapters.waiting_room import MemoryWaitingRoom, RedisWaitingRoom
from hexcity.commerce.domain.admission import AdmissionSigner, WaitingRoom
from hexcity.commerce.errors import VirtualClockUnsupported
from hexcity.commerce.ports import PaymentGateway, RateLimiter, ReservationEngine, WaitingRoomPort
from hexcity.commerce.service import CommerceService
from hexcity.commerce.settings import CommerceSettings
from hexcity.infra.bus import EventBus
from hexcity.infra.logging import get_logger

__all__ = ["build_commerce_service", "check_virtual_clock", "redis_client"]

log = get_logger(__name__)


def redis_client(settings: CommerceSettings) -> aioredis.Redis:
    """A client with the module's timeouts and a bounded blocking pool (needs ``settings.redis_url``)."""
    if settings.redis_url is None:
        raise ValueError("HEXCITY_COMMERCE_REDIS_URL is not set")
    if settings.redis_cluster:  # a SKU's keys share one slot (docs/commerce.md, Redis Cluster)
        return RedisCluster.from_url(  # type: ignore[return-value]  # limiter and room are typed Redis
            settings.redis_url,
            decode_responses=True,
            socket_timeout=settings.redis_timeout_s,
            socket_connect_timeout=settings.redis_timeout_s,
            max_connections=settings.redis_max_connections,  # per node
            client_name="hexcity-commerce",
            retry=Retry(NoBackoff(), 0),
        )
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_timeout_s,  # wait this long for a free connection, then SystemBusy
        client_name="hexcity-commerce",
        retry=Retry(NoBackoff(), 0),  # fail closed at once: no silent reconnect loops on the hot path
    )
    return aioredis.Redis(connection_pool=pool)


def check_virtual_clock(settings: CommerceSettings, redis: aioredis.Redis | None = None) -> None:
    """Raise :class:`VirtualClockUnsupported` unless every commerce engine is the embedded one."""
    if redis is not None or settings.redis_url is not None or settings.waiting_room_store == "redis":
        raise VirtualClockUnsupported(
            "the manual clock (HEXCITY_CLOCK=manual) needs the embedded commerce engines: unset "
            "HEXCITY_COMMERCE_REDIS_URL (and HEXCITY_COMMERCE_WAITING_ROOM_STORE=redis); the Redis "
            "engines keep time with Redis TIME"
        )


def build_commerce_service(
    settings: CommerceSettings,
    *,
    sql_engine: Engine,
    bus: EventBus,
    payments: PaymentGateway | None = None,
    redis: aioredis.Redis | None = None,
    clock: Callable[[], float] = time.time,
    virtual: bool = False,
) -> CommerceService:
    """The service over Redis when ``settings.redis_url`` (or ``redis``) is given, else in-process.

    Creates the commerce tables if missing. ``payments`` defaults to an approving in-process
    gateway until the payments module is wired in. ``virtual`` (the platform's manual clock):
    every time source reads ``clock``; the Redis engines (Redis ``TIME``) are refused with
    :class:`VirtualClockUnsupported` rather than mixing two clocks.
    """
    if virtual:
        check_virtual_clock(settings, redis)
    store = SqlCommerceStore(sql_engine)
    store.create_schema()
    if redis is None and settings.redis_url is not None:
        redis = redis_client(settings)
    engine: ReservationEngine
    limiter: RateLimiter
    if redis is not None:
        engine = RedisReservationEngine(redis, prefix=settings.key_prefix, retention_s=settings.retention_s)
        limiter = RedisRateLimiter(redis, prefix=settings.key_prefix)
    else:
        engine = MemoryReservationEngine(clock=clock)
        limiter = MemoryRateLimiter(clock=clock)
    if settings.admission_secret is not None:
        secret = settings.admission_secret.get_secret_value().encode()
    else:
        secret = secrets.token_bytes(32)
        if settings.waiting_room_enabled:
            log.warning("commerce.admission_secret_random", message="tokens are valid in this process only")
    signer = AdmissionSigner(secret)
    room: WaitingRoomPort
    if settings.waiting_room_store == "redis" and redis is None:
        raise ValueError("HEXCITY_COMMERCE_WAITING_ROOM_STORE=redis needs HEXCITY_COMMERCE_REDIS_URL")
    if redis is not None and settings.waiting_room_store != "memory":
        room = RedisWaitingRoom(
            redis,
            signer,
            prefix=settings.key_prefix,
            admissions_per_s=settings.admissions_per_s,
            stock_multiple=settings.gate_multiple,
            token_ttl_s=settings.admission_ttl_s,
            max_queue=settings.max_queue,
            rate_refresh_s=settings.waiting_room_rate_refresh_s,
        )
    else:
        room = MemoryWaitingRoom(
            WaitingRoom(
                signer,
                admissions_per_s=settings.admissions_per_s,
                stock_multiple=settings.gate_multiple,
                token_ttl_s=settings.admission_ttl_s,
                max_queue=settings.max_queue,
            )
        )
    return CommerceService(
        store=store,
        engine=engine,
        bus=bus,
        payments=payments or ApprovingGateway(),
        limiter=limiter,
        waiting_room=room,
        settings=settings,
        clock=clock,
    )
