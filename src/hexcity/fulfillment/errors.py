"""Fulfillment errors (stable codes)."""

from __future__ import annotations

from hexcity.kernel import HexcityError, InvalidInput, NotFound


class FulfillmentError(HexcityError):
    code = "FulfillmentError"
    status = 400


class InvalidProblem(FulfillmentError, InvalidInput):
    """A routing problem (VRPLIB or VROOM JSON) that cannot be read or is inconsistent."""

    code = "InvalidProblem"


class ProblemTooBig(FulfillmentError):
    """More jobs, vehicles or matrix cells than the configured limits allow."""

    code = "ProblemTooBig"
    status = 413


class InvalidOrder(FulfillmentError, InvalidInput):
    """An order with an unknown SKU, a non-positive quantity, a bad SLA or destination."""

    code = "InvalidOrder"


class UnknownSku(InvalidOrder):
    code = "UnknownSku"


class OutOfStock(FulfillmentError):
    """No warehouse (nor any combination of warehouses) holds enough of the listed SKUs."""

    code = "OutOfStock"
    status = 409

    def __init__(self, message: str, short_skus: list[str]) -> None:
        super().__init__(message)
        self.short_skus = short_skus


class StockInvariantBroken(FulfillmentError):
    """A change would make stock negative: refused, nothing written."""

    code = "StockInvariantBroken"
    status = 409


class OrderNotFound(FulfillmentError, NotFound):
    code = "OrderNotFound"
    status = 404


class WarehouseNotFound(FulfillmentError, NotFound):
    code = "WarehouseNotFound"
    status = 404


class StockConflict(FulfillmentError):
    """A reservation lost a race with another one; nothing was written (the service re-plans)."""

    code = "StockConflict"
    status = 409
