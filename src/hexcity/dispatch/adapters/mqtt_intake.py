"""MQTT location intake (aiomqtt, QoS 0) into :class:`hexcity.dispatch.ingest.IngestService`.

Topics (each a subscription filter; the driver id is the segment under the filter's first ``+``):

* ``hexcity/drivers/+/location`` — the JSON ping of ``parse_ping``; ``driver_id`` may be left out
  (taken from the topic) and, if given, must equal the topic's (else ``invalid``: a forged ping);
* ``owntracks/+/+`` — OwnTracks ``_type: location`` messages (``owntracks/<user>/<device>``, the
  driver is the user); other OwnTracks types (``lwt``, ``card``, ``transition``...) are ignored.

A filter may carry an MQTT 5 shared-subscription prefix (``$share/<group>/...``) so that several
API processes split the drivers. QoS 0 is enough (dispatch.md §2.2): the next ping supersedes a
lost one. Authorisation is the broker's job: per-user ACLs (Mosquitto ``pattern write
hexcity/drivers/%u/location``) make the topic the authenticated identity.

Malformed payloads are counted (``dispatch_pings_total{verdict="invalid"}``) and never stop the
loop. Connection loss or a broker restart → reconnect with exponential backoff with full jitter
between ``reconnect_min_s`` and ``reconnect_max_s`` (reset after a successful connect), resubscribe
and carry on; while disconnected, QoS 0 pings are lost by design. The client's incoming queue is
bounded (``max_queued``); overflow is counted as ``dropped``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import uuid
from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import unquote, urlsplit

import aiomqtt
import orjson

from hexcity.dispatch.domain.pings import parse_owntracks, parse_ping
from hexcity.dispatch.errors import InvalidPing
from hexcity.dispatch.ingest import IngestService
from hexcity.dispatch.settings import DEFAULT_MQTT_TOPICS, IngestSettings
from hexcity.infra.logging import get_logger

__all__ = ["MqttIntake", "parse_mqtt_url"]

log = get_logger(__name__)


class _QuietQueueFull(logging.Filter):
    """aiomqtt logs a warning per message it discards on a full queue; those are counted as
    ``dropped`` instead, so that an overload does not also flood the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Message queue is full")


_client_log = logging.getLogger(f"{__name__}.client")
_client_log.addFilter(_QuietQueueFull())

DEFAULT_MAX_QUEUED: Final = 10_000
STOP_TIMEOUT_S: Final = 5.0


def parse_mqtt_url(url: str) -> dict[str, Any]:
    """``mqtt://[user[:password]@]host[:port]`` (1883) or ``mqtts://...`` (8883, TLS) → Client kwargs."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError(f"expected mqtt://host[:port] or mqtts://host[:port], got {url!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"an MQTT url has no path or query: {url!r}")
    tls = parts.scheme == "mqtts"
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError as exc:
        raise ValueError(f"bad port in {url!r}") from exc
    kwargs: dict[str, Any] = {"hostname": parts.hostname, "port": port}
    if parts.username is not None:
        kwargs["username"] = unquote(parts.username)
    if parts.password is not None:
        kwargs["password"] = unquote(parts.password)
    if tls:
        kwargs["tls_context"] = ssl.create_default_context()
    return kwargs


def _route(topic_filter: str) -> tuple[list[str], int, str]:
    """``(levels of the filter without $share prefix, index of the driver level, payload kind)``."""
    bare = topic_filter
    if bare.startswith("$share/"):
        parts = bare.split("/", 2)
        if len(parts) < 3 or not parts[1]:
            raise ValueError(f"bad shared subscription {topic_filter!r}")
        bare = parts[2]
    levels = bare.split("/")
    if "#" in levels or "+" not in levels:
        raise ValueError(
            f"a location topic filter needs a '+' for the driver id and no '#': {topic_filter!r}"
        )
    kind = "owntracks" if levels[0] == "owntracks" else "json"
    return levels, levels.index("+"), kind


class MqttIntake:
    """``async with MqttIntake(service):`` subscribes and feeds pings to ``service`` until exit.

    ``stats``: ``connects``, ``disconnects``, ``messages``, ``submitted``, ``ignored``; parse
    failures and refusals are counted by the service (``invalid``, ``dropped``).
    """

    def __init__(
        self,
        service: IngestService,
        url: str = "mqtt://localhost:1883",
        topics: Sequence[str] = tuple(DEFAULT_MQTT_TOPICS),
        *,
        client_id: str | None = None,
        keepalive_s: int = 30,
        reconnect_min_s: float = 0.5,
        reconnect_max_s: float = 10.0,
        max_payload_bytes: int = 16 * 1024,
        max_queued: int = DEFAULT_MAX_QUEUED,
        default_accuracy_m: float = 100.0,
    ) -> None:
        if not topics:
            raise ValueError("at least one topic filter is needed")
        if not 0 < reconnect_min_s <= reconnect_max_s:
            raise ValueError("need 0 < reconnect_min_s <= reconnect_max_s")
        if max_payload_bytes < 1 or max_queued < 1:
            raise ValueError("max_payload_bytes and max_queued must be >= 1")
        self.service = service
        self.url = url
        self._client_kwargs = parse_mqtt_url(url)
        self.topics = list(topics)
        self._routes = [_route(t) for t in self.topics]
        self.client_id = client_id or f"hexcity-ingest-{uuid.uuid4().hex[:12]}"
        self.keepalive_s = keepalive_s
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s
        self.max_payload_bytes = max_payload_bytes
        self.max_queued = max_queued
        self.default_accuracy_m = default_accuracy_m
        self.stats: dict[str, int] = dict.fromkeys(
            ("connects", "disconnects", "messages", "submitted", "ignored"), 0
        )
        self.connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._rng = random.Random()

    @classmethod
    def from_settings(cls, service: IngestService, settings: IngestSettings | None = None) -> MqttIntake:
        """An intake configured by ``settings`` (default: the service's ``IngestSettings``)."""
        s = service.settings if settings is None else settings
        return cls(
            service,
            s.mqtt_url,
            s.mqtt_topics,
            client_id=s.mqtt_client_id or None,
            keepalive_s=s.mqtt_keepalive_s,
            reconnect_min_s=s.mqtt_reconnect_min_s,
            reconnect_max_s=s.mqtt_reconnect_max_s,
            max_payload_bytes=s.mqtt_max_payload_bytes,
            default_accuracy_m=s.default_accuracy_m,
        )

    async def __aenter__(self) -> MqttIntake:
        if self._task is not None:
            raise RuntimeError("MqttIntake is already running")
        self._task = asyncio.create_task(self._run(), name="dispatch-mqtt-intake")
        return self

    async def __aexit__(self, *exc: object) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(task, STOP_TIMEOUT_S)
        self.connected.clear()

    async def wait_connected(self, timeout_s: float = 5.0) -> None:
        """Wait until subscribed (tests, readiness); ``TimeoutError`` after ``timeout_s``."""
        await asyncio.wait_for(self.connected.wait(), timeout_s)

    async def _run(self) -> None:
        delay_s = self.reconnect_min_s
        service = self.service

        class _CountingQueue(asyncio.Queue[aiomqtt.Message]):
            def put_nowait(self, item: aiomqtt.Message) -> None:
                try:
                    super().put_nowait(item)
                except asyncio.QueueFull:
                    service.count_dropped()  # the loop is starved: counted like a full queue
                    raise

        while True:
            try:
                async with aiomqtt.Client(
                    **self._client_kwargs,
                    identifier=self.client_id,
                    logger=_client_log,
                    keepalive=self.keepalive_s,
                    clean_session=True,
                    max_queued_incoming_messages=self.max_queued,
                    queue_type=_CountingQueue,
                    timeout=10.0,
                ) as client:
                    for topic in self.topics:
                        await client.subscribe(topic, qos=0)
                    self.stats["connects"] += 1
                    self.connected.set()
                    delay_s = self.reconnect_min_s
                    log.info("dispatch.mqtt.connected", url=self._safe_url(), topics=self.topics)
                    async for message in client.messages:
                        self.handle(message.topic.value, message.payload)
            except aiomqtt.MqttError as exc:
                log.warning("dispatch.mqtt.disconnected", url=self._safe_url(), error=str(exc)[:200])
            except Exception as exc:  # never let a surprise end intake: log, back off, reconnect
                log.exception("dispatch.mqtt.failed", url=self._safe_url(), error=type(exc).__name__)
            self.connected.clear()
            self.stats["disconnects"] += 1
            await asyncio.sleep(self._rng.uniform(delay_s / 2, delay_s))
            delay_s = min(self.reconnect_max_s, delay_s * 2)

    def _safe_url(self) -> str:
        return f"{self._client_kwargs['hostname']}:{self._client_kwargs['port']}"

    def handle(self, topic: str, payload: Any) -> bool:
        """Parse one message and submit it; ``True`` if queued. Never raises."""
        self.stats["messages"] += 1
        levels = topic.split("/") if isinstance(topic, str) else []
        route = None
        for filter_levels, index, kind in self._routes:
            if len(filter_levels) == len(levels) and all(
                f in ("+", t) for f, t in zip(filter_levels, levels, strict=True)
            ):
                route = (index, kind)
                break
        if route is None:  # a topic the filters do not cover (overlapping subscriptions, ...)
            self.service.count_invalid()
            return False
        index, kind = route
        driver_id = levels[index]
        if not isinstance(payload, bytes | bytearray) or len(payload) > self.max_payload_bytes:
            self.service.count_invalid()
            return False
        try:
            data = orjson.loads(payload)
            if kind == "owntracks":
                if isinstance(data, dict) and data.get("_type") != "location":
                    self.stats["ignored"] += 1
                    return False
                ping = parse_owntracks(data, driver_id, default_accuracy_m=self.default_accuracy_m)
            else:
                if isinstance(data, dict):
                    given = data.setdefault("driver_id", driver_id)
                    if given != driver_id:
                        raise InvalidPing("driver_id in the payload differs from the topic's")
                ping = parse_ping(data)
        except (orjson.JSONDecodeError, InvalidPing):
            self.service.count_invalid()
            return False
        if self.service.submit(ping):
            self.stats["submitted"] += 1
            return True
        return False
