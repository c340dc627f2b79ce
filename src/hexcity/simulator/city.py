"""A seeded city: driver shifts and rider requests planned up front, then played over the wire APIs.

The plan is a pure function of (trip samples, params, seed): the same seed gives the same drivers,
log-in/log-out times, request times, pickups and trip lengths. Playing it (:class:`CitySim`)
depends on wall-clock timing and the platform's answers, so outcomes are not bit-exact.

Demand follows real data: trip lengths and the hour-of-day profile come from the NYC TLC yellow
taxi sample (``shared/data/trips``; rows with 0.0 coordinates are dropped). Requests arrive as a
non-homogeneous Poisson process (thinning, Lewis & Shedler 1979) with rate
``riders_per_hour × profile[hour]``; a trip's drop-off lies the sampled distance away from its
pickup in a random direction, both snapped to the road by the routing API's ``nearest``.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx

from hexcity.kernel import LatLng
from hexcity.simulator.clock import Clock, SimClock
from hexcity.simulator.drivers import BotConfig, DriverBot, spread
from hexcity.simulator.riders import RiderResult, ride

__all__ = [
    "CityParams",
    "CitySim",
    "CityStats",
    "PlannedRequest",
    "PlannedShift",
    "TripSample",
    "hourly_profile",
    "load_trip_samples",
    "plan_requests",
    "plan_shifts",
]

MILE_M = 1609.344
MAX_SAMPLES = 100_000
MAX_TRIP_IDS = 1_000_000
TokenSource = Callable[[str, str], str]  # (role, subject) -> bearer token


@dataclass(frozen=True)
class TripSample:
    distance_m: float
    hour: int  # local hour of the pickup, 0..23


@dataclass(frozen=True)
class CityParams:
    """What the city looks like; times are simulated seconds from the start."""

    center: LatLng
    radius_m: float = 3000.0
    drivers: int = 25
    riders_per_hour: float = 90.0  # mean over the day; the hourly profile shapes it
    start_hour: float = 8.0  # simulated local time of day at the start
    shift_mean_s: float = 2.5 * 3600
    break_mean_s: float = 15 * 60
    max_trip_m: float = 8000.0
    min_trip_m: float = 500.0
    max_active_riders: int = 60  # requests beyond this many in flight are skipped (and counted)
    rider_timeout_s: float = 600.0  # wall seconds a rider follows a trip (wall clock)
    rider_timeout_virtual_s: float = 7200.0  # simulated seconds a rider follows a trip (virtual clock)

    def __post_init__(self) -> None:
        if not 100 <= self.radius_m <= 50_000:
            raise ValueError("radius_m must be in [100, 50000]")
        if not 0 <= self.drivers <= 2000:
            raise ValueError("drivers must be in [0, 2000]")
        if not 0 <= self.riders_per_hour <= 100_000:
            raise ValueError("riders_per_hour must be in [0, 100000]")
        if not 0 <= self.start_hour < 24:
            raise ValueError("start_hour must be in [0, 24)")
        if not 0 < self.min_trip_m <= self.max_trip_m:
            raise ValueError("need 0 < min_trip_m <= max_trip_m")


@dataclass(frozen=True)
class PlannedShift:
    driver_id: str
    start: LatLng
    login_at_s: float
    logout_at_s: float


@dataclass(frozen=True)
class PlannedRequest:
    rider_id: str
    at_s: float
    pickup: LatLng
    distance_m: float
    bearing_deg: float


def load_trip_samples(path: Path, limit: int = MAX_SAMPLES) -> list[TripSample]:
    """Trip lengths and pickup hours from a TLC yellow-taxi CSV.

    Drops rows with a 0.0 coordinate or a non-positive distance; reads at most ``limit`` rows.
    Raises ValueError if the file has none left (or lacks the TLC columns).
    """
    out: list[TripSample] = []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        for i, row in enumerate(reader):
            if i >= limit:
                break
            try:
                coords = [float(row[k]) for k in _COORD_COLUMNS]
                miles = float(row["trip_distance"])
                hour = datetime.fromisoformat(row["tpep_pickup_datetime"]).hour
            except (KeyError, ValueError):
                continue
            if any(c == 0.0 for c in coords) or miles <= 0:
                continue
            out.append(TripSample(miles * MILE_M, hour))
    if not out:
        raise ValueError(f"{path}: no usable trips (TLC columns with non-zero coordinates)")
    return out


_COORD_COLUMNS = ("pickup_longitude", "pickup_latitude", "dropoff_longitude", "dropoff_latitude")


def hourly_profile(samples: list[TripSample]) -> list[float]:
    """24 demand weights with mean 1.0 (add-one smoothing: no hour is ever zero)."""
    counts = [1.0] * 24
    for s in samples:
        counts[s.hour] += 1
    mean = sum(counts) / 24
    return [c / mean for c in counts]


def plan_shifts(params: CityParams, rng: random.Random, horizon_s: float) -> list[PlannedShift]:
    """Every driver's shifts until ``horizon_s``: most log in in the first minute, then work
    exponential shifts (mean ``shift_mean_s``) separated by breaks (mean ``break_mean_s``)."""
    shifts: list[PlannedShift] = []
    starts = spread(params.center, params.radius_m, params.drivers, rng)
    for i, start in enumerate(starts):
        t = rng.uniform(0, 60) if rng.random() < 0.8 else rng.uniform(0, 900)
        while t < horizon_s:
            end = t + max(300.0, rng.expovariate(1 / params.shift_mean_s))
            shifts.append(PlannedShift(f"driver-{i:03d}", start, round(t, 3), round(min(end, horizon_s), 3)))
            t = end + max(60.0, rng.expovariate(1 / params.break_mean_s))
    shifts.sort(key=lambda s: (s.login_at_s, s.driver_id))
    return shifts


def plan_requests(
    samples: list[TripSample], params: CityParams, rng: random.Random, horizon_s: float
) -> list[PlannedRequest]:
    """Rider requests until ``horizon_s`` (thinning of a Poisson process at the peak rate)."""
    if params.riders_per_hour <= 0 or not samples:
        return []
    profile = hourly_profile(samples)
    peak_per_s = params.riders_per_hour * max(profile) / 3600
    out: list[PlannedRequest] = []
    t = 0.0
    while True:
        t += rng.expovariate(peak_per_s)
        if t >= horizon_s:
            return out
        hour = int((params.start_hour + t / 3600) % 24)
        if rng.random() * max(profile) > profile[hour]:
            continue
        sample = rng.choice(samples)
        distance_m = min(params.max_trip_m, max(params.min_trip_m, sample.distance_m))
        pickup = spread(params.center, params.radius_m, 1, rng)[0]
        rider_id = f"rider-{len(out):05d}"
        out.append(PlannedRequest(rider_id, round(t, 3), pickup, round(distance_m, 1), rng.uniform(0, 360)))


def destination(origin: LatLng, distance_m: float, bearing_deg: float) -> LatLng:
    """The point ``distance_m`` from ``origin`` on ``bearing_deg`` (flat-earth; short trips)."""
    theta = math.radians(bearing_deg)
    dlat = distance_m * math.cos(theta) / 111_320.0
    dlng = distance_m * math.sin(theta) / (111_320.0 * math.cos(math.radians(origin.lat)))
    return LatLng(origin.lat + dlat, origin.lng + dlng)


@dataclass
class CityStats:
    drivers_logged_in: int = 0
    drivers_logged_out: int = 0
    requests_sent: int = 0
    requests_skipped: int = 0  # over max_active_riders
    trips_completed: int = 0
    trips_failed: int = 0
    errors: list[str] = field(default_factory=list)

    def error(self, text: str) -> None:
        self.errors.append(text[:300])
        if len(self.errors) > 100:
            del self.errors[0]


class CitySim:
    """Plays a plan against a running platform at ``clock.speed`` until ``stop`` is set."""

    def __init__(
        self,
        api_url: str,
        tokens: TokenSource,
        params: CityParams,
        samples: list[TripSample],
        *,
        seed: int = 1,
        clock: Clock | None = None,
        horizon_s: float = 24 * 3600,
        transport: str = "ws",
        requests_until_s: float | None = None,
    ) -> None:
        """``horizon_s``: drivers work until then; riders request until ``requests_until_s``
        (default the horizon), so a run can end with a drain in which trips in progress finish."""
        self.api_url = api_url
        self.tokens = tokens
        self.params = params
        self.seed = seed
        self.clock: Clock = clock or SimClock(1.0)
        rng = random.Random(seed)
        self.shifts = plan_shifts(params, rng, horizon_s)
        until_s = horizon_s if requests_until_s is None else min(horizon_s, requests_until_s)
        self.requests = plan_requests(samples, params, rng, until_s)
        # a virtual clock polls offers (a push socket delivers at a wall-clock moment)
        poll_s = 4.0 if self.clock.virtual else None
        self.config = BotConfig(api_url=api_url, transport=transport, offer_poll_s=poll_s)
        self.stats = CityStats()
        self.bots: dict[str, DriverBot] = {}
        self.rides: set[asyncio.Task[RiderResult]] = set()
        self.shift_tasks: set[asyncio.Task[None]] = set()
        self.trip_ids: list[str] = []  # every trip the platform accepted, in request order
        self.rider_ids: set[str] = set()  # riders the platform accepted a trip from
        self._snap_cache: dict[tuple[float, float], LatLng] = {}

    async def run(self, stop: asyncio.Event) -> None:
        """Log drivers in and out and send riders on schedule; on ``stop`` everyone leaves."""
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
        async with httpx.AsyncClient(base_url=self.api_url, timeout=15.0, limits=limits) as http:
            self._http = http
            self._admin = {"Authorization": f"Bearer {self.tokens('admin', 'simulator')}"}
            t0 = self.clock.now()
            tasks = [
                self.clock.spawn(self._drivers(stop, t0), name="sim-drivers"),
                self.clock.spawn(self._riders(stop, t0), name="sim-riders"),
            ]
            await stop.wait()
            for task in [*tasks, *self.rides, *self.shift_tasks]:
                task.cancel()
            for task in [*tasks, *self.rides, *self.shift_tasks]:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _until(self, t0: float, at_s: float, stop: asyncio.Event) -> bool:
        """Sleep until simulated ``t0 + at_s``; False if ``stop`` came first."""
        return await self.clock.sleep_until(t0 + at_s, stop)

    async def _drivers(self, stop: asyncio.Event, t0: float) -> None:
        for shift in self.shifts:
            task = self.clock.spawn(self._shift(shift, stop, t0), name=f"shift-{shift.driver_id}")
            self.shift_tasks.add(task)
            task.add_done_callback(self.shift_tasks.discard)

    async def _shift(self, shift: PlannedShift, stop: asyncio.Event, t0: float) -> None:
        if not await self._until(t0, shift.login_at_s, stop):
            return
        while shift.driver_id in self.bots:  # the previous shift is still logging out
            await self.clock.sleep(0.2 * self.clock.speed)
        try:
            start = await self._snap(shift.start)
        except (httpx.HTTPError, KeyError, IndexError, ValueError) as exc:
            self.stats.error(f"snap {shift.driver_id}: {type(exc).__name__}")
            return
        rng = random.Random(f"{self.seed}:{shift.driver_id}:{shift.login_at_s}")
        token = self.tokens("driver", shift.driver_id)
        bot = DriverBot(shift.driver_id, token, start, self.config, self._http, self.clock, rng)
        self.bots[shift.driver_id] = bot
        self.stats.drivers_logged_in += 1
        leave = asyncio.Event()
        task = self.clock.spawn(bot.run(leave), name=f"bot-{shift.driver_id}")
        try:
            await self._until(t0, shift.logout_at_s, stop)
            while bot.trip_id is not None and not stop.is_set():  # finish the trip first
                await self.clock.sleep(0.5 * self.clock.speed)
        finally:
            leave.set()
            with contextlib.suppress(Exception):
                await self.clock.join(task)
            self.bots.pop(shift.driver_id, None)
            self.stats.drivers_logged_out += 1

    async def _riders(self, stop: asyncio.Event, t0: float) -> None:
        for request in self.requests:
            if not await self._until(t0, request.at_s, stop):
                return
            if len(self.rides) >= self.params.max_active_riders:
                self.stats.requests_skipped += 1
                continue
            task = self.clock.spawn(self._ride(request), name=f"ride-{request.rider_id}")
            self.rides.add(task)
            task.add_done_callback(self._ride_done)

    def _ride_done(self, task: asyncio.Task[RiderResult]) -> None:
        self.rides.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.stats.error(f"ride: {task.exception()!r}")

    async def _ride(self, request: PlannedRequest) -> RiderResult:
        try:
            pickup = await self._snap(request.pickup)
            dropoff = await self._snap(destination(pickup, request.distance_m, request.bearing_deg))
        except (httpx.HTTPError, KeyError, IndexError, ValueError) as exc:
            self.stats.error(f"snap {request.rider_id}: {type(exc).__name__}")
            return RiderResult(request.rider_id, error="snap failed")
        self.stats.requests_sent += 1
        token = self.tokens("rider", request.rider_id)
        p = self.params
        patience_s = p.rider_timeout_virtual_s if self.clock.virtual else p.rider_timeout_s
        try:
            result = await ride(
                self._http, request.rider_id, token, pickup, dropoff,
                timeout_s=patience_s,
                poll_s=5.0 if self.clock.virtual else 0.25,
                clock=self.clock,
                on_trip=lambda trip_id: self._on_trip(trip_id, request.rider_id),
            )  # fmt: skip
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            result = RiderResult(request.rider_id, error=f"{type(exc).__name__}: {exc}")
        if result.status == "completed":
            self.stats.trips_completed += 1
        else:
            self.stats.trips_failed += 1
            if result.error:
                self.stats.error(f"{request.rider_id}: {result.error}")
        return result

    def _on_trip(self, trip_id: str, rider_id: str) -> None:
        if len(self.trip_ids) < MAX_TRIP_IDS:
            self.trip_ids.append(trip_id)
            self.rider_ids.add(rider_id)

    async def _snap(self, p: LatLng) -> LatLng:
        """``p`` on the road; a point too far from any road is pulled halfway to the centre, then
        to the centre itself (mountains and lakes have no roads)."""
        center = self.params.center
        for f in (1.0, 0.5, 0.0):
            q = LatLng(center.lat + (p.lat - center.lat) * f, center.lng + (p.lng - center.lng) * f)
            try:
                return await self._snap_once(q)
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code != 400:
                    raise
        raise ValueError(f"no road near {center}")

    async def _snap_once(self, p: LatLng) -> LatLng:
        key = (round(p.lat, 5), round(p.lng, 5))
        hit = self._snap_cache.get(key)
        if hit is not None:
            return hit
        r = await self._http.get(f"/nearest/v1/driving/{p.lng:.6f},{p.lat:.6f}", headers=self._admin)
        r.raise_for_status()
        lng, lat = r.json()["waypoints"][0]["location"]
        snapped = LatLng(float(lat), float(lng))
        if len(self._snap_cache) < 10_000:
            self._snap_cache[key] = snapped
        return snapped
