"""Webhook intake on the real server: auth, idempotency, the event reaching the bus consumer."""

from __future__ import annotations

import time

import httpx
import pytest

pytestmark = pytest.mark.slow


def consumed(server: str) -> float:
    for line in httpx.get(f"{server}/metrics", timeout=10).text.splitlines():
        if line.startswith("webhook_events_consumed_total "):
            return float(line.split()[1])
    return 0.0


def test_webhook_is_accepted_once_and_consumed(server: str, api_key: str) -> None:
    before = consumed(server)
    headers = {"X-API-Key": api_key, "Idempotency-Key": f"evt-{time.time_ns()}"}
    first = httpx.post(f"{server}/webhooks/payments", json={"amount": 5}, headers=headers, timeout=10)
    assert (first.status_code, first.json()["accepted"]) == (202, True)
    again = httpx.post(f"{server}/webhooks/payments", json={"amount": 5}, headers=headers, timeout=10)
    assert (again.status_code, again.json()["duplicate"]) == (200, True)
    deadline = time.monotonic() + 10
    while consumed(server) < before + 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)  # a duplicate would have been consumed by now too
    assert consumed(server) == before + 1
    lag_zero = 'bus_consumer_lag{group="webhook-log",topic="webhooks"} 0.0'
    deadline = time.monotonic() + 12  # the lag gauge refreshes every 5 s
    while lag_zero not in (metrics := httpx.get(f"{server}/metrics", timeout=10).text):
        assert time.monotonic() < deadline, "consumer lag never returned to 0"
        time.sleep(0.2)
    assert 'jobs_submitted_total{pool="webhooks"}' in metrics
    assert 'queue_saturation{pool="webhooks"} 0.0' in metrics
    spec = httpx.get(f"{server}/openapi.json", timeout=10).json()
    assert spec["paths"]["/webhooks/{source}"]["post"]["security"]


def test_webhooks_need_the_write_scope(server: str, routing_only_key_entry: tuple[str, str]) -> None:
    body = {"id": "x-1"}
    anonymous = httpx.post(f"{server}/webhooks/payments", json=body, timeout=10)
    assert (anonymous.status_code, anonymous.json()["code"]) == (401, "Unauthenticated")
    routing_only = httpx.post(
        f"{server}/webhooks/payments", json=body, headers={"X-API-Key": routing_only_key_entry[0]}, timeout=10
    )
    assert (routing_only.status_code, routing_only.json()["code"]) == (403, "Forbidden")


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        (b"not json", "application/json", 400, "InvalidJson"),
        (b"[1, 2]", "application/json", 422, "NotAnObject"),
        (b'{"no": "id"}', "application/json", 422, "InvalidIdempotencyKey"),
        (b'{"id": "a"}', "text/plain", 415, "UnsupportedMediaType"),
        (b'{"id": "' + b"x" * 70_000 + b'"}', "application/json", 413, "PayloadTooLarge"),
    ],
)
def test_bad_webhook_bodies_get_4xx_codes(
    server: str, api_key: str, content: bytes, content_type: str, status: int, code: str
) -> None:
    response = httpx.post(
        f"{server}/webhooks/payments",
        content=content,
        headers={"X-API-Key": api_key, "Content-Type": content_type},
        timeout=10,
    )
    assert response.status_code == status
    assert response.json()["code"] == code
