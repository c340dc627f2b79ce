"""Dispatch errors (stable codes)."""

from __future__ import annotations

from hexcity.kernel import HexcityError, InvalidInput


class DispatchError(HexcityError):
    code = "DispatchError"
    status = 400


class InvalidPing(DispatchError, InvalidInput):
    """A location report that cannot be accepted (bad coordinates, unknown fields, ...)."""

    code = "InvalidPing"


class TripNotFound(DispatchError):
    code = "TripNotFound"
    status = 404


class OfferNotFound(DispatchError):
    """No such offer for this driver (another driver's offer reads as not found)."""

    code = "OfferNotFound"
    status = 404


class OfferUnavailable(DispatchError):
    """The offer was already accepted, declined, cancelled or has expired (15 s timer)."""

    code = "OfferUnavailable"
    status = 409


class QuoteNotFound(DispatchError):
    code = "QuoteNotFound"
    status = 404


class QuoteExpired(DispatchError):
    """A quote locks its price for a short validity period; after it, ask for a new one."""

    code = "QuoteExpired"
    status = 409


class RiderBusy(DispatchError):
    """The rider already has an active trip (one at a time)."""

    code = "RiderBusy"
    status = 409


class TripConflict(DispatchError):
    """The trip kept changing under concurrent writers; retry."""

    code = "TripConflict"
    status = 409


class UnknownProduct(DispatchError, InvalidInput):
    code = "UnknownProduct"
