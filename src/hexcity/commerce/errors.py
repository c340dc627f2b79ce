"""Commerce errors: one small tree, each with a stable ``code`` and an HTTP ``status``."""

from __future__ import annotations

from hexcity.kernel import HexcityError, InvalidInput, NotFound, Unavailable


class CommerceError(HexcityError):
    code = "CommerceError"
    status = 400


class InvalidCommerceInput(CommerceError, InvalidInput):
    """Bad quantity, ids, prices, times, ... (nothing was changed)."""

    code = "InvalidCommerceInput"


class CatalogNotFound(CommerceError, NotFound):
    """No such merchant, product, SKU, campaign or order (or not the caller's)."""

    code = "CatalogNotFound"
    status = 404


class CatalogConflict(CommerceError):
    """The id already exists with different content."""

    code = "CatalogConflict"
    status = 409


class SaleNotOpen(CommerceError):
    """The campaign has not started, has ended, or its stock is not pre-heated yet."""

    code = "SaleNotOpen"
    status = 409


class SoldOut(CommerceError):
    """No stock left for this SKU (or not enough for the quantity asked)."""

    code = "SoldOut"
    status = 409


class LimitExceeded(CommerceError):
    """The buyer would exceed the campaign's per-user limit."""

    code = "LimitExceeded"
    status = 409


class RateLimited(CommerceError):
    """Too many requests; retry after ``retry_after_s`` seconds."""

    code = "RateLimited"
    status = 429

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class AdmissionRequired(CommerceError):
    """The sale has a waiting room: a valid, admitted, unexpired admission token is required."""

    code = "AdmissionRequired"
    status = 403


class NotAdmittedYet(CommerceError):
    """The admission token is valid but its queue position has not been admitted yet."""

    code = "NotAdmittedYet"
    status = 429

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ReservationNotFound(CommerceError, NotFound):
    code = "ReservationNotFound"
    status = 404


class ReservationExpired(CommerceError):
    """The hold ran out (TTL) before payment; its stock went back to the sale."""

    code = "ReservationExpired"
    status = 410


class PaymentDeclined(CommerceError):
    """The payment gateway refused; the reservation was released."""

    code = "PaymentDeclined"
    status = 402


class SystemBusy(CommerceError, Unavailable):
    """Redis (or another critical dependency) is unreachable: fail closed, try again later."""

    code = "SystemBusy"
    status = 503


class VirtualClockUnsupported(CommerceError):
    """Startup refused: the platform's manual (virtual) clock needs the embedded commerce engines;
    the Redis engines read Redis ``TIME`` and would mix two clocks."""

    code = "VirtualClockUnsupported"
    status = 500
