"""The payments HTTP API with real auth: scopes, ownership, Idempotency-Key, errors."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hexcity.infra.auth import AuthSettings, Role, TokenService, install_auth
from hexcity.payments.http import build_payments_router
from hexcity.payments.service import PaymentService

W1, W2, SHOP = "wallet:r1:EUR", "wallet:r2:EUR", "merchant:s1:EUR"
BASE = "/payments/v1"


@dataclass
class Api:
    client: TestClient
    tokens: TokenService

    def as_(self, subject: str, role: Role, **extra: str) -> dict[str, str]:
        token = self.tokens.issue(subject, role, tenant=extra.get("tenant"), ttl_s=600)
        headers = {"Authorization": f"Bearer {token}"}
        if "key" in extra:
            headers["Idempotency-Key"] = extra["key"]
        return headers

    def post(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> Any:
        return self.client.post(BASE + path, json=body, headers=headers)


@pytest.fixture
def api(service: PaymentService) -> Iterator[Api]:
    auth = AuthSettings(jwt_issuer="t", jwt_audience="t-api", jwt_secret=secrets.token_urlsafe(48))
    app = FastAPI()
    app.include_router(build_payments_router(service))
    install_auth(app, auth)
    with TestClient(app) as client:
        yield Api(client, TokenService.from_settings(auth))


def test_rider_tops_up_and_pays_from_own_wallet_with_replay(api: Api) -> None:
    top = api.post(
        "/topups",
        {"wallet_account_id": W1, "amount_minor": 1000, "currency": "EUR"},
        api.as_("r1", Role.RIDER, key="t1"),
    )
    assert top.status_code == 201, top.text
    body = {"payer_account_id": W1, "payee_account_id": SHOP, "amount_minor": 250, "currency": "EUR"}
    first = api.post("/payments", body, api.as_("r1", Role.RIDER, key="p1"))
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    again = api.post("/payments", body, api.as_("r1", Role.RIDER, key="p1"))
    assert (again.status_code, again.json(), again.headers["Idempotent-Replayed"]) == (
        201,
        first.json(),
        "true",
    )
    changed = api.post("/payments", {**body, "amount_minor": 251}, api.as_("r1", Role.RIDER, key="p1"))
    assert (changed.status_code, changed.json()["code"]) == (422, "IdempotencyKeyReuse")
    wallet = api.client.get(f"{BASE}/accounts/{W1}", headers=api.as_("r1", Role.RIDER))
    assert wallet.status_code == 200 and wallet.json()["balance_minor"] == 750
    entries = api.client.get(
        f"{BASE}/accounts/{W1}/entries?limit=1", headers=api.as_("r1", Role.RIDER)
    ).json()
    assert [e["amount_minor"] for e in entries["entries"]] == [1000] and entries["next_after_seq"] == 1
    paid = api.client.get(
        f"{BASE}/payments/{first.json()['id']}", headers=api.as_("s1-user", Role.MERCHANT, tenant="s1")
    )
    assert paid.status_code == 200 and paid.json()["amount_minor"] == 250


def test_other_riders_wallet_is_forbidden_and_nothing_moves(api: Api, service: PaymentService) -> None:
    body = {"payer_account_id": W1, "payee_account_id": SHOP, "amount_minor": 1, "currency": "EUR"}
    refused = api.post("/payments", body, api.as_("r2", Role.RIDER, key="x"))
    assert refused.status_code == 403
    assert api.client.get(f"{BASE}/accounts/{W1}", headers=api.as_("r2", Role.RIDER)).status_code == 403
    assert api.client.get(f"{BASE}/accounts/{W1}", headers=api.as_("d1", Role.DRIVER)).status_code == 403
    no_scope = api.post(
        "/payouts",
        {"account_id": "driver:d1:EUR", "amount_minor": 1, "currency": "EUR"},
        api.as_("d1", Role.DRIVER, key="k"),
    )
    assert no_scope.status_code == 403
    with_fee = api.post("/payments", {**body, "fee_minor": 1}, api.as_("r1", Role.RIDER, key="y"))
    assert with_fee.status_code == 403
    assert api.client.post(f"{BASE}/payments", json=body).status_code == 401
    assert service.account(W1).balance_minor == 0


def test_missing_key_and_bad_amounts_are_400_and_not_stored(api: Api) -> None:
    body = {"wallet_account_id": W1, "amount_minor": 100, "currency": "EUR"}
    missing = api.post("/topups", body, api.as_("r1", Role.RIDER))
    assert (missing.status_code, missing.json()["code"]) == (400, "InvalidInput")
    zero = api.post("/topups", {**body, "amount_minor": 0}, api.as_("r1", Role.RIDER, key="k"))
    assert (zero.status_code, zero.json()["code"]) == (400, "InvalidAmount")
    float_amount = api.post("/topups", {**body, "amount_minor": 1.5}, api.as_("r1", Role.RIDER, key="k"))
    assert float_amount.status_code == 422  # pydantic (the platform app maps it to 400)
    ok = api.post("/topups", body, api.as_("r1", Role.RIDER, key="k"))
    assert ok.status_code == 201 and "Idempotent-Replayed" not in ok.headers
    unknown = api.post(
        "/topups", {**body, "wallet_account_id": "wallet:zz:EUR"}, api.as_("r1", Role.RIDER, key="k2")
    )
    assert (unknown.status_code, unknown.json()["code"]) == (404, "AccountNotFound")


def test_admin_refunds_and_uses_the_raw_ledger(api: Api) -> None:
    admin = api.as_("ops", Role.ADMIN)
    api.post(
        "/topups",
        {"wallet_account_id": W1, "amount_minor": 1000, "currency": "EUR"},
        api.as_("r1", Role.RIDER, key="t"),
    )
    paid = api.post(
        "/payments",
        {"payer_account_id": W1, "payee_account_id": SHOP, "amount_minor": 400, "currency": "EUR"},
        api.as_("r1", Role.RIDER, key="p"),
    ).json()
    rider_refund = api.post(
        f"/payments/{paid['id']}/refunds", {"amount_minor": 100}, api.as_("r1", Role.RIDER, key="r")
    )
    assert rider_refund.status_code == 403
    refund = api.post(
        f"/payments/{paid['id']}/refunds", {"amount_minor": 100}, {**admin, "Idempotency-Key": "r"}
    )
    assert refund.status_code == 201 and refund.json()["amount_minor"] == 100
    batch = {
        "transfers": [
            {
                "id": "l1",
                "debit_account_id": W1,
                "credit_account_id": W2,
                "amount_minor": 700,
                "currency": "EUR",
            },
            {
                "id": "l2",
                "debit_account_id": W1,
                "credit_account_id": W2,
                "amount_minor": 1,
                "currency": "EUR",
            },
        ]
    }
    results = api.post("/ledger/transfers", batch, admin).json()["results"]
    assert [(r["id"], r["ok"], r["error"]["code"] if r["error"] else None) for r in results] == [
        ("l1", True, None),
        ("l2", False, "InsufficientFunds"),
    ]
    assert api.post("/ledger/transfers", batch, api.as_("r1", Role.RIDER)).status_code == 403
    account = api.client.get(f"{BASE}/ledger/accounts/{W2}?at_s=0", headers=admin).json()
    assert (account["balance_minor"], account["balance_at_minor"]) == (700, 0)
    created = api.post(
        "/ledger/accounts", {"accounts": [{"id": "w9", "kind": "wallet", "currency": "EUR"}]}, admin
    )
    assert created.status_code == 201 and created.json() == {"accounts": ["w9"]}
