"""PushHub: sequencing, ring buffer replay, acks, queue overflow → fallback, heartbeats (dispatch.md §2.8).

Time is a fake monotonic clock; every test runs its scenario in ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import gc
import random
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from hexcity.dispatch.adapters.push_connection import Entry, frame_json
from hexcity.dispatch.adapters.push_memory import InMemoryConnectionDirectory, LoggingFallbackPusher
from hexcity.dispatch.push import (
    Connection,
    Frame,
    InvalidAck,
    InvalidPush,
    PushCapacityExceeded,
    PushConnectionClosed,
    PushHub,
    PushMessage,
    PushParams,
)

D1 = "driver:d1"


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Env:
    def __init__(self, params: PushParams | None = None, **kw: Any) -> None:
        self.clock = FakeClock()
        self.registry = CollectorRegistry()
        self.fallback = LoggingFallbackPusher()
        self.directory = InMemoryConnectionDirectory()
        self.hub = PushHub(
            params,
            fallback=kw.pop("fallback", self.fallback),
            directory=kw.pop("directory", self.directory),
            node_id="node-a",
            registry=self.registry,
            clock=self.clock,
            wall_clock=lambda: 1_700_000_000.5,
            **kw,
        )

    def metric(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value

    def fallback_seqs(self, reason: str | None = None) -> list[int]:
        return [r.seq for r in self.fallback.records if reason is None or r.reason == reason]


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 10))


async def drain(conn: Connection) -> list[Frame]:
    """Every frame queued right now (no heartbeat: the fake clock does not move)."""
    frames: list[Frame] = []
    while conn.queued:
        frame = await conn.next_frame()
        conn.mark_written(frame)
        frames.append(frame)
    return frames


def seqs(frames: list[Frame]) -> list[int | None]:
    return [f.seq for f in frames]


async def send_n(hub: PushHub, n: int, client_id: str = D1, **kw: Any) -> list[int]:
    return [await hub.send(client_id, "offer", {"i": i}, **kw) for i in range(n)]


# -- sequencing, frames ----------------------------------------------------------------------------
def test_seq_starts_at_1_per_client_and_offline_goes_to_fallback() -> None:
    async def scenario() -> None:
        env = Env()
        assert await send_n(env.hub, 3) == [1, 2, 3]
        assert await send_n(env.hub, 2, "rider:r7") == [1, 2]
        assert env.fallback_seqs("offline") == [1, 2, 3, 1, 2]
        assert [r.client_id for r in env.fallback.records] == [D1] * 3 + ["rider:r7"] * 2
        assert env.hub.pending(D1) == [1, 2, 3]
        assert env.hub.head_seq(D1) == 3
        assert env.metric("dispatch_push_sent_total") == 5
        assert env.metric("dispatch_push_fallback_total", reason="offline") == 5

    run(scenario)


def test_frame_json_and_sse_encoding() -> None:
    entry: Entry = (7, "offer", b'{"trip":"t1"}', 1_700_000_000.5, 0.0, "high")
    frame = Frame(7, "offer", frame_json(entry), 0.0)
    assert orjson.loads(frame.body) == {
        "seq": 7,
        "kind": "offer",
        "data": {"trip": "t1"},
        "sent_at_s": 1_700_000_000.5,
    }
    assert frame.sse() == b"id: 7\nevent: offer\ndata: " + frame.body + b"\n\n"
    heartbeat = Frame(None, "heartbeat", b"{}")
    assert heartbeat.sse() == b"event: heartbeat\ndata: {}\n\n"


def test_ring_entries_are_untracked_by_the_garbage_collector() -> None:
    """Unacked messages live for seconds; as atom-only tuples they never reach old generations."""

    async def scenario() -> None:
        env = Env()
        await send_n(env.hub, 3)
        gc.collect()
        ring = env.hub._clients[D1].ring
        assert len(ring) == 3
        assert not any(gc.is_tracked(entry) for entry in ring)

    run(scenario)


# -- replay ------------------------------------------------------------------------------------------
def test_replay_after_forced_disconnect_in_order_without_gaps_or_duplicates() -> None:
    async def scenario() -> None:
        env = Env()
        conn = await env.hub.connect(D1, 0)
        await send_n(env.hub, 5)
        first = await conn.next_frame()
        second = await conn.next_frame()
        third = await conn.next_frame()
        assert seqs([first, second, third]) == [1, 2, 3]
        env.hub.ack(D1, 2)  # processed 1-2; 3 was received but not acked
        await env.hub.disconnect(conn)  # forced: 4 and 5 were still queued
        assert env.hub.connection(D1) is None
        await send_n(env.hub, 2)  # 6, 7 while offline
        assert env.fallback_seqs("offline") == [6, 7]

        again = await env.hub.connect(D1, 3)  # the client saw up to 3
        replay = await drain(again)
        assert seqs(replay) == [4, 5, 6, 7]
        assert all(f.replayed for f in replay)
        assert [orjson.loads(f.body)["data"]["i"] for f in replay] == [3, 4, 0, 1]
        await env.hub.send(D1, "offer", {"i": 99})
        live = await drain(again)
        assert seqs(live) == [8]
        assert not live[0].replayed
        assert env.metric("dispatch_push_replayed_total") == 4
        # a reconnect that saw nothing gets every unacked entry, still in order
        third_conn = await env.hub.connect(D1, 0)
        assert seqs(await drain(third_conn)) == [3, 4, 5, 6, 7, 8]

    run(scenario)


def test_random_disconnects_never_lose_or_repeat_a_replayable_message() -> None:
    """A client that acks what it processed and resumes from its last seq sees 1..N exactly once."""

    async def scenario() -> None:
        rng = random.Random(7)
        env = Env(PushParams(ring_size=16, queue_size=32))
        received: list[int] = []
        conn: Connection | None = await env.hub.connect(D1, 0)
        for _ in range(400):
            action = rng.random()
            if action < 0.5 and len(env.hub.pending(D1)) < 16:  # the ring always has room
                await env.hub.send(D1, "offer", {})
            elif action < 0.75 and conn is not None:
                for frame in await drain(conn):
                    assert frame.seq is not None
                    received.append(frame.seq)
                if received and rng.random() < 0.5:
                    env.hub.ack(D1, received[-1])
            elif action < 0.9 and conn is not None:
                await env.hub.disconnect(conn)
                conn = None
            elif conn is None:
                conn = await env.hub.connect(D1, received[-1] if received else 0)
        if conn is None:
            conn = await env.hub.connect(D1, received[-1] if received else 0)
        received += [f.seq for f in await drain(conn) if f.seq is not None]
        assert env.metric("dispatch_push_dropped_total", reason="ring_full") == 0
        assert env.hub.head_seq(D1) > 100
        assert env.metric("dispatch_push_replayed_total") > 20
        assert received == list(range(1, env.hub.head_seq(D1) + 1))

    run(scenario)


def test_ring_keeps_the_last_n_unacked() -> None:
    async def scenario() -> None:
        env = Env(PushParams(ring_size=4, queue_size=8))
        await send_n(env.hub, 6)
        assert env.hub.pending(D1) == [3, 4, 5, 6]
        assert env.metric("dispatch_push_dropped_total", reason="ring_full") == 2
        conn = await env.hub.connect(D1, 0)
        assert seqs(await drain(conn)) == [3, 4, 5, 6]
        assert env.hub.ring_bytes == 4 * len(b'{"i":0}')

    run(scenario)


def test_non_replayable_messages_are_delivered_but_never_replayed() -> None:
    async def scenario() -> None:
        env = Env()
        conn = await env.hub.connect(D1, 0)
        await env.hub.send(D1, "offer", {})
        await env.hub.send(D1, "eta", {"eta_s": 120}, replayable=False)
        await env.hub.send(D1, "offer", {})
        assert seqs(await drain(conn)) == [1, 2, 3]
        assert env.hub.pending(D1) == [1, 3]
        await env.hub.disconnect(conn)
        await env.hub.send(D1, "eta", {"eta_s": 60}, replayable=False)
        assert env.fallback_seqs("offline") == [4]
        again = await env.hub.connect(D1, 0)
        assert seqs(await drain(again)) == [1, 3]

    run(scenario)


# -- acks ----------------------------------------------------------------------------------------------
def test_ack_trims_up_to_a_seq_or_a_list() -> None:
    async def scenario() -> None:
        env = Env()
        await send_n(env.hub, 8)
        assert env.hub.ack(D1, 3) == 3
        assert env.hub.pending(D1) == [4, 5, 6, 7, 8]
        assert env.hub.ack(D1, 3) == 0  # idempotent
        assert env.hub.ack(D1, [5, 7]) == 2
        assert env.hub.pending(D1) == [4, 6, 8]
        assert env.hub.ack(D1, []) == 0
        assert env.hub.ack(D1, 8) == 3
        assert env.hub.pending(D1) == []
        assert env.hub.ring_bytes == 0
        conn = await env.hub.connect(D1, 0)
        assert await drain(conn) == []

    run(scenario)


@pytest.mark.parametrize("bad", [9, -1, True, [1, 9], [1, "2"], "3", list(range(1025))])
def test_bad_acks_are_refused_and_change_nothing(bad: Any) -> None:
    async def scenario() -> None:
        env = Env()
        await send_n(env.hub, 8)
        with pytest.raises(InvalidAck) as info:
            env.hub.ack(D1, bad)
        assert info.value.code == "InvalidAck"
        assert info.value.status == 400
        assert env.hub.pending(D1) == [1, 2, 3, 4, 5, 6, 7, 8]

    run(scenario)


def test_ack_of_unknown_client() -> None:
    env = Env()
    assert env.hub.ack("rider:nobody", 0) == 0
    with pytest.raises(InvalidAck, match="never sent"):
        env.hub.ack("rider:nobody", 1)


# -- overflow, capacity, fallback ------------------------------------------------------------------------
def test_queue_full_goes_to_fallback_and_closes_the_slow_connection() -> None:
    async def scenario() -> None:
        env = Env(PushParams(ring_size=4, queue_size=4))
        conn = await env.hub.connect(D1, 0)
        assert await send_n(env.hub, 5, priority="high") == [1, 2, 3, 4, 5]  # nobody reads
        assert env.fallback_seqs("queue_full") == [5]
        assert [r.priority for r in env.fallback.records] == ["high"]
        assert conn.closed_reason == "slow_consumer"
        with pytest.raises(PushConnectionClosed) as info:
            await conn.next_frame()
        assert info.value.reason == "slow_consumer"
        assert env.hub.connection(D1) is None
        assert env.metric("dispatch_push_connected") == 0
        await env.hub.send(D1, "offer", {})
        assert env.fallback_seqs("offline") == [6]
        again = await env.hub.connect(D1, 0)  # the client resumes: the ring, in order
        assert seqs(await drain(again)) == [3, 4, 5, 6]
        assert env.metric("dispatch_push_fallback_total", reason="queue_full") == 1

    run(scenario)


def test_full_hub_evicts_idle_clients_then_refuses() -> None:
    async def scenario() -> None:
        env = Env(PushParams(max_clients=2))
        await env.hub.send("driver:a", "offer", {})
        await env.hub.send("driver:b", "offer", {})
        assert await env.hub.send("driver:c", "offer", {"x": 1}) == 0
        assert env.fallback_seqs("capacity") == [0]
        with pytest.raises(PushCapacityExceeded) as info:
            await env.hub.connect("driver:c", 0)
        assert info.value.status == 503
        assert env.hub.client_count == 2
        env.hub.ack("driver:a", 1)  # a is idle now: nothing unacked, no connection
        assert await env.hub.send("driver:c", "offer", {}) == 1
        assert env.hub.client_count == 2
        assert env.hub.head_seq("driver:a") == 0
        assert env.hub.pending("driver:b") == [1]

    run(scenario)


def test_reconnect_above_head_continues_numbering_after_the_client() -> None:
    """The hub lost the history (restart or eviction): no seq the client already saw is reused."""

    async def scenario() -> None:
        env = Env()
        await send_n(env.hub, 2)
        conn = await env.hub.connect(D1, 40)
        assert seqs(await drain(conn)) == [41, 42]
        assert await env.hub.send(D1, "offer", {}) == 43
        assert seqs(await drain(conn)) == [43]

    run(scenario)


def test_fallback_gets_the_whole_message() -> None:
    got: list[tuple[PushMessage, str]] = []

    class Capture:
        def push(self, message: PushMessage, reason: str) -> None:
            got.append((message, reason))

    async def scenario() -> None:
        env = Env(fallback=Capture())
        await env.hub.send(D1, "eta", {"eta_s": 60}, replayable=False, priority="high")
        assert got == [
            (PushMessage(D1, 1, "eta", b'{"eta_s":60}', 1_700_000_000.5, "high", False), "offline")
        ]
        assert got[0][0].data == {"eta_s": 60}

    run(scenario)


def test_a_failing_fallback_counts_a_drop_and_send_still_returns() -> None:
    class Broken:
        def push(self, message: PushMessage, reason: str) -> None:
            raise ConnectionError("apns down")

    async def scenario() -> None:
        env = Env(fallback=Broken())
        assert await env.hub.send(D1, "offer", {}) == 1
        assert env.metric("dispatch_push_dropped_total", reason="fallback_error") == 1
        assert env.metric("dispatch_push_fallback_total", reason="offline") == 0

    run(scenario)


def test_ring_memory_bound_keeps_messages_out_of_the_ring_but_sends_them() -> None:
    async def scenario() -> None:
        env = Env(PushParams(max_payload_bytes=64, max_ring_bytes=64))
        payload = {"p": "x" * 40}  # 48 bytes of JSON
        conn = await env.hub.connect(D1, 0)
        await env.hub.send(D1, "offer", payload)
        await env.hub.send(D1, "offer", payload)
        assert seqs(await drain(conn)) == [1, 2]
        assert env.hub.pending(D1) == [1]
        assert env.hub.ring_bytes == 48
        assert env.metric("dispatch_push_dropped_total", reason="ring_memory") == 1

    run(scenario)


# -- heartbeats ------------------------------------------------------------------------------------------
def test_heartbeat_after_each_silent_interval() -> None:
    async def scenario() -> None:
        env = Env()  # 4 s
        start = env.clock.now
        conn = await env.hub.connect(D1, 0)
        await env.hub.send(D1, "offer", {})

        async def no_frame() -> None:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(conn.next_frame(), 0.05)

        assert seqs(await drain(conn)) == [1]  # at start: the heartbeat timer restarts
        env.clock.now = start + 3.999
        await no_frame()
        env.clock.now = start + 4.0
        beat = await conn.next_frame()
        assert (beat.seq, beat.kind) == (None, "heartbeat")
        assert orjson.loads(beat.body) == {
            "seq": None,
            "kind": "heartbeat",
            "data": {"head_seq": 1},
            "sent_at_s": 1_700_000_000.5,
        }
        conn.mark_written(beat)
        env.clock.now = start + 7.999
        await no_frame()
        env.clock.now = start + 6.0  # a message at +6 s restarts the timer: next beat at +10 s
        await env.hub.send(D1, "offer", {})
        assert seqs(await drain(conn)) == [2]
        env.clock.now = start + 9.999
        await no_frame()
        env.clock.now = start + 10.0
        assert (await conn.next_frame()).kind == "heartbeat"
        assert env.hub.head_seq(D1) == 2  # heartbeats take no seq
        assert env.hub.pending(D1) == [1, 2]
        assert env.metric("dispatch_push_heartbeats_total") == 1
        assert env.metric("dispatch_push_delivered_total") == 2

    run(scenario)


def test_heartbeat_real_time_interval() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        hub = PushHub(PushParams(heartbeat_interval_s=0.05), registry=CollectorRegistry())
        conn = await hub.connect(D1, 0)
        started = loop.time()
        times = []
        for _ in range(3):
            frame = await conn.next_frame()
            assert frame.kind == "heartbeat"
            times.append(loop.time() - started)
        gaps = [b - a for a, b in zip([0.0, *times], times, strict=False)]
        assert all(0.045 <= g <= 0.5 for g in gaps), gaps

    run(scenario)


# -- connections ------------------------------------------------------------------------------------------
def test_newer_connection_replaces_the_older_one() -> None:
    async def scenario() -> None:
        env = Env()
        old = await env.hub.connect(D1, 0)
        await env.hub.send(D1, "offer", {})
        new = await env.hub.connect(D1, 0)
        assert old.closed_reason == "replaced"
        with pytest.raises(PushConnectionClosed):
            await old.next_frame()
        assert seqs(await drain(new)) == [1]  # replayed on the new one
        await env.hub.send(D1, "offer", {})
        assert seqs(await drain(new)) == [2]
        await env.hub.disconnect(old)  # the old transport finishing must not drop the new one
        assert env.hub.connection(D1) is new
        assert await env.directory.lookup(D1) == "node-a"
        assert env.metric("dispatch_push_connected") == 1
        await env.hub.disconnect(new)
        assert env.hub.connection(D1) is None
        assert await env.directory.lookup(D1) is None
        assert env.metric("dispatch_push_connected") == 0

    run(scenario)


def test_directory_failure_does_not_fail_the_connection() -> None:
    class Down(InMemoryConnectionDirectory):
        async def register(self, client_id: str, node_id: str) -> None:
            raise ConnectionError("redis down")

    async def scenario() -> None:
        env = Env(directory=Down())
        conn = await env.hub.connect(D1, 0)
        await env.hub.send(D1, "offer", {})
        assert seqs(await drain(conn)) == [1]
        assert env.metric("dispatch_push_directory_errors_total") == 1

    run(scenario)


def test_refresh_loop_and_shutdown() -> None:
    refreshed: list[list[str]] = []

    class Recording(InMemoryConnectionDirectory):
        async def refresh(self, client_ids: Any, node_id: str) -> None:
            refreshed.append(list(client_ids))

    async def scenario() -> None:
        hub = PushHub(
            PushParams(directory_refresh_s=0.1), directory=Recording(), registry=CollectorRegistry()
        )
        conn = await hub.connect(D1, 0)
        hub.start()
        await asyncio.sleep(0.25)
        await hub.aclose()
        assert refreshed == [[D1], [D1]]
        assert conn.closed_reason == "shutdown"
        assert hub.connection(D1) is None

    run(scenario)


def test_metrics_count_delivery_and_latency() -> None:
    async def scenario() -> None:
        env = Env()
        conn = await env.hub.connect(D1, 0)
        await env.hub.send(D1, "offer", {})
        env.clock.now += 0.03
        assert seqs(await drain(conn)) == [1]
        assert env.metric("dispatch_push_delivered_total") == 1
        assert env.metric("dispatch_push_latency_seconds_count") == 1
        assert env.metric("dispatch_push_latency_seconds_bucket", le="0.025") == 0
        assert env.metric("dispatch_push_latency_seconds_bucket", le="0.05") == 1
        assert env.metric("dispatch_push_connected") == 1

    run(scenario)


# -- validation ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("client_id", "kind", "payload", "priority"),
    [
        ("d1", "offer", {}, "normal"),
        ("driver:", "offer", {}, "normal"),
        ("driver:a b", "offer", {}, "normal"),
        (D1, "heartbeat", {}, "normal"),
        (D1, "Offer!", {}, "normal"),
        (D1, "offer", [1, 2], "normal"),
        (D1, "offer", {"x": object()}, "normal"),
        (D1, "offer", {"x": "y" * 9000}, "normal"),
        (D1, "offer", {}, "urgent"),
    ],
)
def test_bad_sends_are_refused_and_change_nothing(
    client_id: str, kind: str, payload: Any, priority: Any
) -> None:
    async def scenario() -> None:
        env = Env()
        with pytest.raises(InvalidPush) as info:
            await env.hub.send(client_id, kind, payload, priority=priority)
        assert info.value.code == "InvalidPush"
        assert env.hub.client_count == 0
        assert env.metric("dispatch_push_sent_total") == 0

    run(scenario)


@pytest.mark.parametrize("last_seen", [-1, True, 2**53, "3"])
def test_bad_last_seen_seq_is_refused(last_seen: Any) -> None:
    async def scenario() -> None:
        env = Env()
        with pytest.raises(InvalidPush):
            await env.hub.connect(D1, last_seen)
        assert env.hub.connection(D1) is None

    run(scenario)


@pytest.mark.parametrize(
    "kw",
    [
        {"ring_size": 0},
        {"ring_size": 32, "queue_size": 16},
        {"max_clients": 0},
        {"heartbeat_interval_s": 0.0},
        {"max_payload_bytes": 10},
        {"max_ring_bytes": 100},
        {"directory_timeout_s": 0.0},
    ],
)
def test_params_are_validated(kw: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        PushParams(**kw)
