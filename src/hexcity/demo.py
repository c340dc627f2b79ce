"""``hexcity demo``: a live city on one machine — routing, dispatch, dashboard and a simulator.

Embedded defaults only: SQLite in a temporary directory, the in-process bus, the in-memory driver
index, no MQTT (simulated drivers ping over the HTTP intake's WebSocket). The routing graph of the
map is built once (progress bar) and reused from the cache. The API and the dashboard listen on
127.0.0.1; the dashboard gets its API token from a demo-only endpoint that answers loopback
callers only. Ctrl-C (or SIGTERM) stops the simulator, ends the live streams and shuts down.

Run ``python -m hexcity.demo --help`` (or ``hexcity demo`` once the CLI registers it).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import tempfile
from collections.abc import Generator
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer
import uvicorn
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from hexcity import __version__
from hexcity.api import create_app
from hexcity.bootstrap import build_modules, build_platform, ensure_graph, limits_from, open_engine
from hexcity.infra import configure_logging
from hexcity.infra.auth import ROUTING_READ, AuthSettings, Role, TokenService
from hexcity.infra.auth.settings import DEFAULT_PUBLIC_PATHS
from hexcity.kernel import HexcityError, LatLng
from hexcity.platform import ModuleRuntime, PlatformSettings
from hexcity.routing import RoutingService, RoutingSettings
from hexcity.simulator import CityParams, CitySim, FlashParams, SimClock, load_trip_samples
from hexcity.web import LiveFeed, PanelRegistry, bounds_of, build_web_router, web_public_paths

if TYPE_CHECKING:
    from hexcity.simulate import ShopRuntime

__all__ = ["MAPS", "DemoError", "DemoTokens", "demo", "resolve_map", "trip_samples_path"]

REPO_ROOT = Path(__file__).resolve().parents[2]
MAPS = {"andorra": "andorra-2021-10-28.osm.pbf", "heidelberg": "heidelberg.osm.pbf"}
PROFILE = "car"
TOKEN_TTL_S = 24 * 3600
DEMO_CUSTOMER = "demo-customer"  # the support chat's customer in the demo
DASHBOARD_SCOPES = frozenset({ROUTING_READ, "trips:read", "fulfillment:read"})
SHUTDOWN_TIMEOUT_S = 10.0
STAGE_LABELS = {
    "read": "reading OSM",
    "build": "building network",
    "contract": "contracting",
    "write": "writing",
}

console = Console(stderr=True, soft_wrap=True)


class DemoError(HexcityError):
    code = "DemoError"
    status = 400


def resolve_map(name: str, data_dir: Path | None = None) -> Path:
    """``andorra``/``heidelberg`` (shipped in ``data/osm``) or a path to an ``.osm.pbf``.

    Raises DemoError if the file does not exist.
    """
    path = (data_dir or REPO_ROOT / "data" / "osm") / MAPS[name] if name in MAPS else Path(name)
    if not path.is_file():
        raise DemoError(f"map {name}: file {path} not found (give andorra, heidelberg or an .osm.pbf path)")
    return path


def trip_samples_path() -> Path:
    """The NYC TLC trip sample shipped with the simulator (lengths and time-of-day profile)."""
    return Path(str(resources.files("hexcity.simulator") / "data" / "nyc_tlc_yellow_2015-01_sample.csv"))


class _Bar:
    """The graph build's ``progress(stage, done, total)`` as a rich progress bar."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._tasks: dict[str, TaskID] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage not in self._tasks:
            self._tasks[stage] = self._progress.add_task(STAGE_LABELS.get(stage, stage), total=total or None)
        self._progress.update(self._tasks[stage], completed=done, total=total or None)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the demo handles Ctrl-C (stops the simulator first)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class DemoTokens:
    """Demo tokens signed with this process's demo secret, one per (role, subject), cached."""

    def __init__(self, auth: AuthSettings) -> None:
        self._service = TokenService.from_settings(auth)
        self._cache: dict[tuple[str, str], str] = {}

    def __call__(self, role: str, subject: str) -> str:
        key = (role, subject)
        if key not in self._cache:
            if len(self._cache) > 50_000:
                self._cache.clear()
            self._cache[key] = self._service.issue(subject, Role(role), ttl_s=TOKEN_TTL_S, demo=True)
        return self._cache[key]

    def dashboard(self) -> str:
        """The page's token: admin ``dashboard`` cut down to reading roads, routes, trips and surge."""
        return self._service.issue(
            "dashboard", Role.ADMIN, scopes=DASHBOARD_SCOPES, ttl_s=TOKEN_TTL_S, demo=True
        )


def _load_routing(pbf: Path) -> RoutingService:
    settings = RoutingSettings()
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(), console=console, transient=True,
    ) as progress:  # fmt: skip
        graph = ensure_graph(pbf, PROFILE, settings, progress=_Bar(progress))
    routing = RoutingService(limits_from(settings))
    routing.add(open_engine(graph, settings, routing.limits))
    return routing


def demo(
    map_name: Annotated[
        str, typer.Option("--map", help="andorra, heidelberg or a path to an .osm.pbf")
    ] = "andorra",
    seed: Annotated[int, typer.Option(help="seed of the simulated city (same seed, same plan)")] = 1,
    speed: Annotated[float, typer.Option(help="simulated seconds per wall second", min=0.1, max=100)] = 5.0,
    port: Annotated[int, typer.Option(help="port on 127.0.0.1", min=1, max=65535)] = 8765,
    drivers: Annotated[int, typer.Option(help="simulated drivers", min=0, max=2000)] = 25,
    riders_per_hour: Annotated[float, typer.Option(help="mean requests per simulated hour", min=0)] = 120.0,
    orders_per_hour: Annotated[float, typer.Option(help="shop orders per simulated hour", min=0)] = 120.0,
    flash_minute: Annotated[float, typer.Option(help="simulated minute the flash sale opens", min=0)] = 3.0,
    data_dir: Annotated[
        Path | None, typer.Option(help="where the SQLite file goes (default: a temp dir)")
    ] = None,
) -> None:
    """Run the live city: API, dashboard and a seeded simulator on 127.0.0.1 until Ctrl-C."""
    try:
        pbf = resolve_map(map_name)
        console.print(f"hexcity {__version__} demo: map {pbf.name} (graph built once, then reused)")
        routing = _load_routing(pbf)
    except HexcityError as exc:
        console.print(f"[red]error[/red] {exc.code}: {exc.message}")
        raise typer.Exit(code=2) from None
    network = routing.get(PROFILE).engine.network
    west, south, east, north = bounds_of(network)
    center = LatLng((south + north) / 2, (west + east) / 2)
    work = data_dir or Path(tempfile.mkdtemp(prefix="hexcity-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    auth = AuthSettings(
        demo_mode=True,
        jwt_max_ttl_s=TOKEN_TTL_S,
        public_paths=[*DEFAULT_PUBLIC_PATHS, *web_public_paths()],
    )
    tokens = DemoTokens(auth)
    params = CityParams(center=_city_center(routing, center), radius_m=_radius_m(network), drivers=drivers,
                        riders_per_hour=riders_per_hour)  # fmt: skip
    sim = CitySim(
        f"http://127.0.0.1:{port}", tokens, params, load_trip_samples(trip_samples_path()),
        seed=seed, clock=SimClock(speed), transport="ws",
    )  # fmt: skip
    platform = build_platform(
        PlatformSettings(bus_url="memory://", database_url=f"sqlite:///{work / 'demo.db'}")
    )
    panels = PanelRegistry()
    feed = LiveFeed(platform.bus, panels=panels)
    panels.register("dispatch", "Ride-hailing dispatch", lambda: _dispatch_panel(feed))
    panels.register("simulator", "Simulator", lambda: _simulator_panel(sim, speed, seed))
    from hexcity.simulate import attach_shop  # noqa: PLC0415 - hexcity.simulate imports this module

    flash = FlashParams(at_s=flash_minute * 60, duration_s=3600)
    shop = attach_shop(
        panels, sim, seed=seed, orders_per_hour=orders_per_hour, flash=flash, featured_customer=DEMO_CUSTOMER
    )
    web = ModuleRuntime(
        name="web",
        routers=[
            build_web_router(
                routing,
                feed,
                demo_token=tokens.dashboard,
                demo_customer=(DEMO_CUSTOMER, lambda: tokens("rider", DEMO_CUSTOMER)),
            )
        ],
        lifespan=lambda: feed,
    )
    app = create_app(routing, auth, platform, [*build_modules(routing, platform), web])
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False, timeout_graceful_shutdown=3
    )
    try:
        asyncio.run(_run(_Server(config), sim, shop, feed, port, work))
    finally:
        if data_dir is None:  # our temp dir: nothing in it outlives the demo
            shutil.rmtree(work, ignore_errors=True)


async def _run(
    server: _Server, sim: CitySim, shop: ShopRuntime, feed: LiveFeed, port: int, work: Path
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop.is_set():
            server.force_exit = True
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    serving = asyncio.create_task(server.serve(), name="uvicorn")
    while not server.started:
        if serving.done():
            serving.result()  # a bind error surfaces here
            raise typer.Exit(code=1)
        await asyncio.sleep(0.05)
    console.print(f"[green]dashboard[/green] http://127.0.0.1:{port}/dashboard   (Ctrl-C to stop)")
    console.print(f"database in {work}; map data © OpenStreetMap contributors (ODbL)")
    console.print("trip lengths and time profile: NYC Taxi and Limousine Commission (TLC) trip records")
    simulating = asyncio.create_task(sim.run(stop), name="simulator")
    shopping = asyncio.create_task(shop.run(stop), name="shop")
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({serving, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stop.set()
    console.print("stopping: simulator, live streams, server…")
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(
            asyncio.gather(simulating, shopping, return_exceptions=True), SHUTDOWN_TIMEOUT_S
        )
    feed.close()
    server.should_exit = True
    await serving
    stopped.cancel()
    s = sim.stats
    console.print(f"stopped: {s.requests_sent} trips requested, {s.trips_completed} completed")


def _dispatch_panel(feed: LiveFeed) -> dict[str, Any]:
    k = feed.kpi_point()
    return {
        "drivers_available": k["drivers_online"],
        "drivers_on_trip": k["drivers_busy"],
        "riders_waiting": k["trips_waiting"],
        "trips_completed": k["trips_completed"],
        "trips_cancelled": k["trips_cancelled"],
        "offers_made": k["offers"],
        "bus_events_seen": feed.events_seen,
    }


def _simulator_panel(sim: CitySim, speed: float, seed: int) -> dict[str, Any]:
    s = sim.stats
    return {
        "seed": seed,
        "speed": f"{speed:g}×",
        "drivers_logged_in": len(sim.bots),
        "requests_sent": s.requests_sent,
        "requests_skipped": s.requests_skipped,
        "rides_in_flight": len(sim.rides),
        "trips_completed": s.trips_completed,
        "trips_failed": s.trips_failed,
        "errors": len(s.errors),
    }


def _city_center(routing: RoutingService, fallback: LatLng) -> LatLng:
    """The road vertex nearest the median of all vertices (a dense part of the map)."""
    network = routing.get(PROFILE).engine.network
    if network.geom_lat.size == 0:
        return fallback
    return LatLng(float(np.median(network.geom_lat)), float(np.median(network.geom_lon)))


def _radius_m(network: Any) -> float:
    """Where drivers and riders start: the radius holding the middle half of the road vertices."""
    lat = np.asarray(network.geom_lat, dtype=np.float64)
    lon = np.asarray(network.geom_lon, dtype=np.float64)
    if lat.size == 0:
        return 1000.0
    clat, clon = float(np.median(lat)), float(np.median(lon))
    dy = (lat - clat) * 111_320.0
    dx = (lon - clon) * 111_320.0 * np.cos(np.radians(clat))
    return float(min(50_000.0, max(500.0, np.percentile(np.hypot(dx, dy), 50))))


def main() -> None:  # pragma: no cover - ``python -m hexcity.demo``
    configure_logging("WARNING")
    typer.run(demo)


if __name__ == "__main__":  # pragma: no cover
    main()
