"""MqttIntake without a broker: topic routing, payload checks, URL parsing, reconnect backoff."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import orjson
import pytest
from prometheus_client import CollectorRegistry

from hexcity.dispatch.adapters.index_memory import InMemoryDriverIndex
from hexcity.dispatch.adapters.mqtt_intake import MqttIntake, parse_mqtt_url
from hexcity.dispatch.domain.pings import PingPipeline
from hexcity.dispatch.ingest import IngestService
from hexcity.dispatch.settings import IngestSettings

T0 = 1_700_000_000.0


def service() -> IngestService:
    return IngestService(
        PingPipeline(),
        InMemoryDriverIndex(),
        settings=IngestSettings(partitions=1, expire_interval_s=3600),
        registry=CollectorRegistry(),
        clock=lambda: T0,
    )


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coro(), 30))


def js(**fields: object) -> bytes:
    return orjson.dumps(fields)


def test_messages_are_routed_checked_and_counted() -> None:
    async def scenario() -> None:
        svc = service()
        intake = MqttIntake(svc, topics=["hexcity/drivers/+/location", "$share/ingest/owntracks/+/+"])
        good = {"seq": 1, "timestamp": T0, "lat": 49.41, "lon": 8.69, "accuracy": 5}
        async with svc:
            h = intake.handle
            assert h("hexcity/drivers/d1/location", js(**good))  # id from the topic
            assert h("hexcity/drivers/d2/location", js(driver_id="d2", **good))  # same id: fine
            assert not h("hexcity/drivers/d3/location", js(driver_id="d9", **good))  # forged
            assert not h("hexcity/drivers/d4/location", b"{not json")
            assert not h("hexcity/drivers/d4/location", js(**good | {"lat": "x"}))
            assert not h("hexcity/drivers/d4/location", b" " * (16 * 1024 + 1))  # too big
            assert not h("hexcity/drivers/d4/location", "text")  # not bytes
            assert not h("hexcity/drivers/d4/location/extra", js(**good))  # no filter matches
            assert not h("hexcity/drivers/d4/location", orjson.dumps([good]))  # not an object
            owntracks = {"_type": "location", "lat": 49.4, "lon": 8.7, "tst": int(T0), "acc": 12}
            assert h("owntracks/alice/phone", js(**owntracks))
            assert not h("owntracks/alice/phone", js(_type="lwt", tst=int(T0)))  # ignored
            assert not h("owntracks/alice/phone", js(_type="location", lat=49.4))  # missing fields
            await svc.join()
            state = svc.driver_state("alice")
            assert state is not None and (state.lat, state.lng) == (49.4, 8.7)
            assert svc.driver_state("d1") is not None and svc.driver_state("d2") is not None
        assert intake.stats == {"connects": 0, "disconnects": 0, "messages": 12, "submitted": 3, "ignored": 1}
        assert svc.counts["invalid"] == 8
        assert svc.counts["accepted"] == 3

    run(scenario)


def test_topic_filters_need_a_driver_level() -> None:
    svc = service()
    for bad in (["hexcity/drivers/#"], ["hexcity/drivers/all"], ["$share//x/+"], []):
        with pytest.raises(ValueError):
            MqttIntake(svc, topics=bad)
    with pytest.raises(ValueError):
        MqttIntake(svc, reconnect_min_s=2, reconnect_max_s=1)


def test_parse_mqtt_url() -> None:
    assert parse_mqtt_url("mqtt://localhost:1883") == {"hostname": "localhost", "port": 1883}
    assert parse_mqtt_url("mqtt://broker") == {"hostname": "broker", "port": 1883}
    assert parse_mqtt_url("mqtt://u%40x:p%3Aw@h:1884/") == {
        "hostname": "h",
        "port": 1884,
        "username": "u@x",
        "password": "p:w",
    }
    tls = parse_mqtt_url("mqtts://broker")
    assert tls["port"] == 8883 and "tls_context" in tls
    for bad in ("http://x", "mqtt://", "mqtt://h:99999", "mqtt://h/topic", "mqtt://h?x=1"):
        with pytest.raises(ValueError):
            parse_mqtt_url(bad)


def test_unreachable_broker_backs_off_and_stops_cleanly() -> None:
    async def scenario() -> None:
        svc = service()
        intake = MqttIntake(svc, "mqtt://127.0.0.1:1", reconnect_min_s=0.01, reconnect_max_s=0.04)
        async with svc, intake:
            await asyncio.sleep(0.4)
            assert intake.stats["connects"] == 0
            assert intake.stats["disconnects"] >= 3  # retried, bounded backoff of at most 40 ms
            assert not intake.connected.is_set()
            with pytest.raises(TimeoutError):
                await intake.wait_connected(0.05)

    run(scenario)


def test_intake_from_settings_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEXCITY_DISPATCH_INGEST_PARTITIONS", "8")
    monkeypatch.setenv("HEXCITY_DISPATCH_INGEST_MQTT_TOPICS", '["fleet/+/pos"]')
    monkeypatch.setenv("HEXCITY_DISPATCH_INGEST_MQTT_URL", "mqtt://broker:1884")
    settings = IngestSettings()
    assert settings.partitions == 8 and settings.mqtt_topics == ["fleet/+/pos"]
    svc = service()
    intake = MqttIntake.from_settings(svc, settings.model_copy(update={"mqtt_client_id": "ingest-1"}))
    assert intake.topics == ["fleet/+/pos"] and intake.client_id == "ingest-1"
    assert intake.url == "mqtt://broker:1884"
    assert (intake.reconnect_min_s, intake.reconnect_max_s) == (0.5, 10.0)
    monkeypatch.delenv("HEXCITY_DISPATCH_INGEST_MQTT_TOPICS")
    default = MqttIntake.from_settings(service())  # the service's settings: default topics, random id
    assert default.topics == ["hexcity/drivers/+/location", "owntracks/+/+"]
    assert default.client_id.startswith("hexcity-ingest-")
    monkeypatch.setenv("HEXCITY_DISPATCH_INGEST_QUEUE_SIZE", "0")
    with pytest.raises(ValueError, match="queue_size"):
        IngestSettings()
