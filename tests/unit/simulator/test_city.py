"""The city plan: NYC samples, hourly profile, seeded shifts and requests; bot transports."""

from __future__ import annotations

import asyncio
import itertools
import random
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from hexcity.kernel import LatLng, haversine_m
from hexcity.simulator import (
    BotConfig,
    CityParams,
    DriverBot,
    SimClock,
    TripSample,
    hourly_profile,
    load_trip_samples,
    plan_requests,
    plan_shifts,
)
from hexcity.simulator.city import destination

CENTER = LatLng(42.5078, 1.5211)
HEADER = (
    ",VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,passenger_count,trip_distance,pickup_longitude,"
    "pickup_latitude,RateCodeID,store_and_fwd_flag,dropoff_longitude,dropoff_latitude,payment_type\n"
)


def shipped_samples() -> list[TripSample]:
    from importlib import resources

    path = Path(str(resources.files("hexcity.simulator") / "data" / "nyc_tlc_yellow_2015-01_sample.csv"))
    return load_trip_samples(path)


def test_shipped_nyc_sample_drops_zero_coordinates_and_zero_distances() -> None:
    samples = shipped_samples()
    assert len(samples) == 975  # 1,000 rows - 20 with 0.0 coordinates - 5 more with distance 0
    assert min(s.distance_m for s in samples) > 0
    assert {s.hour for s in samples} <= set(range(24))


def test_rows_are_parsed_and_filtered(tmp_path: Path) -> None:
    csv_path = tmp_path / "trips.csv"
    csv_path.write_text(
        HEADER
        + "0,2,2015-01-15 19:05:39,2015-01-15 19:23:42,1,2.0,-73.99,40.75,1,N,-73.97,40.75,1\n"
        + "1,2,2015-01-15 07:05:39,2015-01-15 07:23:42,1,1.0,0.0,0.0,1,N,-73.97,40.75,1\n"
        + "2,2,2015-01-15 08:05:39,2015-01-15 08:23:42,1,0.0,-73.99,40.75,1,N,-73.97,40.75,1\n"
        + "3,2,not a date,2015-01-15 08:23:42,1,1.0,-73.99,40.75,1,N,-73.97,40.75,1\n"
    )
    assert load_trip_samples(csv_path) == [TripSample(2.0 * 1609.344, 19)]
    empty = tmp_path / "empty.csv"
    empty.write_text(HEADER)
    with pytest.raises(ValueError, match="no usable trips"):
        load_trip_samples(empty)


def test_hourly_profile_has_mean_one_and_follows_the_data() -> None:
    profile = hourly_profile([TripSample(1000.0, 8)] * 23)
    assert len(profile) == 24
    assert sum(profile) == pytest.approx(24.0)
    assert profile[8] == pytest.approx(24 * 24 / (23 + 24))  # (23 + 1) / mean
    assert profile[3] == pytest.approx(24 / (23 + 24))


def test_the_plan_is_a_function_of_the_seed() -> None:
    samples = shipped_samples()
    params = CityParams(center=CENTER, radius_m=2000, drivers=10, riders_per_hour=200)

    def plan(seed: int) -> tuple[list[object], list[object]]:
        rng = random.Random(seed)
        return list(plan_shifts(params, rng, 7200)), list(plan_requests(samples, params, rng, 7200))

    assert plan(7) == plan(7)
    assert plan(7) != plan(8)


def test_shifts_cover_every_driver_and_stay_within_the_horizon() -> None:
    params = CityParams(center=CENTER, radius_m=2000, drivers=12)
    shifts = plan_shifts(params, random.Random(3), 4 * 3600)
    assert {s.driver_id for s in shifts} == {f"driver-{i:03d}" for i in range(12)}
    for s in shifts:
        assert 0 <= s.login_at_s < s.logout_at_s <= 4 * 3600
        assert haversine_m(CENTER, s.start) <= 2000 + 1
    by_driver: dict[str, list[tuple[float, float]]] = {}
    for s in shifts:
        by_driver.setdefault(s.driver_id, []).append((s.login_at_s, s.logout_at_s))
    for spans in by_driver.values():  # a driver's shifts never overlap
        assert all(a[1] < b[0] for a, b in itertools.pairwise(spans))


def test_requests_follow_rate_lengths_and_bounds() -> None:
    samples = [TripSample(100.0, h) for h in range(24)] + [TripSample(50_000.0, h) for h in range(24)]
    params = CityParams(center=CENTER, radius_m=1500, riders_per_hour=360, min_trip_m=500, max_trip_m=6000)
    requests = plan_requests(samples, params, random.Random(11), 3600)
    assert 300 <= len(requests) <= 420  # flat profile: Poisson(360), far inside ±3 sigma
    assert {r.distance_m for r in requests} == {500.0, 6000.0}  # clamped to [min_trip_m, max_trip_m]
    assert [r.at_s for r in requests] == sorted(r.at_s for r in requests)
    assert len({r.rider_id for r in requests}) == len(requests)
    assert plan_requests(samples, CityParams(center=CENTER, riders_per_hour=0), random.Random(1), 3600) == []


def test_destination_is_the_distance_away() -> None:
    d = destination(CENTER, 3000.0, 90.0)
    assert haversine_m(CENTER, d) == pytest.approx(3000.0, rel=0.005)
    assert d.lat == pytest.approx(CENTER.lat)


def test_params_and_transport_are_validated() -> None:
    with pytest.raises(ValueError, match="radius_m"):
        CityParams(center=CENTER, radius_m=10)
    with pytest.raises(ValueError, match="min_trip_m"):
        CityParams(center=CENTER, min_trip_m=5000, max_trip_m=1000)
    with pytest.raises(ValueError, match="transport"):
        BotConfig(api_url="http://x", transport="pigeon")


def test_http_transport_posts_the_ping_to_the_intake() -> None:
    seen: list[tuple[str, dict[str, Any]]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.path, orjson.loads(request.content)))
        result = "accepted" if len(seen) == 1 else "rate_limited"
        return httpx.Response(200, json={"accepted": 1, "results": [{"result": result}]})

    async def scenario() -> DriverBot:
        async with httpx.AsyncClient(base_url="http://sim", transport=httpx.MockTransport(handler)) as http:
            config = BotConfig(api_url="http://sim", transport="http")
            bot = DriverBot(
                "d-1", "tok", CENTER, config, http, SimClock(1.0, start_s=100.0), random.Random(1)
            )
            await bot._ping()
            await bot._ping()
            return bot

    bot = asyncio.run(scenario())
    assert (bot.stats.pings_sent, bot.stats.pings_rejected) == (2, 1)
    path, body = seen[0]
    assert path == "/dispatch/v1/pings"
    ping: dict[str, Any] = body["pings"][0]
    assert len(body["pings"]) == 1
    assert ping["driver_id"] == "d-1" and ping["seq"] == 1 and ping["status"] == "online"
    assert (ping["lat"], ping["lon"]) == (CENTER.lat, CENTER.lng)
    assert [b["pings"][0]["seq"] for _, b in seen] == [1, 2]
