"""Simulated riders: quote, request, and follow the trip over the public HTTP API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from hexcity.kernel import LatLng
from hexcity.simulator.clock import Clock

__all__ = ["RiderResult", "ride"]

TERMINAL = {"completed", "cancelled"}


@dataclass
class RiderResult:
    rider_id: str
    trip_id: str | None = None
    status: str = "not_requested"
    fare_cents: int | None = None
    driver_id: str | None = None
    wait_s: float | None = None  # wall seconds from request to driver assigned
    statuses: list[str] = field(default_factory=list)
    error: str | None = None


async def ride(
    http: httpx.AsyncClient,
    rider_id: str,
    token: str,
    pickup: LatLng,
    dropoff: LatLng,
    *,
    product: str = "standard",
    timeout_s: float = 120.0,
    poll_s: float = 0.25,
    on_trip: Callable[[str], None] | None = None,
    clock: Clock | None = None,
) -> RiderResult:
    """One trip from quote to completion (or until ``timeout_s`` of the platform's time); ``on_trip``
    is called with the trip id as soon as the platform accepts the request. ``timeout_s`` and
    ``poll_s`` are platform seconds: wall seconds, or virtual ones with a virtual ``clock``."""
    speed = 1.0 if clock is None else clock.speed

    def now() -> float:
        return time.monotonic() if clock is None else clock.now() / speed

    async def pause() -> None:
        if clock is None:
            await asyncio.sleep(poll_s)
        else:
            await clock.sleep(poll_s * speed)

    headers = {"Authorization": f"Bearer {token}"}
    result = RiderResult(rider_id)
    body: dict[str, Any] = {
        "pickup": {"lat": pickup.lat, "lng": pickup.lng},
        "dropoff": {"lat": dropoff.lat, "lng": dropoff.lng},
        "product": product,
    }
    r = await http.post("/dispatch/v1/quotes", json=body, headers=headers)
    if r.status_code != 201:
        result.error = f"quote {r.status_code}: {r.text[:200]}"
        return result
    quote = r.json()
    result.fare_cents = quote["fare"]["amount_cents"]
    r = await http.post("/dispatch/v1/trips", json={"quote_id": quote["quote_id"]}, headers=headers)
    if r.status_code != 201:
        result.error = f"request {r.status_code}: {r.text[:200]}"
        return result
    trip = r.json()
    result.trip_id = trip["trip_id"]
    if on_trip is not None:
        on_trip(trip["trip_id"])
    requested = now()
    deadline = requested + timeout_s
    while now() < deadline:
        try:
            r = await http.get(f"/dispatch/v1/trips/{result.trip_id}", headers=headers)
        except httpx.TransportError:  # e.g. a keep-alive connection the server just closed: poll again
            await pause()
            continue
        if r.status_code == 200:
            trip = r.json()
            if not result.statuses or result.statuses[-1] != trip["status"]:
                result.statuses.append(trip["status"])
            if trip["driver_id"] and result.wait_s is None:
                result.wait_s = now() - requested
                result.driver_id = trip["driver_id"]
            result.status = trip["status"]
            if trip["status"] in TERMINAL:
                return result
        await pause()
    result.error = f"timed out while {result.status}"
    return result
