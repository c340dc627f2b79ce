from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hexcity.assistant import AssistantService, Viewer
from hexcity.assistant.http import build_assistant_router, viewer_of
from hexcity.infra.auth import AuthSettings, Forbidden, Principal, Role, TokenService, install_auth


@pytest.fixture
def client(service: AssistantService) -> Iterator[tuple[TestClient, TokenService]]:
    auth = AuthSettings(jwt_issuer="t", jwt_audience="t-api", jwt_secret=secrets.token_urlsafe(48))
    app = FastAPI()
    app.include_router(build_assistant_router(service))
    install_auth(app, auth)
    with TestClient(app) as test_client:
        yield test_client, TokenService.from_settings(auth)


def headers(tokens: TokenService, subject: str, role: Role) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens.issue(subject, role, ttl_s=600)}"}


def test_rider_gets_a_cited_answer_about_their_own_order(client: tuple[TestClient, TokenService]) -> None:
    http, tokens = client
    response = http.post(
        "/assistant/v1/answers",
        json={"question": "Where is my order and why was it split?"},
        headers=headers(tokens, "alice", Role.RIDER),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["arm"] == "graph" and body["route_reason"] == "personal record"
    assert body["facts"][0] == "Order ORD-1042: shipped, shipments 2 shipment(s)"
    assert [c["doc_id"] for c in body["citations"]] == ["split-shipments", "split-shipments"]


def test_errors_and_access(client: tuple[TestClient, TokenService]) -> None:
    http, tokens = client
    assert http.post("/assistant/v1/answers", json={"question": "surge"}).status_code == 401
    bad = http.post(
        "/assistant/v1/answers", json={"question": ""}, headers=headers(tokens, "alice", Role.RIDER)
    )
    assert bad.status_code == 422
    hidden = http.get(
        "/assistant/v1/articles/refund-abuse-policy", headers=headers(tokens, "alice", Role.RIDER)
    )
    assert (hidden.status_code, hidden.json()["code"]) == (404, "ArticleNotFound")
    admin = http.get(
        "/assistant/v1/articles/refund-abuse-policy", headers=headers(tokens, "root", Role.ADMIN)
    )
    assert admin.status_code == 200 and admin.json()["version"] == 1
    found = http.get(
        "/assistant/v1/search",
        params={"q": "surge cap", "k": 2},
        headers=headers(tokens, "alice", Role.RIDER),
    )
    assert found.json()["items"][0]["chunk_id"] == "surge-pricing#1"
    status = http.get("/assistant/v1/status", headers=headers(tokens, "alice", Role.RIDER)).json()
    assert status["articles"] == 18 and status["embedder"] == "hashed-ngram-v1"


def test_services_are_not_people() -> None:
    with pytest.raises(Forbidden):
        viewer_of(Principal(subject="svc", role=Role.SERVICE, scopes=frozenset()))
    assert viewer_of(Principal(subject="root", role=Role.ADMIN, scopes=frozenset())) == Viewer(
        "root", "staff"
    )
