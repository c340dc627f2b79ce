"""The composition root: the only place that builds concrete adapters and wires them together."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from hexcity.infra import get_logger
from hexcity.infra.bus import EventBus
from hexcity.kernel import HexcityError, LatLng
from hexcity.platform import Platform, PlatformSettings, default_idempotency
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
        bus=build_bus(settings.bus_url), idempotency=default_idempotency(settings), settings=settings
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
