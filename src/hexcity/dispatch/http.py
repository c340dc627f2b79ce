"""The dispatch HTTP API: quotes, trips, offers, surge (a thin layer over DispatchService).

Riders act as themselves (their token's subject); a driver accepts (and lists, with
``GET /drivers/{driver_id}/offers``) only its own offers and moves only its own trips; admins
may act for any rider and cancel any trip. Errors are the service's stable codes
(``QuoteExpired``, ``OfferUnavailable``, ``IllegalTransition``, ...).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from hexcity.dispatch.domain.index import MAX_RADIUS_M, DriverIndex
from hexcity.dispatch.domain.trips import Actor, Trip, TripStatus
from hexcity.dispatch.service import DispatchService
from hexcity.infra.auth import Forbidden, Principal, Role, require
from hexcity.infra.http import json_response
from hexcity.kernel import InvalidInput, LatLng

__all__ = ["build_dispatch_router"]


class Point(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lat: float = Field(ge=-90, le=90)
    lng: float = Field(ge=-180, le=180)

    def latlng(self) -> LatLng:
        return LatLng(self.lat, self.lng)


class QuoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pickup: Point
    dropoff: Point
    product: str = Field(default="standard", min_length=1, max_length=32)
    rider_id: str | None = Field(default=None, min_length=1, max_length=128)  # admins only


class TripBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quote_id: str = Field(min_length=1, max_length=64)
    rider_id: str | None = Field(default=None, min_length=1, max_length=128)  # admins only


class CancelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=255)


class DriverBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    driver_id: str = Field(min_length=1, max_length=128)
    products: list[str] = Field(default_factory=lambda: ["standard"], min_length=1, max_length=8)


class StatusBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["driver_arriving", "in_trip", "completed"]


def _rider_for(principal: Principal, given: str | None) -> str:
    if principal.role is Role.RIDER:
        if given is not None and given != principal.subject:
            raise Forbidden("a rider may only act for itself")
        return principal.subject
    if principal.is_admin:
        if given is None:
            raise InvalidInput("rider_id is required when an admin acts for a rider")
        return given
    raise Forbidden("only riders (or admins) request trips")


def _actor(principal: Principal) -> tuple[Actor, str | None]:
    if principal.role is Role.RIDER:
        return Actor.RIDER, principal.subject
    if principal.role is Role.DRIVER:
        return Actor.DRIVER, principal.subject
    if principal.is_admin:
        return Actor.DISPATCH, None
    raise Forbidden("only riders, drivers and admins act on trips")


def _may_see(principal: Principal, trip: Trip) -> bool:
    if principal.is_admin:
        return True
    if principal.role is Role.RIDER:
        return principal.subject == trip.rider_id
    if principal.role is Role.DRIVER:
        return trip.driver_id is not None and principal.subject == trip.driver_id
    return False


def _driver(principal: Principal) -> str:
    if principal.role is not Role.DRIVER:
        raise Forbidden("only drivers answer offers")
    return principal.subject


def build_dispatch_router(service: DispatchService, index: DriverIndex) -> APIRouter:
    router = APIRouter(prefix="/dispatch/v1", tags=["dispatch"])
    trips_write = Depends(require("trips:write"))
    trips_read = Depends(require("trips:read"))
    offers_write = Depends(require("offers:write"))
    offers_read = Depends(require("offers:read"))
    admin_only = Depends(require("admin"))

    @router.post("/quotes", status_code=201)
    async def quote(body: QuoteBody, principal: Principal = trips_write) -> Response:
        rider_id = _rider_for(principal, body.rider_id)
        q = await service.quote(rider_id, body.pickup.latlng(), body.dropoff.latlng(), body.product)
        return json_response(q.public(), 201)

    @router.post("/trips", status_code=201)
    async def request_trip(body: TripBody, principal: Principal = trips_write) -> Response:
        rider_id = _rider_for(principal, body.rider_id)
        trip = await service.request(rider_id, body.quote_id)
        return json_response(trip.public(), 201)

    @router.get("/trips/{trip_id}")
    async def get_trip(trip_id: str, principal: Principal = trips_read) -> Response:
        trip = await service.get_trip(trip_id)
        if not _may_see(principal, trip):
            raise Forbidden("not allowed to see this trip")
        return json_response(trip.public())

    @router.post("/trips/{trip_id}/cancel")
    async def cancel(trip_id: str, body: CancelBody, principal: Principal = trips_write) -> Response:
        actor, actor_id = _actor(principal)
        trip = await service.cancel(trip_id, actor, actor_id, body.reason)
        return json_response(trip.public())

    @router.post("/trips/{trip_id}/status")
    async def advance(trip_id: str, body: StatusBody, principal: Principal = trips_write) -> Response:
        actor, actor_id = _actor(principal)
        trip = await service.advance(trip_id, TripStatus(body.status), actor, actor_id)
        return json_response(trip.public())

    @router.get("/offers/{offer_id}")
    async def get_offer(offer_id: str, principal: Principal = offers_read) -> Response:
        offer = await service.get_offer(offer_id)
        if not (principal.is_admin or principal.subject == offer.driver_id):
            raise Forbidden("not allowed to see this offer")
        return json_response(offer.public())

    @router.get("/drivers/{driver_id}/offers")
    async def driver_offers(driver_id: str, principal: Principal = offers_read) -> Response:
        """The driver's open offers (pending, not expired), oldest first: polled on reconnect."""
        if not (principal.is_admin or (principal.role is Role.DRIVER and principal.subject == driver_id)):
            raise Forbidden("a driver may only read its own offers")
        offers = await service.pending_offers(driver_id)
        return json_response({"driver_id": driver_id, "offers": [o.public() for o in offers]})

    @router.post("/offers/{offer_id}/accept")
    async def accept(offer_id: str, principal: Principal = offers_write) -> Response:
        trip = await service.accept(_driver(principal), offer_id)
        return json_response(trip.public())

    @router.post("/offers/{offer_id}/decline")
    async def decline(offer_id: str, principal: Principal = offers_write) -> Response:
        trip = await service.decline(_driver(principal), offer_id)
        return json_response({"offer_id": offer_id, "trip_id": trip.trip_id, "status": "declined"})

    @router.get("/surge")
    async def surge(
        lat: Annotated[float, Query(ge=-90, le=90)],
        lng: Annotated[float, Query(ge=-180, le=180)],
        principal: Principal = trips_read,
    ) -> Response:
        del principal
        return json_response(service.surge_at(LatLng(lat, lng)))

    @router.post("/drivers", status_code=201)
    async def register_driver(body: DriverBody, principal: Principal = admin_only) -> Response:
        del principal
        created = await service.register_driver(body.driver_id, body.products)
        return json_response(
            {"driver_id": body.driver_id, "products": sorted(set(body.products)), "created": created},
            201 if created else 200,
        )

    @router.get("/drivers/nearby")
    async def nearby(
        lat: Annotated[float, Query(ge=-90, le=90)],
        lng: Annotated[float, Query(ge=-180, le=180)],
        radius_m: Annotated[float, Query(gt=0, le=MAX_RADIUS_M)] = 2000.0,
        limit: Annotated[int, Query(ge=1, le=200)] = 30,
        principal: Principal = admin_only,
    ) -> Response:
        del principal
        found = await index.nearby(lat, lng, radius_m, limit, statuses=frozenset({"online", "busy"}))
        return json_response(
            {
                "drivers": [
                    {
                        "driver_id": d.driver_id,
                        "lat": d.lat,
                        "lng": d.lng,
                        "distance_m": round(d.distance_m, 1),
                        "status": d.status,
                    }
                    for d in found
                ]
            }
        )

    return router
