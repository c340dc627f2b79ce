"""Simulated drivers that use the platform exactly as a driver app does.

A :class:`DriverBot` reports its position over MQTT (``hexcity/drivers/{id}/location``, JSON
pings with a per-driver monotonic ``seq``) — or, with ``BotConfig.transport``, over the HTTP
intake (``POST /dispatch/v1/pings``) or its WebSocket (``/dispatch/v1/drivers/ws``) — listens
for offers on the push WebSocket, accepts them over HTTP, drives the road route the routing API
returns to the pickup and then to the drop-off (pinging on the way), and reports
``driver_arriving``, ``in_trip`` and ``completed``.
It imports nothing of the platform: only its public wire protocols.

Time may run faster than real time (``speed``): ping timestamps and movement are in simulated
seconds, and pings leave at most once per ``min_ping_wall_s`` of wall time so that the per-driver
rate limit (1/s, burst 3) holds at any speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import random
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
import httpx
import orjson
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import WebSocketException

from hexcity.kernel import LatLng, haversine_m
from hexcity.simulator.clock import Clock, SimClock

__all__ = ["BotConfig", "DriverBot", "DriverStats", "SimClock", "route_path", "spread"]

TERMINAL = {"completed", "cancelled"}
TRANSPORTS = ("mqtt", "http", "ws")
MAX_ERRORS = 100


@dataclass(frozen=True)
class BotConfig:
    api_url: str
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    ping_every_s: float = 4.0  # simulated seconds between pings (dispatch.md §2.1)
    min_ping_wall_s: float = 1.05  # never faster than the 1/s rate limit
    accept_probability: float = 1.0
    accuracy_m: float = 8.0
    request_timeout_s: float = 10.0
    transport: str = "mqtt"  # how pings travel: mqtt, http (POST /dispatch/v1/pings) or ws (intake socket)
    offer_poll_s: float | None = (
        None  # poll pending offers this often (simulated s) instead of the push socket
    )

    def __post_init__(self) -> None:
        if self.transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {TRANSPORTS}")
        if self.offer_poll_s is not None and not 0 < self.offer_poll_s <= 60:
            raise ValueError("offer_poll_s must be in (0, 60]")


@dataclass
class DriverStats:
    pings_sent: int = 0
    pings_rejected: int = 0  # answered with anything but accepted (http and ws transports)
    offers: int = 0
    accepted: int = 0
    declined: int = 0
    lost: int = 0  # accept answered 409 (expired, cancelled)
    completed: int = 0
    errors: list[str] = field(default_factory=list)


async def route_path(
    http: httpx.AsyncClient, a: LatLng, b: LatLng, headers: dict[str, str]
) -> tuple[list[LatLng], float]:
    """Road geometry and duration (s) from the OSRM-compatible routing API."""
    url = f"/route/v1/driving/{a.lng:.6f},{a.lat:.6f};{b.lng:.6f},{b.lat:.6f}"
    r = await http.get(url, params={"overview": "full", "geometries": "geojson"}, headers=headers)
    r.raise_for_status()
    route = r.json()["routes"][0]
    coords = [LatLng(lat, lng) for lng, lat in route["geometry"]["coordinates"]]
    return coords or [a, b], float(route["duration"])


def _point_along(path: list[LatLng], cum_m: list[float], at_m: float) -> LatLng:
    if at_m <= 0 or len(path) == 1:
        return path[0]
    if at_m >= cum_m[-1]:
        return path[-1]
    lo, hi = 0, len(cum_m) - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if cum_m[mid] <= at_m:
            lo = mid
        else:
            hi = mid
    seg = cum_m[hi] - cum_m[lo]
    f = 0.0 if seg <= 0 else (at_m - cum_m[lo]) / seg
    a, b = path[lo], path[hi]
    return LatLng(a.lat + (b.lat - a.lat) * f, a.lng + (b.lng - a.lng) * f)


class DriverBot:
    """One driver: MQTT pings, push WebSocket for offers, HTTP for answers and progress."""

    def __init__(
        self,
        driver_id: str,
        token: str,
        start: LatLng,
        config: BotConfig,
        http: httpx.AsyncClient,
        clock: Clock,
        rng: random.Random,
    ) -> None:
        self.driver_id = driver_id
        self.position = start
        self.status = "online"
        self.config = config
        self.http = http
        self.clock = clock
        self.rng = rng
        self.headers = {"Authorization": f"Bearer {token}"}
        self.stats = DriverStats()
        self.trip_id: str | None = None
        self._seq = 0
        self._last_seq_seen = 0
        self._mqtt: aiomqtt.Client | None = None
        self._ws: ClientConnection | None = None
        self._ws_reader: asyncio.Task[None] | None = None
        self._moved = asyncio.Event()
        self._trip_task: asyncio.Task[None] | None = None

    def _error(self, text: str) -> None:
        """Remember an error (the last ``MAX_ERRORS``; a long demo must not grow memory)."""
        self.stats.errors.append(text)
        if len(self.stats.errors) > MAX_ERRORS:
            del self.stats.errors[0]

    @property
    def topic(self) -> str:
        return f"hexcity/drivers/{self.driver_id}/location"

    async def run(self, stop: asyncio.Event) -> None:
        """Drive until ``stop``; then report offline and leave."""
        cfg = self.config
        async with contextlib.AsyncExitStack() as stack:
            if cfg.transport == "mqtt":
                client = aiomqtt.Client(cfg.mqtt_host, cfg.mqtt_port, identifier=f"sim-{self.driver_id}")
                self._mqtt = await stack.enter_async_context(client)
            elif cfg.transport == "ws":
                stack.push_async_callback(self._close_ws)
            offers = self._poll_loop(stop) if cfg.offer_poll_s else self._push_loop(stop)
            tasks = [
                self.clock.spawn(self._ping_loop(stop), name=f"ping-{self.driver_id}"),
                self.clock.spawn(offers, name=f"offers-{self.driver_id}"),
            ]
            await self.clock.wait(stop)
            if self._trip_task is not None:
                self._trip_task.cancel()
            for t in tasks:
                t.cancel()
            for t in [*tasks, *([self._trip_task] if self._trip_task else [])]:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            self.status = "offline"
            with contextlib.suppress(Exception):
                await self._ping()

    def _payload(self) -> dict[str, Any]:
        self._seq += 1
        p = self.position
        return {
            "driver_id": self.driver_id,
            "seq": self._seq,
            "timestamp": round(self.clock.now(), 3),
            "lat": p.lat,
            "lon": p.lng,
            "accuracy": self.config.accuracy_m,
            "status": "busy" if self.status == "busy" else self.status,
        }

    async def _ping(self) -> None:
        transport = self.config.transport
        if transport == "mqtt":
            if self._mqtt is None:
                return
            await self._mqtt.publish(self.topic, orjson.dumps(self._payload()), qos=0)
        elif transport == "http":
            r = await self.http.post(
                "/dispatch/v1/pings", json={"pings": [self._payload()]}, headers=self.headers
            )
            if r.status_code != 200 or r.json()["results"][0].get("result") != "accepted":
                self.stats.pings_rejected += 1
        else:
            await self._ws_send(self._payload())
        self.stats.pings_sent += 1

    async def _ws_send(self, payload: dict[str, Any]) -> None:
        """One ping frame on the intake WebSocket, (re)connecting first when needed."""
        if self._ws is None:
            base = self.config.api_url.replace("http://", "ws://").replace("https://", "wss://")
            self._ws = await ws_connect(
                f"{base}/dispatch/v1/drivers/ws", additional_headers=self.headers, open_timeout=5
            )
            self._ws_reader = asyncio.create_task(self._ws_answers(self._ws), name=f"ws-{self.driver_id}")
        try:
            await self._ws.send(orjson.dumps(payload).decode())
        except WebSocketException:
            await self._close_ws()
            raise

    async def _ws_answers(self, ws: ClientConnection) -> None:
        """Read the intake's answers (a socket nobody reads would stall); count rejections."""
        with contextlib.suppress(WebSocketException, OSError):
            async for raw in ws:
                answer = orjson.loads(raw)
                if answer.get("r") not in (None, "accepted"):
                    self.stats.pings_rejected += 1
        if self._ws is ws:
            self._ws = None

    async def _close_ws(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
        if self._ws_reader is not None:
            self._ws_reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._ws_reader
            self._ws_reader = None

    async def _ping_loop(self, stop: asyncio.Event) -> None:
        interval_s = max(self.config.ping_every_s, self.config.min_ping_wall_s * self.clock.speed)
        while not stop.is_set():
            try:
                await self._ping()
            except aiomqtt.MqttError as exc:  # broker restart: the next ping supersedes this one
                self._error(f"mqtt: {exc}")
            except (OSError, TimeoutError, WebSocketException, httpx.HTTPError, KeyError, ValueError) as exc:
                self._error(f"ping {self.config.transport}: {type(exc).__name__}")
            await self.clock.sleep(interval_s * self.rng.uniform(0.95, 1.05))

    async def _poll_loop(self, stop: asyncio.Event) -> None:
        """Offers by polling ``GET /dispatch/v1/drivers/{id}/offers`` every ``offer_poll_s``
        simulated seconds (what a driver app does on reconnect; the lockstep simulation uses it
        because a push socket delivers at a wall-clock moment)."""
        every_s = float(self.config.offer_poll_s or 2.0)
        while not stop.is_set():
            if self.trip_id is None:  # on a trip no offer is taken (the platform knows it)
                try:
                    await self._poll_offers()
                except (OSError, TimeoutError, httpx.HTTPError, KeyError, ValueError) as exc:
                    self._error(f"offers: {type(exc).__name__}")
            await self.clock.sleep(every_s)

    async def _poll_offers(self) -> None:
        r = await self.http.get(f"/dispatch/v1/drivers/{self.driver_id}/offers", headers=self.headers)
        r.raise_for_status()
        for offer in r.json()["offers"]:
            await self._on_offer(offer)

    async def _push_loop(self, stop: asyncio.Event) -> None:
        base = self.config.api_url.replace("http://", "ws://").replace("https://", "wss://")
        while not stop.is_set():
            url = f"{base}/dispatch/v1/push/ws?last_seq={self._last_seq_seen}"
            try:
                async with ws_connect(url, additional_headers=self.headers, open_timeout=5) as ws:
                    async for raw in ws:
                        frame = orjson.loads(raw)
                        seq = frame.get("seq")
                        if seq is None:
                            continue  # heartbeat
                        self._last_seq_seen = max(self._last_seq_seen, int(seq))
                        await ws.send(orjson.dumps({"ack": int(seq)}).decode())
                        if frame.get("kind") == "offer":
                            await self._on_offer(frame["data"])
            except (OSError, WebSocketException, TimeoutError, httpx.HTTPError, KeyError, ValueError) as exc:
                self._error(f"push: {type(exc).__name__}")
                await asyncio.sleep(0.5)  # reconnect; unacked offers are replayed

    async def _on_offer(self, offer: dict[str, Any]) -> None:
        self.stats.offers += 1
        offer_id = offer["offer_id"]
        if self.trip_id is not None or self.rng.random() >= self.config.accept_probability:
            r = await self.http.post(f"/dispatch/v1/offers/{offer_id}/decline", headers=self.headers)
            if r.status_code == 200:
                self.stats.declined += 1
            return
        r = await self.http.post(f"/dispatch/v1/offers/{offer_id}/accept", headers=self.headers)
        if r.status_code != 200:
            self.stats.lost += 1
            return
        trip = r.json()
        self.stats.accepted += 1
        self.trip_id = trip["trip_id"]
        self.status = "busy"
        self._trip_task = self.clock.spawn(self._do_trip(trip), name=f"trip-{self.driver_id}")

    async def _progress(self, trip_id: str, status: str) -> dict[str, Any]:
        r = await self.http.post(
            f"/dispatch/v1/trips/{trip_id}/status", json={"status": status}, headers=self.headers
        )
        r.raise_for_status()
        body: dict[str, Any] = r.json()
        return body

    async def _drive(self, path: list[LatLng], duration_s: float) -> None:
        cum = [0.0]
        for a, b in itertools.pairwise(path):
            cum.append(cum[-1] + haversine_m(a, b))
        if cum[-1] <= 0 or duration_s <= 0:
            self.position = path[-1]
            return
        t0 = self.clock.now()
        while True:
            f = (self.clock.now() - t0) / duration_s
            self.position = _point_along(path, cum, min(1.0, f) * cum[-1])
            if f >= 1.0:
                return
            speed = self.clock.speed  # wall: a frame every 20..250 ms; virtual: every tick
            await self.clock.sleep(min(0.25 * speed, max(0.02 * speed, duration_s / 50)))

    async def _do_trip(self, trip: dict[str, Any]) -> None:
        trip_id = trip["trip_id"]
        pickup = LatLng(trip["pickup"]["lat"], trip["pickup"]["lng"])
        dropoff = LatLng(trip["dropoff"]["lat"], trip["dropoff"]["lng"])
        try:
            await self._progress(trip_id, "driver_arriving")
            path, duration_s = await route_path(self.http, self.position, pickup, self.headers)
            await self._drive(path, duration_s)
            state = await self.http.get(f"/dispatch/v1/trips/{trip_id}", headers=self.headers)
            if state.json().get("status") in TERMINAL:
                return  # the rider cancelled on the way
            await self._progress(trip_id, "in_trip")
            path, duration_s = await route_path(self.http, pickup, dropoff, self.headers)
            await self._drive(path, duration_s)
            final = await self._progress(trip_id, "completed")
            if final["status"] == "completed":
                self.stats.completed += 1
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            self._error(f"trip {trip_id}: {type(exc).__name__}: {exc}"[:300])
        finally:
            self.trip_id = None
            self.status = "online"


def spread(center: LatLng, radius_m: float, n: int, rng: random.Random) -> list[LatLng]:
    """``n`` points uniformly in a disc around ``center`` (start positions)."""
    out = []
    for _ in range(n):
        r = radius_m * math.sqrt(rng.random())
        theta = rng.uniform(0, 2 * math.pi)
        dlat = (r * math.cos(theta)) / 111_320.0
        dlng = (r * math.sin(theta)) / (111_320.0 * math.cos(math.radians(center.lat)))
        out.append(LatLng(center.lat + dlat, center.lng + dlng))
    return out
