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


class PlanNotFound(FulfillmentError, NotFound):
    code = "PlanNotFound"
    status = 404


class StopNotFound(FulfillmentError, NotFound):
    code = "StopNotFound"
    status = 404


class DeliveryConflict(FulfillmentError):
    """A delivery that the stop's or order's state does not allow (nothing was written)."""

    code = "DeliveryConflict"
    status = 409


class PlanCancelled(DeliveryConflict):
    """The stop belongs to a cancelled plan (or was cancelled with it)."""

    code = "PlanCancelled"


class StopReplanned(DeliveryConflict):
    """The parcel was re-planned into another stop: deliver that one."""

    code = "StopReplanned"


class OrderNotPicked(DeliveryConflict):
    """A parcel can only be delivered after its order was picked (stock taken out)."""

    code = "OrderNotPicked"
