"""The composition root: the only place that builds concrete adapters and wires them together."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

if TYPE_CHECKING:
    from hexcity.dispatch import DispatchService
    from hexcity.payments import PaymentService

from hexcity.infra import get_logger
from hexcity.infra.bus import EventBus
from hexcity.kernel import HexcityError, LatLng
from hexcity.platform import ModuleRuntime, Platform, PlatformSettings, default_idempotency
from hexcity.routing import (
    Limits,
    RoutingEngine,
    RoutingError,
    RoutingService,
    RoutingSettings,
    build_graph,
    cached_graph_dir,
    canonical_profile_name,
    read_manifest,
)

log = get_logger(__name__)


def limits_from(settings: RoutingSettings) -> Limits:
    return Limits(
        max_table_size=settings.max_table_size,
        max_route_points=settings.max_route_points,
        max_nearest_number=settings.max_nearest_number,
        max_snap_distance_m=settings.max_snap_distance_m,
        max_isochrone_contours=settings.max_isochrone_contours,
        max_isochrone_minutes=settings.max_isochrone_minutes,
        isochrone_buffer_m=settings.isochrone_buffer_m,
    )


def ensure_graph(
    pbf: Path,
    profile: str,
    settings: RoutingSettings,
    progress: Callable[[str, int, int], None] | None = None,
) -> Path:
    """The cached artefact for (pbf, profile), building it first if it is missing or unreadable."""
    target = cached_graph_dir(settings.cache_dir, pbf, profile)
    try:
        read_manifest(target)
        return target
    except HexcityError:
        log.info("graph_build_start", pbf=str(pbf), profile=profile, out=str(target))
        result = build_graph(pbf, profile, target, progress=progress)
        log.info(
            "graph_build_done",
            profile=profile,
            graph_version=result.graph_version,
            import_s=round(result.import_s, 2),
            contract_s=round(result.contract_s, 2),
        )
        return result.path


def open_engine(path: Path, settings: RoutingSettings, limits: Limits) -> RoutingEngine:
    """Load an artefact and prove it answers (smoke route and table) before it is served."""
    engine = RoutingEngine.open(
        path,
        limits=limits,
        verify=settings.verify_checksums,
        workers=settings.workers,
        queue_timeout_s=settings.queue_timeout_s,
    )
    smoke_test(engine)
    if settings.cache_enabled:
        attach_table_cache(engine, settings)
    return engine


def smoke_test(engine: RoutingEngine) -> None:
    """Route and table between two graph nodes; also loads every search kernel.

    Raises RoutingError if the graph cannot answer (readiness then stays false).
    """
    net = engine.engine.network
    a, b = 0, net.n_nodes - 1
    points = [
        LatLng(float(net.node_lat[a]), float(net.node_lon[a])),
        LatLng(float(net.node_lat[b]), float(net.node_lon[b])),
    ]
    route = engine.route(points)
    table = engine.table(points)
    if table.durations_s[0, 1] != route.duration_s:
        raise RoutingError(f"smoke test failed for {engine.profile}: table and route disagree")


def attach_table_cache(engine: RoutingEngine, settings: RoutingSettings) -> None:
    """Put the H3 semantic cache in front of the engine's table (memory, or Redis if configured)."""
    from hexcity.routing.adapters.cache_stores import MemoryCellStore, RedisCellStore
    from hexcity.routing.ports import CellStore
    from hexcity.routing.table_cache import SemanticTableCache

    store: CellStore
    if settings.cache_redis_url:
        import redis

        client = redis.Redis.from_url(
            settings.cache_redis_url, socket_timeout=0.5, socket_connect_timeout=0.5
        )
        store = RedisCellStore(client, key_prefix="hexcity:")
    else:
        store = MemoryCellStore(max_entries=settings.cache_max_entries)
    engine.attach_cache(
        lambda e: SemanticTableCache(
            e.exact_table_arrays,
            store,
            e.graph_version,
            e.profile,
            resolution=settings.cache_resolution,
            ttl_s=settings.cache_ttl_s,
        )
    )


def start_loading(
    service: RoutingService,
    settings: RoutingSettings,
    *,
    graphs: list[Path] | None = None,
    pbf: Path | None = None,
    profiles: list[str] | None = None,
) -> threading.Thread:
    """Load (and for ``pbf`` build if needed) every profile in a background thread.

    The HTTP server is up meanwhile; readiness turns true once every profile is loaded.
    """
    limits = service.limits
    jobs: list[tuple[str, Path | None]]
    if graphs:
        jobs = [(str(read_manifest(g)["profile"]), g) for g in graphs]
    else:
        if pbf is None:
            raise ValueError("give graphs or a pbf")
        jobs = [(canonical_profile_name(p), None) for p in (profiles or settings.profiles)]
    service.expect([name for name, _ in jobs])

    def run() -> None:
        for name, path in jobs:
            try:
                if path is not None:
                    graph_dir = path
                elif pbf is not None:
                    graph_dir = ensure_graph(pbf, name, settings)
                else:
                    raise ValueError("no graph to load")
                service.add(open_engine(graph_dir, settings, limits))
            except HexcityError as exc:
                log.error("profile_failed", profile=name, code=exc.code, error=exc.message)
                service.fail(name, exc.message)
            except Exception as exc:  # a loader thread must report, never die silently
                log.exception("profile_failed", profile=name)
                service.fail(name, f"{type(exc).__name__}: {exc}")

    thread = threading.Thread(target=run, name="graph-loader", daemon=True)
    thread.start()
    return thread


def build_platform(settings: PlatformSettings | None = None) -> Platform:
    """The shared runtime: the bus chosen by ``HEXCITY_BUS_URL`` (in-process by default)."""
    settings = settings or PlatformSettings()
    return Platform(
        bus=build_bus(settings.bus_url),
        idempotency=default_idempotency(settings),
        settings=settings,
        engine=build_database(settings),
    )


def build_bus(url: str) -> EventBus:
    """``memory://`` (embedded), ``nats://...`` (JetStream) or ``redis://...`` (Streams)."""
    if url.startswith("nats://"):
        from hexcity.infra.bus.nats_jetstream import NatsJetStreamBus

        return NatsJetStreamBus(url)
    if url.startswith("redis://"):
        from hexcity.infra.bus.redis_streams import RedisStreamsBus

        return RedisStreamsBus.from_url(url)
    from hexcity.infra.bus.memory import InProcessBus

    return InProcessBus()


def build_database(settings: PlatformSettings) -> Engine:
    """The SQL engine for ``HEXCITY_DATABASE_URL`` (SQLite file ``var/hexcity.db`` by default)."""
    from hexcity.infra.sql import make_engine

    return make_engine(settings.database_url)


def build_dispatch(
    routing: RoutingService, platform: Platform, payments: PaymentService | None = None
) -> tuple[ModuleRuntime, DispatchService]:
    """Dispatch wired to the routing service, the platform's bus and database, and its settings;
    its service is returned too (the assistant quotes rides through it).

    Driver index in memory (default) or on Redis (``HEXCITY_DISPATCH_INDEX_URL``); MQTT intake when
    ``HEXCITY_DISPATCH_INGEST_MQTT_ENABLED``; surge fed from the index; push over WS/SSE.
    """
    import os
    import socket
    from contextlib import AsyncExitStack, asynccontextmanager

    from hexcity.dispatch import (
        DispatchService,
        DispatchSettings,
        DriverIndex,
        IngestService,
        IngestSettings,
        InMemoryDriverIndex,
        LazyRoadSnapper,
        LedgerTripPayments,
        MqttIntake,
        PingPipeline,
        PushHub,
        PushParams,
        PushSettings,
        RedisConnectionDirectory,
        RedisDriverIndex,
        RoadRouter,
        SqlTripStore,
        SurgeFeedingIndex,
        SurgeModel,
        build_dispatch_router,
        build_ingest_router,
        build_push_router,
    )

    if platform.engine is None:
        raise ValueError("dispatch needs the platform's database")
    settings = DispatchSettings()
    ingest_settings = IngestSettings()
    clock = platform.clock.now  # time.time, or the manual clock (HEXCITY_CLOCK=manual)
    virtual = platform.virtual
    surge = SurgeModel(clock=clock)
    base: DriverIndex
    if settings.index_url.startswith("redis://"):
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(settings.index_url, socket_timeout=2.0, socket_connect_timeout=2.0)
        base = RedisDriverIndex(client, settings.index_prefix)
    else:
        base = InMemoryDriverIndex()
    index = SurgeFeedingIndex(base, surge, clock=clock)
    ingest = IngestService(
        PingPipeline(clock=clock) if virtual else PingPipeline(),
        index,
        settings=ingest_settings,
        snapper=LazyRoadSnapper(routing, settings.profile, ingest_settings.snap_max_distance_m),
        bus=platform.bus,
        registry=platform.registry,
        clock=clock,
        expiry_loop=not virtual,
    )
    push = PushSettings()
    push_directory = None
    if push.directory_url.startswith("redis://"):
        import redis.asyncio as aioredis

        push_directory = RedisConnectionDirectory(
            aioredis.Redis.from_url(push.directory_url, socket_timeout=2.0, socket_connect_timeout=2.0),
            push.directory_prefix,
            push.directory_ttl_s,
        )
    hub = PushHub(
        PushParams(
            ring_size=push.ring_size,
            queue_size=push.queue_size,
            max_clients=push.max_clients,
            heartbeat_interval_s=push.heartbeat_interval_s,
            max_payload_bytes=push.max_payload_bytes,
            max_ring_bytes=push.max_ring_bytes,
        ),
        directory=push_directory,
        node_id=push.node_id or f"{socket.gethostname()}:{os.getpid()}",
        registry=platform.registry,
    )
    service = DispatchService(
        SqlTripStore(platform.engine),
        index,
        RoadRouter(routing, settings.profile),
        settings=settings,
        surge=surge,
        notifier=hub,
        availability=ingest,
        payments=None if payments is None else LedgerTripPayments(payments),
        registry=platform.registry,
        clock=clock,
        loops=not virtual,
    )
    if settings.require_registered_drivers:
        ingest.known_driver = service.is_registered
    if virtual:  # the platform's clock runs dispatch's periodic work (docs/operations.md, virtual time)
        platform.every("dispatch.match", settings.window_s, service.run_window)
        platform.every("dispatch.offers", settings.timer_tick_s, service.tick_offers)
        platform.every("dispatch.surge", settings.surge_recompute_s, service.recompute_surge)
        platform.every("dispatch.ingest.expire", ingest_settings.expire_interval_s, ingest.expire_now)
        if settings.require_registered_drivers:
            platform.every("dispatch.drivers", settings.sweep_every_s, service.refresh_drivers)
        platform.add_quiescer("dispatch.ingest", ingest.drain)

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            hub.start()
            stack.push_async_callback(hub.aclose)
            await stack.enter_async_context(ingest)
            if ingest_settings.mqtt_enabled:
                await stack.enter_async_context(MqttIntake.from_settings(ingest, ingest_settings))
            await stack.enter_async_context(service)
            yield

    runtime = ModuleRuntime(
        name="dispatch",
        routers=[
            build_dispatch_router(service, index),
            build_ingest_router(ingest, ingest_settings),
            build_push_router(hub),
        ],
        lifespan=lifespan,
    )
    return runtime, service


def build_payments(platform: Platform) -> tuple[ModuleRuntime, PaymentService]:
    """Payments on the platform's database (the platform's outbox relay publishes its events);
    the service is returned too, for the modules that take money through it (rides, orders)."""
    from contextlib import asynccontextmanager

    from hexcity.payments import (
        PaymentService,
        PaymentsSettings,
        PaymentsWorker,
        RetryPolicy,
        SqlLedger,
        build_payments_router,
    )

    if platform.engine is None:
        raise ValueError("payments needs the platform's database")
    settings = PaymentsSettings()
    retry = RetryPolicy(settings.retry_max_attempts, settings.retry_base_delay_s, settings.retry_max_delay_s)
    clock = platform.clock.now  # ledger timestamps, authorisation timeouts, idempotency retention
    service = PaymentService(SqlLedger(platform.engine, retry=retry, clock=clock), settings, clock=clock)
    worker = PaymentsWorker(
        service, platform.bus, interval_s=settings.maintenance_interval_s, loop=not platform.virtual
    )
    if platform.virtual:  # authorisations expire when virtual time passes their timeout
        platform.every("payments.maintenance", settings.maintenance_interval_s, worker.maintain)

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        import asyncio

        await asyncio.to_thread(service.create_schema)
        async with worker:
            yield

    return ModuleRuntime(
        name="payments", routers=[build_payments_router(service)], lifespan=lifespan
    ), service


def build_fulfillment(routing: RoutingService, platform: Platform) -> tuple[ModuleRuntime, Any]:
    """Fulfillment: VROOM-compatible ``/vrp/v1/solve``, allocation and last mile on the database;
    its SQL store is returned too (the assistant reads customers' orders from it)."""
    from contextlib import asynccontextmanager

    from hexcity.fulfillment import (
        AllocationService,
        CostModel,
        FulfillmentApi,
        FulfillmentSettings,
        LastMilePlanner,
        OrToolsSolver,
        PyVrpSolver,
        RoutingRoadMatrix,
        SqlAllocationStore,
        VrpService,
        VrpSolver,
        build_fulfillment_router,
    )

    if platform.engine is None:
        raise ValueError("fulfillment needs the platform's database")
    settings = FulfillmentSettings()
    if platform.virtual:  # plans a pure function of input + seed: iteration-limited search
        settings = settings.for_virtual_clock()
    road = RoutingRoadMatrix(routing.get)
    solver: VrpSolver = PyVrpSolver() if settings.vrp_backend == "pyvrp" else OrToolsSolver()
    store = SqlAllocationStore(platform.engine)
    allocation = AllocationService(
        store,
        road,
        CostModel(split_penalty_minor=settings.split_penalty_minor),
        max_lines=settings.max_order_lines,
        max_batch_orders=settings.max_batch_orders,
        clock=platform.clock.now,
        deterministic=platform.virtual,
    )
    planner = LastMilePlanner(road, solver, road)  # RoutingRoadMatrix is also the RouteGeometry
    api = FulfillmentApi(
        VrpService(settings, solver, road, deterministic=platform.virtual),
        allocation,
        planner,
        max_body_bytes=settings.max_body_bytes,
    )

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        import asyncio

        await asyncio.to_thread(store.create_schema)
        yield

    return ModuleRuntime(
        name="fulfillment", routers=[build_fulfillment_router(api)], lifespan=lifespan
    ), store


def build_modules(routing: RoutingService, platform: Platform) -> list[ModuleRuntime]:
    """Every business module that is enabled and can run on what is loaded (serve and demo)."""
    from hexcity.assistant import AssistantSettings
    from hexcity.commerce import CommerceSettings
    from hexcity.dispatch import DispatchSettings
    from hexcity.fulfillment import FulfillmentSettings
    from hexcity.payments import PaymentsSettings

    modules: list[ModuleRuntime] = []
    payments: PaymentService | None = None
    if PaymentsSettings().enabled:
        module, payments = build_payments(platform)
        modules.append(module)
    dispatch = DispatchSettings()
    dispatch_service: DispatchService | None = None
    if dispatch.enabled and dispatch.profile in routing.profiles():
        module, dispatch_service = build_dispatch(routing, platform, payments)
        modules.append(module)
    fulfillment_store: Any = None
    if FulfillmentSettings().enabled:
        module, fulfillment_store = build_fulfillment(routing, platform)
        modules.append(module)
    if CommerceSettings().enabled:
        modules.append(build_commerce(platform, payments))
    if AssistantSettings().enabled:
        modules.append(
            build_assistant(platform, fulfillment_store, payments=payments, dispatch=dispatch_service)
        )
    return modules


COMMERCE_VIRTUAL_FLUSH_S = 0.01  # manual clock: write a parked batch 10 real ms later (bus drain)


def build_commerce(platform: Platform, payments: PaymentService | None = None) -> ModuleRuntime:
    """Flash-sale commerce on the platform's database and bus (Redis when
    ``HEXCITY_COMMERCE_REDIS_URL``); checkout pays through the payments ledger when given.

    On the manual clock every time source is ``platform.clock``, reconciliation and hold expiry
    are ``platform.every`` jobs and the order writer is a quiescer; Redis engines are refused
    (``VirtualClockUnsupported``)."""
    from contextlib import asynccontextmanager

    from hexcity.commerce import (
        CommerceSettings,
        LedgerCheckoutPayments,
        OrderWriter,
        PaymentGateway,
        build_commerce_router,
        build_commerce_service,
    )

    if platform.engine is None:
        raise ValueError("commerce needs the platform's database")
    settings = CommerceSettings()
    virtual = platform.virtual

    def order_of(order_id: str) -> Any:  # the order being paid, from the store built just below
        return service.store.get_order(order_id)

    gateway: PaymentGateway | None = None if payments is None else LedgerCheckoutPayments(payments, order_of)
    service = build_commerce_service(
        settings,
        sql_engine=platform.engine,
        bus=platform.bus,
        payments=gateway,
        clock=platform.clock.now,
        virtual=virtual,
    )
    flush_s = min(settings.persist_flush_s, COMMERCE_VIRTUAL_FLUSH_S) if virtual else settings.persist_flush_s
    writer = OrderWriter(
        service.store,
        platform.bus,
        batch_size=settings.persist_batch_size,
        flush_s=flush_s,
        max_attempts=settings.persist_max_attempts,
    )
    if virtual:
        platform.every("commerce.expire_holds", settings.expiry_sweep_interval_s, service.expire_holds)
        platform.every("commerce.reconcile", settings.reconcile_interval_s, service.reconcile_all)
        platform.add_quiescer("commerce.order_writer", writer.flush)

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        await writer.start()
        await service.start(reconcile=not virtual)
        try:
            yield
        finally:
            await service.stop()
            await writer.stop()

    return ModuleRuntime(name="commerce", routers=[build_commerce_router(service)], lifespan=lifespan)


def build_assistant(
    platform: Platform,
    fulfillment_store: Any = None,
    *,
    payments: PaymentService | None = None,
    dispatch: DispatchService | None = None,
) -> ModuleRuntime:
    """The support assistant over the shipped help-center corpus (``/assistant/v1``), reading a
    customer's own records through the modules' public APIs: orders and shipments from
    fulfillment (its store), trips from dispatch (when ``dispatch`` runs: its trips live in the
    platform's database), payments and refunds from payments (its service). The modules' own
    outbox events (``ride.status``, ``payments.events``, ``fulfillment.orders``/``.delivered``,
    ``commerce.orders.received``) and ``assistant.changes`` keep its graph fresh. Its actions
    (ride quotes for the fare card, refunds from the refund form) go through dispatch, payments
    and the customer's fulfillment orders."""
    from contextlib import asynccontextmanager

    from hexcity.assistant import AssistantSettings
    from hexcity.assistant.freshness import subscribe_changes
    from hexcity.assistant.http import build_assistant_router
    from hexcity.assistant.wiring import build_assistant_service, build_record_reader

    trips = None
    if dispatch is not None and platform.engine is not None:
        from hexcity.dispatch import TripQueries

        trips = TripQueries(platform.engine)
    customer_payments = None
    if payments is not None:
        from hexcity.payments import CustomerPayments

        customer_payments = CustomerPayments(payments.ledger.engine)
    records = build_record_reader(
        fulfillment_store=fulfillment_store, trips=trips, payments=customer_payments
    )
    service = build_assistant_service(AssistantSettings(), records=records)

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        subscription = await subscribe_changes(service, platform.bus)
        try:
            yield
        finally:
            await subscription.stop()

    from hexcity.assistant.adapters.support_actions import PlatformSupportActions

    actions = PlatformSupportActions(
        dispatch=dispatch,
        payments=payments,
        orders_of=None if fulfillment_store is None else fulfillment_store.orders_of_customer,
    )
    router = build_assistant_router(service, actions=actions)
    return ModuleRuntime(name="assistant", routers=[router], lifespan=lifespan)
