"""``hexcity simulate``: the demo's city, headless and faster than real time, ending in a KPI report.

The same app as ``hexcity demo`` (embedded defaults: SQLite in a temporary directory, in-process
bus, in-memory driver index) listens on a free 127.0.0.1 port; the seeded simulator drives it only
through the public HTTP/WS APIs — drivers and riders (:class:`CitySim`), shop customers with
warehouses, payments and deliveries (:class:`ShopSim`) — for ``--minutes`` simulated minutes, then
lets trips and deliveries in progress run for ``--drain-minutes`` more (no new demand), reads the
outcome back through the APIs and writes the KPIs as JSON (keys: :data:`REPORT_KEYS`, plus
``plan``, ``details``, ``notes`` and ``run``). See docs/demo.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import orjson
import typer
import uvicorn
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from hexcity import __version__
from hexcity.api import create_app
from hexcity.bootstrap import build_modules, build_platform
from hexcity.demo import (
    PROFILE,
    TOKEN_TTL_S,
    DemoTokens,
    _city_center,
    _dispatch_panel,
    _load_routing,
    _radius_m,
    _Server,
    _simulator_panel,
    console,
    resolve_map,
    trip_samples_path,
)
from hexcity.infra import configure_logging
from hexcity.infra.auth import AuthSettings
from hexcity.infra.auth.settings import DEFAULT_PUBLIC_PATHS
from hexcity.kernel import HexcityError, LatLng
from hexcity.platform import ModuleRuntime, PlatformSettings
from hexcity.simulator import CityParams, CitySim, SimClock, VirtualClock, load_trip_samples
from hexcity.simulator.flash import FlashParams, FlashSale
from hexcity.simulator.kpis import REPORT_KEYS, delivery_kpis, events_lost, pickup_eta_kpis
from hexcity.simulator.report import (
    LedgerWatch,
    fetch_feed_counters,
    fetch_ledger,
    fetch_trips,
    ledger_summary,
    probe,
)
from hexcity.simulator.shop import ShopParams, ShopSim
from hexcity.web import LiveFeed, PanelRegistry, bounds_of, build_web_router, web_public_paths
from hexcity.web.panels import flash_sale_figures, ledger_figures

__all__ = ["ShopRuntime", "attach_shop", "build_plan", "simulate_command"]

VIRTUAL_START_S = 1_767_600_000.0  # 2026-01-05T08:00:00Z: a Monday, 08:00 (the city's start hour)
TICK_S = 1.0  # virtual seconds per lockstep tick
SETTLE_S = 2.0  # wall seconds for the outbox relay and the live feed to catch up before reading back
STOP_TIMEOUT_S = 15.0
REPORT_TIMEOUT_S = 120.0
COMMERCE_PROBE = "/commerce/v1/campaigns"


def build_plan(
    sim: CitySim, shop: ShopSim, flash: FlashSale | None, *, seed: int, minutes: float, map_name: str
) -> dict[str, Any]:
    """What the seed decided (deterministic): counts of the planned shifts, requests and orders."""
    return {
        "seed": seed,
        "minutes": minutes,
        "map": map_name,
        "driver_shifts": len(sim.shifts),
        "drivers": len({s.driver_id for s in sim.shifts}),
        "trip_requests": len(sim.requests),
        "shop_orders": len(shop.orders),
        "first_request_s": sim.requests[0].at_s if sim.requests else None,
        "first_order_s": shop.orders[0].at_s if shop.orders else None,
        "flash_sale_at_s": None if flash is None else flash.params.at_s,
        "flash_buyers": None if flash is None else len(flash.buyers),
    }


def simulate_command(
    minutes: Annotated[float, typer.Option(help="simulated minutes of demand", min=0.5, max=24 * 60)] = 30.0,
    seed: Annotated[int, typer.Option(help="seed of the simulated city (same seed, same plan)")] = 1,
    report: Annotated[Path, typer.Option(help="where the KPI JSON goes")] = Path("simulate-report.json"),
    map_name: Annotated[
        str, typer.Option("--map", help="andorra, heidelberg or a path to an .osm.pbf")
    ] = "andorra",
    clock_mode: Annotated[
        str,
        typer.Option(
            "--clock",
            help="virtual: lockstep with the platform's manual clock, deterministic (default); "
            "wall: sped-up wall time like the demo",
        ),
    ] = "virtual",
    speed: Annotated[
        float, typer.Option(help="--clock wall only: simulated seconds per wall second", min=0.1, max=100)
    ] = 10.0,
    drain_minutes: Annotated[
        float,
        typer.Option(help="simulated minutes for trips and deliveries in progress to finish", min=0, max=240),
    ] = 5.0,
    drivers: Annotated[int, typer.Option(help="simulated drivers", min=0, max=2000)] = 25,
    riders_per_hour: Annotated[
        float, typer.Option(help="mean trip requests per simulated hour", min=0)
    ] = 120.0,
    orders_per_hour: Annotated[float, typer.Option(help="shop orders per simulated hour", min=0)] = 120.0,
    flash_minute: Annotated[
        float | None,
        typer.Option(help="simulated minute the flash sale opens (default: half of --minutes)", min=0),
    ] = None,
    flash_units: Annotated[int, typer.Option(help="flash-sale stock", min=1, max=1_000_000)] = 50,
    flash_buyers: Annotated[
        int, typer.Option(help="buyers in the flash-sale crowd (0: no sale)", min=0)
    ] = 150,
    plan_only: Annotated[bool, typer.Option("--plan-only", help="print the seeded plan and exit")] = False,
) -> None:
    """Run the city headless for MINUTES simulated minutes and write the KPIs as JSON."""
    if clock_mode not in ("virtual", "wall"):
        console.print(f"[red]error[/red] InvalidOption: --clock must be virtual or wall, not {clock_mode!r}")
        raise typer.Exit(code=2)
    virtual = clock_mode == "virtual"
    try:
        pbf = resolve_map(map_name)
        pace = "virtual time" if virtual else f"{speed:g}× wall time"
        console.print(f"hexcity {__version__} simulate: map {pbf.name}, seed {seed}, {minutes:g} min, {pace}")
        routing = _load_routing(pbf)
    except HexcityError as exc:
        console.print(f"[red]error[/red] {exc.code}: {exc.message}")
        raise typer.Exit(code=2) from None
    network = routing.get(PROFILE).engine.network
    west, south, east, north = bounds_of(network)
    center = _city_center(routing, LatLng((south + north) / 2, (west + east) / 2))
    radius_m = _radius_m(network)
    auth = AuthSettings(
        demo_mode=True, jwt_max_ttl_s=TOKEN_TTL_S, public_paths=[*DEFAULT_PUBLIC_PATHS, *web_public_paths()]
    )
    tokens = DemoTokens(auth)
    horizon_s = minutes * 60
    clock: SimClock | VirtualClock = (
        VirtualClock(VIRTUAL_START_S, tick_s=TICK_S) if virtual else SimClock(speed)
    )
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and
    # without it every small response waits for a delayed ACK (~40 ms a request, measured)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    params = CityParams(center=center, radius_m=radius_m, drivers=drivers, riders_per_hour=riders_per_hour)
    samples = load_trip_samples(trip_samples_path())
    sim = CitySim(
        url, tokens, params, samples, seed=seed, clock=clock, transport="http" if virtual else "ws",
        horizon_s=horizon_s + drain_minutes * 60, requests_until_s=horizon_s,
    )  # fmt: skip
    panels = PanelRegistry()
    flash = None
    if flash_buyers > 0:
        at_s = horizon_s / 2 if flash_minute is None else min(flash_minute * 60, horizon_s)
        flash = FlashParams(at_s=at_s, duration_s=max(60.0, horizon_s + drain_minutes * 60 - at_s),
                            units=flash_units, buyers=flash_buyers)  # fmt: skip
    shop = attach_shop(
        panels, sim, seed=seed, orders_per_hour=orders_per_hour, horizon_s=horizon_s, flash=flash
    )
    plan = build_plan(sim, shop.shop, shop.flash, seed=seed, minutes=minutes, map_name=map_name)
    if plan_only:
        sock.close()
        typer.echo(orjson.dumps(plan, option=orjson.OPT_INDENT_2).decode())
        return
    work = Path(tempfile.mkdtemp(prefix="hexcity-simulate-"))
    try:
        platform = build_platform(
            PlatformSettings(
                bus_url="memory://",
                database_url=f"sqlite:///{work / 'simulate.db'}",
                clock="manual" if virtual else "system",
                clock_start_s=VIRTUAL_START_S,
            )
        )
        feed = LiveFeed(platform.bus, panels=panels)
        panels.register("dispatch", "Ride-hailing dispatch", lambda: _dispatch_panel(feed))
        panels.register("simulator", "Simulator", lambda: _simulator_panel(sim, clock.speed, seed))
        web = ModuleRuntime(name="web", routers=[build_web_router(routing, feed)], lifespan=lambda: feed)
        app = create_app(routing, auth, platform, [*build_modules(routing, platform), web])
        # keep-alive far longer than any lockstep pause: a server-closed idle connection would fail
        # a request at a wall-clock moment (not deterministic)
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, timeout_graceful_shutdown=3, timeout_keep_alive=600
        )
        run = _Run(sim, shop, tokens, horizon_s, drain_minutes * 60)
        body = asyncio.run(run.serve(_Server(config), sock))
    finally:
        sock.close()
        shutil.rmtree(work, ignore_errors=True)
    body["plan"] = plan
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_bytes(orjson.dumps(body, option=orjson.OPT_INDENT_2))
    console.print(
        f"report {report}: {body['trips_requested']} trips requested, {body['trips_completed']} completed; "
        f"{body['orders_placed']} orders placed, {body['orders_delivered']} delivered; "
        f"ledger balanced: {body['ledger_balanced']}; events lost: {body['events_lost']}"
    )


class ShopRuntime:
    """The shop side of a simulated city: customers (:class:`ShopSim`), the flash sale (run only
    when the app serves ``/commerce/v1``) and the ledger watch behind the payments panel;
    ``run(stop)`` plays them until ``stop``."""

    def __init__(self, shop: ShopSim, watch: LedgerWatch, flash: FlashSale | None) -> None:
        self.shop = shop
        self.watch = watch
        self.flash = flash
        self.commerce_served: bool | None = None  # None until probed

    async def run(self, stop: asyncio.Event) -> None:
        admin = {"Authorization": f"Bearer {self.shop.tokens('admin', 'ledger-watch')}"}
        async with httpx.AsyncClient(base_url=self.shop.api_url, timeout=30.0) as http:
            self.commerce_served = await probe(http, admin, COMMERCE_PROBE)
            jobs = [self.shop.run(stop), self.watch.run(http, admin, stop)]
            if self.flash is not None and self.commerce_served:
                jobs.append(self.flash.run(stop))
            await asyncio.gather(*jobs)

    def flash_panel(self) -> dict[str, Any]:
        if self.flash is None or not self.commerce_served:
            return flash_sale_figures(None, None, None, "not running")
        k = self.flash.kpis()
        s = self.flash.stats
        figures = flash_sale_figures(
            k["flash_sale_units"], k["flash_sale_sold"], k["flash_sale_oversold"], self.flash.state
        )
        return {**figures, "buyers": len(self.flash.buyers), "attempts": s.attempts,
                "admissions": s.receipts, "orders": s.confirmed,
                "rate_limited": s.rate_limited, "told_sold_out": s.sold_out}  # fmt: skip

    def flash_kpis(self) -> tuple[dict[str, int | None], str | None]:
        """The three flash-sale KPIs and, when they are null, why."""
        nulls: dict[str, int | None] = dict.fromkeys(FLASH_KEYS)
        if self.flash is None:
            return nulls, "flash_sale_*: no sale was scheduled"
        if not self.commerce_served:
            return (
                nulls,
                "flash_sale_*: the app does not serve /commerce/v1 (commerce not wired); no sale was run",
            )
        k = self.flash.kpis()
        if k["flash_sale_units"] is None:
            return nulls, f"flash_sale_*: the sale could not be set up: {self.flash.stats.errors[:1]}"
        return k, None


FLASH_KEYS = ("flash_sale_units", "flash_sale_sold", "flash_sale_oversold")


def attach_shop(
    panels: PanelRegistry,
    sim: CitySim,
    *,
    seed: int,
    orders_per_hour: float = 120.0,
    horizon_s: float = 24 * 3600,
    flash: FlashParams | None = None,
    featured_customer: str | None = None,
) -> ShopRuntime:
    """Shop customers for ``sim``'s city (same API, tokens, clock, centre and radius), a flash sale
    (``flash``; runs if commerce is served) and the fulfillment, payments (ledger totals) and
    commerce (flash sale) panels. ``hexcity demo`` and ``hexcity simulate`` both use it."""
    params = ShopParams(
        sim.params.center, sim.params.radius_m, orders_per_hour, featured_customer=featured_customer
    )
    shop = ShopSim(sim.api_url, sim.tokens, params, seed=seed, clock=sim.clock, horizon_s=horizon_s)
    sale = None if flash is None else FlashSale(sim.api_url, sim.tokens, flash, seed=seed, clock=sim.clock)
    watch = LedgerWatch(lambda: _account_ids(sim, shop, sale, {params.currency}))
    runtime = ShopRuntime(shop, watch, sale)
    panels.register("fulfillment", "Fulfillment (warehouses, deliveries)", lambda: _shop_panel(shop))
    panels.register("payments", "Payments (ledger)", lambda: _ledger_panel(watch, params.currency))
    panels.register("commerce", "Commerce (flash sales, orders)", runtime.flash_panel)
    return runtime


def _ledger_panel(watch: LedgerWatch, currency: str) -> dict[str, Any]:
    if watch.as_of_s is None:
        return {"state": "reading the ledger…"}
    as_of = time.strftime("%H:%M:%S", time.localtime(watch.as_of_s))
    return {
        "balances as of": as_of,
        **ledger_figures(watch.by_kind, watch.currency or currency, watch.accounts),
    }


def _shop_panel(shop: ShopSim) -> dict[str, Any]:
    s = shop.stats
    k = delivery_kpis(shop.delivery_outcomes(), shop.day_s())
    return {
        "warehouses": len(shop.warehouse_ids),
        "orders_placed": s.orders_placed,
        "orders_allocated": s.orders_allocated,
        "orders_unallocated": s.orders_unallocated,
        "orders_paid": s.orders_paid,
        "out_for_delivery": k["orders_out_for_delivery"],
        "delivered": k["orders_delivered"],
        "split_rate": k["split_rate"],
        "on_time_rate": k["orders_on_time_rate"],
        "planning_rounds": s.plan_rounds,
        "errors": len(s.errors),
    }


def _account_ids(sim: CitySim, shop: ShopSim, flash: FlashSale | None, currencies: set[str]) -> set[str]:
    """Every ledger account the run can have moved money on (payments' naming scheme): the shop's,
    the platform's, every planned driver's earnings and the wallet of every rider with a trip."""
    ids = set(shop.accounts)
    drivers = {s.driver_id for s in sim.shifts}
    buyers = [] if flash is None else [b.buyer_id for b in flash.buyers]
    for c in currencies:
        if flash is not None:  # when commerce takes money through the ledger
            ids |= {f"merchant:{flash.params.merchant_id}:{c}"} | {f"wallet:{b}:{c}" for b in buyers}
        ids |= {f"platform:revenue:{c}", f"external:settlement:{c}"}
        ids |= {f"driver:{d}:{c}" for d in drivers}
        ids |= {f"wallet:{r}:{c}" for r in list(sim.rider_ids)}
    return ids


def _progress() -> Progress:
    """The run's progress bar (simulated seconds done of the total, wall time elapsed)."""
    return Progress(
        TextColumn("{task.description}"), BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f} sim s"), TimeElapsedColumn(),
        console=console, transient=True,
    )  # fmt: skip


class _Run:
    def __init__(
        self,
        sim: CitySim,
        runtime: ShopRuntime,
        tokens: DemoTokens,
        horizon_s: float,
        drain_s: float,
    ) -> None:
        self.sim, self.runtime, self.shop, self.tokens = sim, runtime, runtime.shop, tokens
        self.clock = sim.clock
        self.horizon_s, self.drain_s = horizon_s, drain_s

    async def serve(self, server: _Server, sock: socket.socket) -> dict[str, Any]:
        serving = asyncio.create_task(server.serve(sockets=[sock]), name="uvicorn")
        while not server.started:
            if serving.done():
                serving.result()
                raise typer.Exit(code=1)
            await asyncio.sleep(0.05)
        try:
            return await self._simulate()
        finally:
            server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(serving, STOP_TIMEOUT_S)

    async def _simulate(self) -> dict[str, Any]:
        wall0 = time.monotonic()
        stop = asyncio.Event()
        url = self.sim.api_url
        admin = {"Authorization": f"Bearer {self.tokens('admin', 'simulate-report')}"}
        async with httpx.AsyncClient(base_url=url, timeout=60.0) as http:
            start = self.clock.now()
            tasks = [
                asyncio.create_task(self.sim.run(stop), name="city"),
                asyncio.create_task(self.runtime.run(stop), name="shop"),
            ]
            total_s = self.horizon_s + self.drain_s
            try:
                if isinstance(self.clock, VirtualClock):
                    await self._lockstep(self.clock, http, admin, start, total_s, tasks)
                else:
                    await self._wall(start, total_s)
            finally:
                end_day_s = self.shop.day_s()
                stop.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), STOP_TIMEOUT_S)
            await asyncio.sleep(SETTLE_S)
            body = await asyncio.wait_for(self._report(http, admin, end_day_s), REPORT_TIMEOUT_S)
        body["run"] = {
            "clock": "virtual" if self.clock.virtual else "wall",
            "speed": self.clock.speed,
            "drain_minutes": self.drain_s / 60,
            "wall_s": round(time.monotonic() - wall0, 1),
            "simulator_errors": len(self.sim.stats.errors)
            + len(self.shop.stats.errors)
            + (len(self.runtime.flash.stats.errors) if self.runtime.flash else 0),
            "sample_errors": (self.sim.stats.errors + self.shop.stats.errors)[:10],
        }
        if isinstance(self.clock, VirtualClock):
            body["run"]["ticks"] = self.clock.ticks
            body["run"]["wakeups"] = self.clock.wakeups
            body["run"]["wakeups_by_kind"] = dict(sorted(self.clock.wakeups_by_kind.items()))
            body["run"]["advance_wall_s"] = round(self.clock.advance_wall_s, 1)
            body["run"]["actors_wall_s"] = round(self.clock.actors_wall_s, 1)
        return body

    async def _lockstep(
        self,
        clock: VirtualClock,
        http: httpx.AsyncClient,
        admin: dict[str, str],
        start: float,
        total_s: float,
        tasks: list[asyncio.Task[None]],
    ) -> None:
        """Virtual time: wait until every actor has been set up, then play tick by tick, advancing
        the platform's manual clock between ticks (``POST /admin/v1/clock/advance``)."""
        r = await http.get("/admin/v1/clock", headers=admin)
        r.raise_for_status()
        mode = r.json()
        if mode.get("mode") != "manual" or abs(float(mode["now"]) - start) > 1e-6:
            raise HexcityError(f"the platform's clock is not the simulator's: {mode}")
        deadline = time.monotonic() + REPORT_TIMEOUT_S
        while not self._set_up():
            if time.monotonic() > deadline or any(t.done() for t in tasks):
                raise HexcityError("the simulator's set-up did not finish")
            await asyncio.sleep(0.02)
        for _ in range(5):  # let the supervisors spawn their actors
            await asyncio.sleep(0)

        async def advance(seconds: float) -> None:
            r = await http.post("/admin/v1/clock/advance", json={"seconds": seconds}, headers=admin)
            if r.status_code != 200:
                raise HexcityError(f"clock advance {r.status_code}: {r.text[:300]}")

        with _progress() as progress:
            bar = progress.add_task("simulating (virtual time)", total=total_s)

            def on_tick(now: float) -> None:
                if clock.ticks % 10 == 0:
                    progress.update(bar, completed=now - start, description=self._status(now - start))

            try:
                await clock.run(start + total_s, advance, on_tick=on_tick)
            finally:
                await clock.shutdown()

    def _set_up(self) -> bool:
        """The shop is set up and the flash sale too (or it will not run)."""
        rt = self.runtime
        if not self.shop.ready.is_set() or rt.commerce_served is None:
            return False
        return rt.flash is None or not rt.commerce_served or rt.flash.setup_done.is_set()

    def _status(self, elapsed: float) -> str:
        s, o = self.sim.stats, self.shop.stats
        phase = "demand" if elapsed < self.horizon_s else "drain"
        return f"{phase}: {s.requests_sent} trips, {s.trips_completed} done; {o.orders_placed} orders"

    async def _wall(self, start: float, total_s: float) -> None:
        """Sped-up wall time: the actors run on their own; show progress until the end."""
        with _progress() as progress:
            bar = progress.add_task("simulating", total=total_s)
            while (elapsed := self.clock.now() - start) < total_s:
                progress.update(bar, completed=elapsed, description=self._status(elapsed))
                await asyncio.sleep(min(0.5, (total_s - elapsed) / self.clock.speed))

    async def _report(
        self, http: httpx.AsyncClient, admin: dict[str, str], end_day_s: float
    ) -> dict[str, Any]:
        notes: list[str] = []
        trips = await fetch_trips(http, admin, self.sim.trip_ids)
        statuses: dict[str, int] = {}
        for t in trips:
            statuses[str(t["status"])] = statuses.get(str(t["status"]), 0) + 1
        currencies = {str(t["fare"]["currency"]) for t in trips} | {self.shop.params.currency}
        known = _account_ids(self.sim, self.shop, self.runtime.flash, currencies)
        accounts, entries = await fetch_ledger(http, admin, known)
        ledger = ledger_summary(accounts, entries)
        # the whole book too, not only the accounts the simulation knows: one consistent read
        r = await http.get("/payments/v1/ledger/trial-balance", headers=admin)
        if r.status_code == 200:
            trial = r.json()
            ledger["trial_balance"] = trial
            ledger["balanced"] = bool(ledger["balanced"] and trial["balanced"])
        else:
            notes.append(f"ledger_balanced: trial balance unavailable ({r.status_code}); known accounts only")
        counters = await fetch_feed_counters(http, admin)
        published = {
            "requested": len(trips),
            "completed": statuses.get("completed", 0),
            "cancelled": statuses.get("cancelled", 0),
        }
        lost: int | None = None
        if counters is None:
            notes.append("events_lost: the live feed did not answer; not measured")
        else:
            lost = events_lost(published, counters)
        deliveries = delivery_kpis(self.shop.delivery_outcomes(), end_day_s)
        if self.shop.stats.orders_placed == 0:
            notes.append("shop: no order was accepted by the fulfillment API; order KPIs are null/0")
        flash, why = self.runtime.flash_kpis()
        if why is not None:
            notes.append(why)
        notes.append(
            "orders_delivered: every parcel was delivered through POST /fulfillment/v1/stops/{id}/delivered "
            "(couriers post at each stop's planned ETA); on time per the API against the SLA deadline"
        )
        notes.append("pickup_eta_s: the pickup ETA dispatch offered for each trip that got a driver")
        body: dict[str, Any] = {
            "trips_requested": len(self.sim.trip_ids),
            "trips_completed": statuses.get("completed", 0),
            "pickup_eta_s": pickup_eta_kpis(trips),
            "orders_placed": self.shop.stats.orders_placed,
            "orders_delivered": deliveries["orders_delivered"],
            "orders_on_time_rate": deliveries["orders_on_time_rate"],
            "split_rate": deliveries["split_rate"],
            **flash,
            "ledger_balanced": ledger["balanced"],
            "events_lost": lost,
        }
        if list(body) != list(REPORT_KEYS):
            raise RuntimeError("report keys drifted from REPORT_KEYS")
        o = self.shop.stats
        body["details"] = {
            "trips": {
                "by_status": dict(sorted(statuses.items())),
                "skipped": self.sim.stats.requests_skipped,
            },
            "orders": {
                **deliveries,
                "unallocated": o.orders_unallocated,
                "paid": o.orders_paid,
                "payments_failed": o.payments_failed,
                "skipped": o.orders_skipped,
                "revenue_minor": o.revenue_minor,
            },
            "ledger": ledger,
            "events": {"published": published, "consumed": counters},
            "flash_sale": self._flash_details(),
        }
        body["notes"] = notes
        return body

    def _flash_details(self) -> dict[str, Any] | None:
        sale = self.runtime.flash
        if sale is None or not self.runtime.commerce_served:
            return None
        st = sale.stats
        rec = sale.reconciliation or {}
        return {
            "campaign_id": sale.campaign_id,
            "buyers": len(sale.buyers),
            "attempts": st.attempts,
            "receipts": st.receipts,
            "confirmed": st.confirmed,
            "told_sold_out": st.sold_out,
            "rate_limited": st.rate_limited,
            "not_open": st.not_open,
            "gave_up": st.gave_up,
            "errors": st.errors[:5],
            "engine": rec.get("snapshot"),
            "reconciled_balanced": rec.get("balanced"),
        }


def main() -> None:  # pragma: no cover - ``python -m hexcity.simulate``
    configure_logging("WARNING")
    typer.run(simulate_command)


if __name__ == "__main__":  # pragma: no cover
    main()
