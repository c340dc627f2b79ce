"""Token bucket, sold-out flags, purchase gate and waiting room (pure, fake time)."""

from __future__ import annotations

import asyncio

import pytest

from hexcity.commerce.adapters.rate_limit import MemoryRateLimiter
from hexcity.commerce.domain.admission import (
    AdmissionSigner,
    AdmissionToken,
    PurchaseGate,
    SoldOutFlags,
    TokenBucket,
    WaitingRoom,
)
from hexcity.commerce.errors import AdmissionRequired, InvalidCommerceInput, NotAdmittedYet

SECRET = b"commerce-test-secret-0123456789"


def test_token_bucket_burst_then_refill_and_retry_after_is_exact() -> None:
    bucket = TokenBucket(capacity=3, refill_per_s=2.0, tokens=3.0, updated_at_s=0.0)
    assert [bucket.take(0.0)[:2] for _ in range(3)] == [(True, 2), (True, 1), (True, 0)]
    allowed, remaining, retry_after_s = bucket.take(0.0)
    assert (allowed, remaining, retry_after_s) == (False, 0, 0.5)
    assert bucket.take(0.5)[0] is True  # obeying Retry-After succeeds
    assert bucket.take(100.0)[:2] == (True, 2)  # refill is capped at capacity


def test_memory_limiter_keys_are_independent_and_bounded() -> None:
    now = [0.0]
    limiter = MemoryRateLimiter(clock=lambda: now[0], max_keys=2)

    async def main() -> None:
        assert (await limiter.acquire("a", capacity=1, refill_per_s=1)).allowed
        assert not (await limiter.acquire("a", capacity=1, refill_per_s=1)).allowed
        assert (await limiter.acquire("b", capacity=1, refill_per_s=1)).allowed
        assert (await limiter.acquire("c", capacity=1, refill_per_s=1)).allowed  # evicts "a"
        assert len(limiter._buckets) == 2
        with pytest.raises(InvalidCommerceInput):
            await limiter.acquire("a", capacity=1, refill_per_s=1, tokens=2)

    asyncio.run(main())


def test_sold_out_flag_expires_after_its_ttl() -> None:
    flags = SoldOutFlags(ttl_s=2.0)
    flags.mark("s", 10.0)
    assert flags.is_sold_out("s", 11.9) and not flags.is_sold_out("s", 12.0)
    flags.mark("s", 20.0)
    flags.clear("s")
    assert not flags.is_sold_out("s", 20.1)


def test_purchase_gate_admits_k_times_remaining_and_one_probe() -> None:
    gate = PurchaseGate(multiple=2.0)
    gate.set_remaining("s", 3)
    assert [gate.try_enter("s") for _ in range(7)] == [True] * 6 + [False]
    gate.leave("s")
    assert gate.try_enter("s") and gate.in_flight("s") == 6
    gate.set_remaining("t", 0)
    assert [gate.try_enter("t") for _ in range(2)] == [True, False]


def test_admission_tokens_forged_tampered_or_expired_are_refused() -> None:
    signer = AdmissionSigner(SECRET)
    token = signer.sign(AdmissionToken("sale", "u1", 7, 100.0))
    assert signer.verify(token, 99.0) == AdmissionToken("sale", "u1", 7, 100.0)
    with pytest.raises(AdmissionRequired, match="expired"):
        signer.verify(token, 100.0)
    body, mac = token.split(".")
    forged = AdmissionSigner(b"another-secret-0123456789").sign(AdmissionToken("sale", "u1", 1, 100.0))
    for bad in (forged, forged.split(".")[0] + "." + mac, "garbage", body + ".AAAA"):
        with pytest.raises(AdmissionRequired):
            signer.verify(bad, 50.0)
    with pytest.raises(InvalidCommerceInput):
        AdmissionSigner(b"short")


def test_waiting_room_fifo_rate_cap_and_reconnect() -> None:
    room = WaitingRoom(AdmissionSigner(SECRET), admissions_per_s=2.0, stock_multiple=2.0, token_ttl_s=900)
    tickets = [room.join("sale", f"u{i}", 0.0, remaining=100) for i in range(10)]
    assert [t.position for t in tickets] == list(range(1, 11))
    again = room.join("sale", "u5", 0.0, remaining=100)
    assert again.position == 6  # reconnect keeps the place
    assert room.rejoin(tickets[5].token, "sale", "u5", 0.5, remaining=100).position == 6
    with pytest.raises(AdmissionRequired):
        room.rejoin(tickets[5].token, "sale", "u6", 0.5, remaining=100)
    room.check_admitted(tickets[1].token, "sale", "u1", 1.0, remaining=100)  # 2/s: positions 1-2 by 1 s
    with pytest.raises(NotAdmittedYet) as info:
        room.check_admitted(tickets[4].token, "sale", "u4", 1.0, remaining=100)
    assert info.value.retry_after_s == pytest.approx(1.0)  # position 5, 3 admitted, 2/s
    room.set_rate(100.0)
    room.check_admitted(tickets[9].token, "sale", "u9", 1.1, remaining=100)
    assert room.admitted("sale") == 10  # never more than the queue holds
    with pytest.raises(AdmissionRequired):
        room.check_admitted(tickets[9].token, "other", "u9", 1.1, remaining=100)
    with pytest.raises(AdmissionRequired, match="expired"):
        room.check_admitted(tickets[0].token, "sale", "u0", 900.0, remaining=100)


def test_waiting_room_never_admits_more_than_k_times_remaining() -> None:
    room = WaitingRoom(AdmissionSigner(SECRET), admissions_per_s=1000.0, stock_multiple=2.0)
    tickets = [room.join("sale", f"u{i}", 0.0, remaining=3) for i in range(20)]
    room.check_admitted(tickets[5].token, "sale", "u5", 5.0, remaining=3)
    assert room.admitted("sale") == 6
    with pytest.raises(NotAdmittedYet):
        room.check_admitted(tickets[6].token, "sale", "u6", 5.0, remaining=3)
    room.finished("sale")
    room.finished("sale")
    room.check_admitted(tickets[7].token, "sale", "u7", 5.1, remaining=3)
    assert room.admitted("sale") == 8
    with pytest.raises(InvalidCommerceInput):
        room.set_rate(-1)
