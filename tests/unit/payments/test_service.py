"""The idempotent payment API on SQLite: top-up, pay, refund, payout, keys, events."""

from __future__ import annotations

import pytest
from tests.unit.payments.conftest import FakeClock, outbox_events

from hexcity.payments.domain.commands import Pay, Payout, Refund, TopUp
from hexcity.payments.errors import IdempotencyKeyReuse, InvalidAmount, InvalidPaymentInput
from hexcity.payments.service import PaymentService

W1, W2, SHOP, DRIVER = "wallet:r1:EUR", "wallet:r2:EUR", "merchant:s1:EUR", "driver:d1:EUR"
PLATFORM, EXTERNAL = "platform:revenue:EUR", "external:settlement:EUR"


def balance(svc: PaymentService, account_id: str) -> int:
    return svc.account(account_id).balance_minor


def top_up(svc: PaymentService, amount: int, key: str = "k-topup") -> None:
    response = svc.execute(TopUp(W1, amount, "EUR"), idempotency_key=key, scope="r1")
    assert response.status_code == 201


def test_pay_moves_money_with_platform_fee_and_emits_event(service: PaymentService) -> None:
    top_up(service, 1000)
    response = service.execute(
        Pay(W1, SHOP, 599, "EUR", fee_minor=90, reference="order-7"), idempotency_key="k1", scope="r1"
    )
    assert response.status_code == 201 and not response.replayed
    assert response.body["status"] == "succeeded" and response.body["amount_minor"] == 599
    assert (balance(service, W1), balance(service, SHOP), balance(service, PLATFORM)) == (401, 509, 90)
    assert balance(service, EXTERNAL) == -1000
    assert [e["type"] for e in outbox_events(service)] == ["topup.succeeded", "payment.succeeded"]
    assert service.payment(response.body["id"]).reference == "order-7"
    assert [p.id for p in service.payments_by_reference("order-7")] == [response.body["id"]]


def test_same_key_same_body_replays_the_first_response(service: PaymentService) -> None:
    top_up(service, 1000)
    first = service.execute(Pay(W1, SHOP, 100, "EUR"), idempotency_key="k1", scope="r1")
    again = service.execute(Pay(W1, SHOP, 100, "EUR"), idempotency_key="k1", scope="r1")
    assert again.replayed and (again.status_code, again.body) == (first.status_code, first.body)
    assert balance(service, W1) == 900  # charged once
    other_scope = service.execute(Pay(W1, SHOP, 100, "EUR"), idempotency_key="k1", scope="admin")
    assert not other_scope.replayed and balance(service, W1) == 800


def test_same_key_different_body_is_refused_and_changes_nothing(service: PaymentService) -> None:
    top_up(service, 1000)
    service.execute(Pay(W1, SHOP, 100, "EUR"), idempotency_key="k1", scope="r1")
    with pytest.raises(IdempotencyKeyReuse) as caught:
        service.execute(Pay(W1, SHOP, 101, "EUR"), idempotency_key="k1", scope="r1")
    assert caught.value.status == 422
    assert balance(service, W1) == 900


def test_business_errors_are_stored_and_replayed_even_after_funding(service: PaymentService) -> None:
    failed = service.execute(Pay(W1, SHOP, 100, "EUR"), idempotency_key="k1", scope="r1")
    assert (failed.status_code, failed.body["code"]) == (409, "InsufficientFunds")
    top_up(service, 1000)
    again = service.execute(Pay(W1, SHOP, 100, "EUR"), idempotency_key="k1", scope="r1")
    assert again.replayed and (again.status_code, again.body) == (409, failed.body)
    assert balance(service, W1) == 1000 and balance(service, SHOP) == 0
    assert [e["type"] for e in outbox_events(service)] == ["topup.succeeded"]


def test_validation_errors_are_not_stored(service: PaymentService) -> None:
    with pytest.raises(InvalidAmount):
        service.execute(Pay(W1, SHOP, 0, "EUR"), idempotency_key="k1", scope="r1")
    with pytest.raises(InvalidAmount):
        service.execute(Pay(W1, SHOP, 100, "EUR", fee_minor=100), idempotency_key="k1", scope="r1")
    top_up(service, 1000)
    response = service.execute(Pay(W1, SHOP, 100, "EUR"), idempotency_key="k1", scope="r1")
    assert response.status_code == 201 and not response.replayed


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "é"])
def test_bad_idempotency_keys_are_refused(service: PaymentService, key: str) -> None:
    with pytest.raises(InvalidPaymentInput):
        service.execute(TopUp(W1, 1, "EUR"), idempotency_key=key, scope="r1")


def test_keys_are_kept_24h_then_pruned_and_new(service: PaymentService, clock: FakeClock) -> None:
    top_up(service, 1000, key="k-old")
    clock.now_s += 86_399
    assert service.prune() == 0
    assert service.execute(TopUp(W1, 1000, "EUR"), idempotency_key="k-old", scope="r1").replayed
    clock.now_s += 2
    assert service.prune() == 1
    assert service.lookup("k-old", scope="r1") is None
    again = service.execute(TopUp(W1, 1000, "EUR"), idempotency_key="k-old", scope="r1")
    assert not again.replayed and balance(service, W1) == 2000


def test_expired_key_not_yet_pruned_is_a_new_request(service: PaymentService, clock: FakeClock) -> None:
    top_up(service, 1000, key="k")
    clock.now_s += 86_401
    assert not service.execute(TopUp(W1, 1000, "EUR"), idempotency_key="k", scope="r1").replayed
    assert balance(service, W1) == 2000


def test_partial_and_full_refunds_never_exceed_what_was_paid(service: PaymentService) -> None:
    top_up(service, 1000)
    paid = service.execute(Pay(W1, SHOP, 600, "EUR", fee_minor=90), idempotency_key="p", scope="r1").body
    part = service.execute(Refund(paid["id"], 200), idempotency_key="r1", scope="s1")
    assert part.status_code == 201 and part.body["fee_minor"] == 30
    assert (balance(service, W1), balance(service, SHOP), balance(service, PLATFORM)) == (600, 340, 60)
    too_much = service.execute(Refund(paid["id"], 401), idempotency_key="r2", scope="s1")
    assert (too_much.status_code, too_much.body["code"]) == (409, "RefundExceedsPayment")
    rest = service.execute(Refund(paid["id"]), idempotency_key="r3", scope="s1")
    assert rest.body["amount_minor"] == 400 and rest.body["fee_minor"] == 60
    assert (balance(service, W1), balance(service, SHOP), balance(service, PLATFORM)) == (1000, 0, 0)
    assert service.payment(paid["id"]).status == "refunded"
    nothing_left = service.execute(Refund(paid["id"], 1), idempotency_key="r4", scope="s1")
    assert nothing_left.body["code"] == "RefundExceedsPayment"
    missing = service.execute(Refund("pay_nope"), idempotency_key="r5", scope="s1")
    assert (missing.status_code, missing.body["code"]) == (404, "PaymentNotFound")


def test_payout_moves_earnings_to_external_settlement(service: PaymentService) -> None:
    top_up(service, 1000)
    service.execute(Pay(W1, SHOP, 500, "EUR"), idempotency_key="p", scope="r1")
    out = service.execute(Payout(SHOP, 500, "EUR"), idempotency_key="o", scope="s1")
    assert out.status_code == 201 and balance(service, SHOP) == 0
    assert balance(service, EXTERNAL) == -500
    over = service.execute(Payout(SHOP, 1, "EUR"), idempotency_key="o2", scope="s1")
    assert over.body["code"] == "InsufficientFunds"
    assert outbox_events(service)[-1]["type"] == "payout.succeeded"


def test_books_balance_after_everything(service: PaymentService) -> None:
    top_up(service, 1000)
    service.execute(Pay(W1, SHOP, 500, "EUR", fee_minor=50), idempotency_key="p", scope="r1")
    assert service.ledger.total_balance()[0] == 0
