"""Ride and flash-sale order sagas on SQLite."""

from __future__ import annotations

import pytest
from tests.unit.payments.conftest import FakeClock, outbox_events

from hexcity.payments.domain.commands import Refund, TopUp
from hexcity.payments.errors import AmountExceedsPending, InsufficientFunds, InvalidPaymentState
from hexcity.payments.service import PaymentService

W1, SHOP, DRIVER, PLATFORM = "wallet:r1:EUR", "merchant:s1:EUR", "driver:d1:EUR", "platform:revenue:EUR"


def fund(svc: PaymentService, amount: int) -> None:
    assert svc.execute(TopUp(W1, amount, "EUR"), idempotency_key="fund", scope="r1").status_code == 201


def money(svc: PaymentService) -> tuple[int, int, int, int]:
    w = svc.account(W1)
    return (
        w.balance_minor,
        w.available_minor,
        svc.account(DRIVER).balance_minor,
        svc.account(PLATFORM).balance_minor,
    )


def test_ride_authorise_capture_splits_fare(service: PaymentService) -> None:
    fund(service, 2000)
    auth = service.rides.authorize_fare("trip-1", "r1", "d1", 1500, "EUR")
    assert auth.status == "authorized"
    assert money(service) == (2000, 500, 0, 0)
    assert service.rides.authorize_fare("trip-1", "r1", "d1", 1500, "EUR") == auth  # retried: same
    with pytest.raises(AmountExceedsPending):
        service.rides.complete("trip-1", 1501)
    done = service.rides.complete("trip-1", 1200)  # 15 % fee = 180
    assert (done.status, done.amount_minor, done.fee_minor) == ("captured", 1200, 180)
    assert money(service) == (800, 800, 1020, 180)
    assert service.rides.complete("trip-1", 1200) == done  # retried: not captured twice
    with pytest.raises(InvalidPaymentState):
        service.rides.cancel("trip-1")
    types = [e["type"] for e in outbox_events(service)]
    assert types == ["topup.succeeded", "ride.authorized", "ride.captured"]
    assert service.ledger.total_balance()[0] == 0


def test_ride_cancel_voids_and_refund_after_capture(service: PaymentService) -> None:
    fund(service, 2000)
    service.rides.authorize_fare("trip-2", "r1", "d1", 1500, "EUR")
    assert service.rides.cancel("trip-2").status == "voided"
    assert service.rides.cancel("trip-2").status == "voided"
    assert money(service) == (2000, 2000, 0, 0)
    with pytest.raises(InvalidPaymentState):
        service.rides.complete("trip-2", 100)
    service.rides.authorize_fare("trip-3", "r1", "d1", 1000, "EUR")
    service.rides.complete("trip-3", 1000, fee_minor=150)
    refund = service.execute(Refund("ride:trip-3"), idempotency_key="rf", scope="admin")
    assert refund.status_code == 201 and money(service) == (2000, 2000, 0, 0)


def test_ride_authorisation_without_funds_writes_nothing(service: PaymentService) -> None:
    with pytest.raises(InsufficientFunds):
        service.rides.authorize_fare("trip-4", "r1", "d1", 1, "EUR")
    with pytest.raises(Exception, match="does not exist"):
        service.payment("ride:trip-4")


def test_ride_authorisation_expires(service: PaymentService, clock: FakeClock) -> None:
    fund(service, 2000)
    service.rides.authorize_fare("trip-5", "r1", "d1", 1500, "EUR", timeout_s=60)
    clock.now_s += 61
    assert service.rides.sweep_expired() == 1
    assert service.payment("ride:trip-5").status == "expired"
    assert money(service) == (2000, 2000, 0, 0)
    assert service.rides.cancel("trip-5").status == "expired"
    assert outbox_events(service)[-1]["type"] == "ride.expired"


class FakeStock:
    def __init__(self, units: int, *, confirm_fails: bool = False) -> None:
        self.units, self.confirm_fails = units, confirm_fails
        self.reserved: set[str] = set()
        self.confirmed: set[str] = set()
        self.released: list[str] = []

    def reserve(self, order_id: str) -> None:
        if self.units <= 0:
            raise RuntimeError("sold out")
        self.units -= 1
        self.reserved.add(order_id)

    def confirm(self, order_id: str) -> None:
        if self.confirm_fails:
            raise RuntimeError("stock service down")
        self.confirmed.add(order_id)

    def release(self, order_id: str) -> None:
        self.units += 1
        self.reserved.discard(order_id)
        self.released.append(order_id)


def test_flash_sale_order_confirms_pays_and_releases(service: PaymentService) -> None:
    fund(service, 1000)
    stock = FakeStock(units=1)
    ok = service.orders.run("o1", "r1", "s1", 700, "EUR", stock, fee_minor=70)
    assert ok.status == "confirmed" and ok.payment is not None and ok.payment.status == "captured"
    assert (service.account(SHOP).balance_minor, service.account(PLATFORM).balance_minor) == (630, 70)
    sold_out = service.orders.run("o2", "r1", "s1", 100, "EUR", stock)
    assert sold_out.status == "out_of_stock"
    stock.units = 5
    broke = service.orders.run("o3", "r1", "s1", 301, "EUR", stock)
    assert (broke.status, broke.error_code) == ("payment_failed", "InsufficientFunds")
    assert stock.released == ["o3"] and stock.units == 5
    failing = FakeStock(units=1, confirm_fails=True)
    released = service.orders.run("o4", "r1", "s1", 300, "EUR", failing)
    assert released.status == "released" and failing.released == ["o4"]
    assert service.payment("order:o4").status == "voided"
    assert service.account(W1).available_minor == 300
    assert service.ledger.total_balance()[0] == 0
