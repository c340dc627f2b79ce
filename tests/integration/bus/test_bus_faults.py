"""Faults: a consumer killed mid-handler, broker connections dropped mid-stream."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.orm import Session
from tests.integration.bus.conftest import (
    ACK_WAIT_S,
    CLAIM_IDLE_S,
    FAST_RETRY,
    REDIS_URL,
    _reachable,
    drop_topics,
    make_bus,
    new_topic,
    open_bus,
    require,
    wait_until,
)

from hexcity.infra.bus import Delivery
from hexcity.infra.bus.nats_jetstream import NatsJetStreamBus
from hexcity.infra.bus.redis_streams import RedisStreamsBus
from hexcity.infra.outbox import idempotent
from hexcity.infra.sql import make_engine, metadata
from hexcity.kernel.events import Event

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

effects_md = MetaData()
effects = Table(
    "effects",
    effects_md,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(64), nullable=False),
)


@pytest.mark.parametrize("kind", ["memory", "nats", "redis"])
def test_consumer_killed_mid_handler_is_redelivered_to_a_new_consumer(kind: str) -> None:
    require(kind)
    topic = new_topic()

    async def scenario() -> None:
        async with open_bus(kind, [topic]) as bus:
            started = asyncio.Event()
            never = asyncio.Event()
            first: list[int] = []
            second: list[tuple[str, int]] = []

            async def stuck(d: Delivery) -> None:
                first.append(d.attempt)
                started.set()
                await never.wait()  # blocked until killed

            async def healthy(d: Delivery) -> None:
                second.append((d.event.event_id, d.attempt))

            victim = await bus.subscribe(topic, "g", stuck, policy=FAST_RETRY)
            e = Event(topic=topic, key="k", payload={"n": 1})
            await bus.publish(e)
            await asyncio.wait_for(started.wait(), 10)
            await victim.abort()  # the consumer dies with the handler in flight: no ack
            loop = asyncio.get_running_loop()
            killed_at = loop.time()
            await bus.subscribe(topic, "g", healthy, policy=FAST_RETRY)
            await wait_until(lambda: bool(second), 15)
            assert first == [1]
            assert second == [(e.event_id, 2)]
            waited = loop.time() - killed_at
            if kind == "nats":
                assert waited >= ACK_WAIT_S * 0.5
            if kind == "redis":
                assert waited >= CLAIM_IDLE_S * 0.5

    asyncio.run(scenario())


class DroppingProxy:
    """A TCP proxy in front of a broker; ``drop()`` cuts every live connection (clients reconnect)."""

    def __init__(self, port: int) -> None:
        self.upstream_port = port
        self.writers: set[asyncio.StreamWriter] = set()
        self.server: asyncio.Server | None = None
        self.drops = 0

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.upstream_port), 5
            )
        except OSError:
            writer.close()
            return
        self.writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        except asyncio.CancelledError:  # loop shutting down
            for w in (writer, up_writer):
                w.transport.abort()
        self.writers -= {writer, up_writer}

    def drop(self) -> None:
        self.drops += 1
        for w in list(self.writers):
            w.transport.abort()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        self.drop()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[object]:
    engine = make_engine(f"sqlite:///{tmp_path / 'faults.db'}")
    metadata.create_all(engine)
    effects_md.create_all(engine)
    yield engine
    engine.dispose()


@pytest.mark.parametrize("kind", ["nats", "redis"])
def test_connection_dropped_mid_stream_loses_nothing_and_applies_once(
    kind: str, sqlite_engine: object
) -> None:
    require(kind)
    engine = sqlite_engine
    topic = new_topic()
    run_id = uuid.uuid4().hex[:8]
    total = 120

    async def scenario() -> None:
        proxy = DroppingProxy(4222 if kind == "nats" else 6379)
        port = await proxy.start()
        bus: NatsJetStreamBus | RedisStreamsBus
        if kind == "nats":
            bus = NatsJetStreamBus(
                f"nats://127.0.0.1:{port}",
                stream_prefix=f"hxt{run_id}",
                partitions=4,
                ack_wait_s=ACK_WAIT_S,
                fetch_timeout_s=0.5,
                request_timeout_s=3.0,
                stop_timeout_s=5.0,
                max_msgs_per_stream=10_000,
                max_age_s=600.0,
            )
        else:
            client = aioredis.Redis.from_url(
                f"redis://127.0.0.1:{port}/0", socket_timeout=3, socket_connect_timeout=3
            )
            bus = RedisStreamsBus(client, prefix=f"hxt:{run_id}", partitions=4, claim_idle_s=CLAIM_IDLE_S)
            bus.owns_client = True
        calls: Counter[str] = Counter()

        async def apply(d: Delivery, session: Session) -> None:
            calls[d.event.event_id] += 1
            await asyncio.sleep(0.002)
            session.execute(insert(effects).values(event_id=d.event.event_id))

        def applied() -> int:
            with engine.connect() as conn:  # type: ignore[attr-defined]
                return int(conn.execute(select(func.count(func.distinct(effects.c.event_id)))).scalar() or 0)

        try:
            await bus.subscribe(topic, "g", idempotent(apply, engine, "faults"), policy=FAST_RETRY)  # type: ignore[arg-type]
            ids = []
            for i in range(total):
                e = Event(topic=topic, key=f"k{i % 10}", payload={"i": i})
                ids.append(e.event_id)
                for _ in range(20):  # a publish that fails during a drop is retried (same event_id)
                    try:
                        await asyncio.wait_for(bus.publish(e), 5)
                        break
                    except Exception:
                        await asyncio.sleep(0.2)
                else:
                    raise AssertionError("publish never recovered")
                if i in (30, 80):
                    proxy.drop()
            await wait_until(lambda: applied() >= 50, 30)
            proxy.drop()
            await wait_until(lambda: applied() == total, 60)
            await asyncio.sleep(CLAIM_IDLE_S + 0.5)  # let late redeliveries arrive
            with engine.connect() as conn:  # type: ignore[attr-defined]
                rows = conn.execute(
                    select(effects.c.event_id, func.count()).group_by(effects.c.event_id)
                ).all()
            per_event = dict(rows)  # type: ignore[arg-type]
            assert set(per_event) == set(ids), "lost events"
            assert max(per_event.values()) == 1, "an effect was applied twice"
            assert proxy.drops == 3
        finally:
            await asyncio.wait_for(bus.close(), 20)
            await proxy.stop()
            await drop_topics(kind, run_id, [topic, topic + ".dlq"])

    asyncio.run(scenario())


def test_redis_entry_redelivered_after_claim_idle_keeps_key_order() -> None:
    """The entry of a killed Redis consumer comes back first; later same-key entries wait for it."""
    require("redis")
    topic = new_topic()

    async def scenario() -> None:
        async with open_bus("redis", [topic]) as bus:
            started = asyncio.Event()
            order: list[int] = []

            async def stuck(d: Delivery) -> None:
                started.set()
                await asyncio.Event().wait()

            async def record(d: Delivery) -> None:
                order.append(int(d.event.payload["seq"]))

            victim = await bus.subscribe(topic, "g", stuck, policy=FAST_RETRY)
            for seq in range(5):
                await bus.publish(Event(topic=topic, key="same", payload={"seq": seq}))
            await asyncio.wait_for(started.wait(), 10)
            await victim.abort()
            await bus.subscribe(topic, "g", record, policy=FAST_RETRY)
            await wait_until(lambda: len(order) == 5, 15)
            assert order == [0, 1, 2, 3, 4]
            assert REDIS_URL

    asyncio.run(scenario())


NATS_START = [
    "start-stop-daemon", "--start", "--oknodo", "--background", "--exec", "/usr/sbin/nats-server", "--",
    "-a", "127.0.0.1", "-p", "4222", "-js", "-sd", "/var/lib/nats-server", "-l", "/var/log/nats-server.log",
]  # fmt: skip


def _restart_nats() -> None:
    """Stop the local nats-server and start it again with the machine's own command (file storage)."""
    import shutil
    import subprocess
    import time

    if shutil.which("start-stop-daemon") is None or not Path("/usr/sbin/nats-server").exists():
        pytest.skip("needs the machine's nats-server and start-stop-daemon to restart the broker")
    subprocess.run(["pkill", "-TERM", "-x", "nats-server"], check=False, timeout=10)
    deadline = time.monotonic() + 15
    while subprocess.run(["pgrep", "-x", "nats-server"], check=False).returncode == 0:
        if time.monotonic() > deadline:
            subprocess.run(["pkill", "-KILL", "-x", "nats-server"], check=False, timeout=10)
        time.sleep(0.1)
    subprocess.run(NATS_START, check=True, timeout=10)
    deadline = time.monotonic() + 30
    while not _reachable(4222)[0]:
        if time.monotonic() > deadline:
            raise AssertionError("nats-server did not come back")
        time.sleep(0.1)


def test_nats_server_restarted_mid_stream_loses_nothing_and_applies_once(sqlite_engine: object) -> None:
    """The real broker process is stopped and started while events flow (JetStream file storage)."""
    require("nats")
    engine = sqlite_engine
    topic = new_topic()
    run_id = uuid.uuid4().hex[:8]
    total = 60

    async def scenario() -> None:
        bus = make_bus("nats", run_id)  # the shared test settings: the broker itself is the fault

        async def apply(d: Delivery, session: Session) -> None:
            await asyncio.sleep(0.002)
            session.execute(insert(effects).values(event_id=d.event.event_id))

        def applied() -> int:
            with engine.connect() as conn:  # type: ignore[attr-defined]
                return int(conn.execute(select(func.count(func.distinct(effects.c.event_id)))).scalar() or 0)

        async def publish(e: Event) -> None:
            for _ in range(100):  # a publish during the restart is retried with the same event_id
                try:
                    await asyncio.wait_for(bus.publish(e), 5)
                    return
                except Exception:
                    await asyncio.sleep(0.2)
            raise AssertionError("publish never recovered")

        try:
            await bus.subscribe(topic, "g", idempotent(apply, engine, "restart"), policy=FAST_RETRY)  # type: ignore[arg-type]
            events = [Event(topic=topic, key=f"k{i % 6}", payload={"i": i}) for i in range(total)]
            for e in events[: total // 2]:
                await publish(e)
            await asyncio.to_thread(_restart_nats)
            for e in events[total // 2 :]:
                await publish(e)
            await wait_until(lambda: applied() == total, 90)
            await asyncio.sleep(ACK_WAIT_S + 0.5)  # late redeliveries, if any, arrive now
            with engine.connect() as conn:  # type: ignore[attr-defined]
                rows = conn.execute(
                    select(effects.c.event_id, func.count()).group_by(effects.c.event_id)
                ).all()
            per_event = dict(rows)  # type: ignore[arg-type]
            assert set(per_event) == {e.event_id for e in events}, "lost events"
            assert max(per_event.values()) == 1, "an effect was applied twice"
        finally:
            await asyncio.wait_for(bus.close(), 30)
            await drop_topics("nats", run_id, [topic, topic + ".dlq"])

    asyncio.run(scenario())
