"""Ping ingestion pipeline (dispatch.md §2.2–2.3): GCRA, dedupe, order, teleport, Kalman, parsers."""

from __future__ import annotations

import contextlib
import math
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hexcity.dispatch.domain.pings import (
    KMH_MPS,
    KNOT_MPS,
    Gcra,
    KalmanFilter2D,
    Ping,
    PingParams,
    PingPipeline,
    Verdict,
    _haversine_m,
    parse_osmand,
    parse_owntracks,
    parse_ping,
)
from hexcity.dispatch.errors import InvalidPing
from hexcity.kernel import EARTH_RADIUS_M, LatLng, haversine_m

HD = LatLng(49.41, 8.69)  # Heidelberg


class FakeClock:
    def __init__(self, now_s: float = 1000.0) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s


def ping(
    seq: int,
    ts: float,
    lat: float = HD.lat,
    lng: float = HD.lng,
    acc: float = 5.0,
    driver: str = "d1",
) -> Ping:
    return Ping(driver, seq, ts, lat, lng, acc)


def north_of(p: LatLng, metres: float) -> LatLng:
    """Along a meridian haversine is exactly R·Δφ, so this point is ``metres`` away."""
    return LatLng(p.lat + math.degrees(metres / EARTH_RADIUS_M), p.lng)


# -- GCRA ---------------------------------------------------------------------------------------------


def test_gcra_allows_exactly_burst_then_one_per_second() -> None:
    gcra = Gcra(rate_per_s=1.0, burst=3)
    assert gcra.emission_interval_s == 1.0
    assert gcra.tolerance_s == 2.0
    tat = -math.inf
    results = []
    for _ in range(10):  # 10 at t = 0
        ok, tat = gcra.check(tat, 0.0)
        results.append(ok)
    assert results == [True] * 3 + [False] * 7
    assert gcra.retry_after_s(tat, 0.0) == 1.0
    # then exactly one per second
    for t in (1.0, 2.0, 3.0):
        ok, tat = gcra.check(tat, t)
        assert ok
        ok, tat = gcra.check(tat, t)
        assert not ok
    ok, tat = gcra.check(tat, 3.999)
    assert not ok


def test_pipeline_holds_200hz_client_to_burst_then_1_per_s() -> None:
    clock = FakeClock(0.0)
    pipe = PingPipeline(PingParams(), clock)
    verdicts = []
    for i in range(1000):  # 5 s of a stationary driver stuck at 200 Hz
        clock.now_s = i * 0.005
        verdicts.append(pipe.process(ping(i, 10_000.0 + i * 0.005)).verdict)
    accepted = verdicts.count(Verdict.ACCEPTED)
    # burst 3 at t=0, then one at t=1, 2, 3, 4 (t < 5): 7
    assert accepted == 7
    assert verdicts[:4] == [Verdict.ACCEPTED] * 3 + [Verdict.RATE_LIMITED]
    assert pipe.counters["rate_limited"] == 993
    assert pipe.counters["processed"] == 1000


def test_gcra_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError):
        Gcra(0.0, 3)
    with pytest.raises(ValueError):
        Gcra(1.0, 0)
    with pytest.raises(ValueError, match="burst"):
        PingParams(burst=0)


# -- dedupe and order ---------------------------------------------------------------------------------


def test_duplicate_seq_and_duplicate_timestamp() -> None:
    clock = FakeClock()
    pipe = PingPipeline(PingParams(), clock)
    assert pipe.process(ping(1, 100.0)).verdict is Verdict.ACCEPTED
    clock.now_s += 4
    assert pipe.process(ping(1, 104.0)).verdict is Verdict.DUPLICATE  # same seq
    clock.now_s += 4
    assert pipe.process(ping(2, 100.0)).verdict is Verdict.DUPLICATE  # same timestamp
    clock.now_s += 4
    assert pipe.process(ping(2, 104.0)).verdict is Verdict.ACCEPTED
    assert pipe.counters["duplicate"] == 2
    assert pipe.counters["accepted"] == 2


def test_out_of_order_never_moves_the_position() -> None:
    clock = FakeClock()
    pipe = PingPipeline(PingParams(), clock)
    assert pipe.process(ping(1, 100.0)).verdict is Verdict.ACCEPTED
    clock.now_s += 4
    here = north_of(HD, 40.0)
    out = pipe.process(ping(2, 104.0, here.lat, here.lng))
    assert out.verdict is Verdict.ACCEPTED
    before = pipe.last_position("d1")
    assert before == out.position
    for seq, ts in ((3, 103.0), (9, 50.0), (1_000, 103.999)):
        clock.now_s += 4
        old = north_of(HD, 500.0)
        assert pipe.process(ping(seq, ts, old.lat, old.lng)).verdict is Verdict.OUT_OF_ORDER
        assert pipe.last_position("d1") == before
    clock.now_s += 4
    # newer timestamp, same seq: a replay; older seq: out of order (seqs are monotonic per driver)
    assert pipe.process(ping(2, 110.0)).verdict is Verdict.DUPLICATE
    assert pipe.process(ping(1, 110.0)).verdict is Verdict.OUT_OF_ORDER
    assert pipe.last_position("d1") == before
    assert pipe.counters["out_of_order"] == 4


# -- plausibility -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("speed_kmh", "verdict"), [(201.0, Verdict.TELEPORT), (199.0, Verdict.ACCEPTED)])
def test_teleport_threshold(speed_kmh: float, verdict: Verdict) -> None:
    clock = FakeClock()
    pipe = PingPipeline(PingParams(), clock)
    assert pipe.process(ping(1, 100.0)).verdict is Verdict.ACCEPTED
    dt_s = 10.0
    there = north_of(HD, speed_kmh * KMH_MPS * dt_s)
    implied_kmh = haversine_m(HD, there) / dt_s * 3.6
    assert implied_kmh == pytest.approx(speed_kmh, rel=1e-9)
    assert _haversine_m(HD.lat, HD.lng, there.lat, there.lng) == haversine_m(HD, there)
    clock.now_s += dt_s
    assert pipe.process(ping(2, 100.0 + dt_s, there.lat, there.lng)).verdict is verdict
    assert pipe.counters["teleport"] == (verdict is Verdict.TELEPORT)


def test_teleport_does_not_move_the_reference_point() -> None:
    clock = FakeClock()
    pipe = PingPipeline(PingParams(), clock)
    pipe.process(ping(1, 100.0))
    far = north_of(HD, 10_000.0)
    clock.now_s += 4
    assert pipe.process(ping(2, 104.0, far.lat, far.lng)).verdict is Verdict.TELEPORT
    near = north_of(HD, 100.0)  # 100 m in 8 s from the last *accepted* point: fine
    clock.now_s += 4
    assert pipe.process(ping(3, 108.0, near.lat, near.lng)).verdict is Verdict.ACCEPTED


@pytest.mark.parametrize(
    ("lat", "lng", "acc", "ts"),
    [
        (90.0001, 8.0, 5.0, 1.0),
        (-90.5, 8.0, 5.0, 1.0),
        (49.0, 180.01, 5.0, 1.0),
        (49.0, -181.0, 5.0, 1.0),
        (math.nan, 8.0, 5.0, 1.0),
        (49.0, math.nan, 5.0, 1.0),
        (math.inf, 8.0, 5.0, 1.0),
        (49.0, 8.0, math.nan, 1.0),
        (49.0, 8.0, -1.0, 1.0),
        (49.0, 8.0, 5.0, math.nan),
        (49.0, 8.0, 5.0, math.inf),
    ],
)
def test_invalid_geo(lat: float, lng: float, acc: float, ts: float) -> None:
    pipe = PingPipeline(PingParams(), FakeClock())
    assert pipe.process(Ping("d1", 1, ts, lat, lng, acc)).verdict is Verdict.INVALID_GEO
    assert pipe.counters["invalid_geo"] == 1
    assert len(pipe) == 0  # no per-driver state for garbage, and no GCRA budget spent


def test_boundary_coordinates_are_valid() -> None:
    pipe = PingPipeline(PingParams(), FakeClock())
    for i, (lat, lng) in enumerate([(90.0, 180.0), (-90.0, -180.0)]):
        assert pipe.process(Ping(f"d{i}", 1, 1.0, lat, lng, 5.0)).verdict is Verdict.ACCEPTED


# -- Kalman -------------------------------------------------------------------------------------------


def test_kalman_smooths_a_straight_constant_speed_track() -> None:
    rng = random.Random(7)
    sigma_m, speed_mps, dt_s, n = 15.0, 12.0, 4.0, 200
    bearing = math.radians(60.0)
    truth = []
    for i in range(n):
        d = speed_mps * dt_s * i
        # local east/north offsets → lat/lng (equirectangular, fine at these distances)
        east, north = d * math.sin(bearing), d * math.cos(bearing)
        truth.append(
            LatLng(
                HD.lat + math.degrees(north / EARTH_RADIUS_M),
                HD.lng + math.degrees(east / (EARTH_RADIUS_M * math.cos(math.radians(HD.lat)))),
            )
        )
    raw_sq, smooth_sq = [], []
    kf: KalmanFilter2D | None = None
    for i, p in enumerate(truth):
        meas = north_of(
            LatLng(
                p.lat,
                p.lng
                + math.degrees(rng.gauss(0, sigma_m) / (EARTH_RADIUS_M * math.cos(math.radians(HD.lat)))),
            ),
            rng.gauss(0, sigma_m),
        )
        if kf is None:
            kf = KalmanFilter2D(meas.lat, meas.lng, 0.0, sigma_m, process_noise_m2_s3=0.5)
            est = kf.position
        else:
            est = kf.step(meas.lat, meas.lng, i * dt_s, sigma_m)
        if i >= 10:  # after the filter has converged
            raw_sq.append(haversine_m(meas, p) ** 2)
            smooth_sq.append(haversine_m(est, p) ** 2)
    ratio = math.sqrt(sum(smooth_sq) / len(smooth_sq)) / math.sqrt(sum(raw_sq) / len(raw_sq))
    assert ratio < 0.8, ratio
    assert kf is not None
    vx, vy = kf.velocity_mps
    assert math.hypot(vx, vy) == pytest.approx(speed_mps, abs=3.0)  # σ 15 m every 4 s: a rough speed


def test_kalman_large_accuracy_moves_the_estimate_less() -> None:
    def moved(acc_m: float) -> float:
        kf = KalmanFilter2D(HD.lat, HD.lng, 0.0, 5.0)
        kf.step(HD.lat, HD.lng, 4.0, 5.0)
        start = kf.position
        target = north_of(HD, 100.0)
        return haversine_m(start, kf.step(target.lat, target.lng, 8.0, acc_m))

    small, huge = moved(5.0), moved(5_000.0)
    assert huge < small
    assert huge < 1.0 < small


def test_pipeline_down_weights_low_accuracy() -> None:
    def moved(acc_m: float) -> float:
        clock = FakeClock()
        pipe = PingPipeline(PingParams(), clock)
        pipe.process(ping(1, 100.0))
        clock.now_s += 4
        pipe.process(ping(2, 104.0))
        start = pipe.last_position("d1")
        assert start is not None
        target = north_of(HD, 100.0)
        clock.now_s += 4
        out = pipe.process(ping(3, 108.0, target.lat, target.lng, acc=acc_m))
        assert out.position is not None
        return haversine_m(start, out.position)

    kf_only = KalmanFilter2D(HD.lat, HD.lng, 100.0, 5.0)  # same geometry, no down-weighting
    kf_only.step(HD.lat, HD.lng, 104.0, 5.0)
    start = kf_only.position
    target = north_of(HD, 100.0)
    plain = haversine_m(start, kf_only.step(target.lat, target.lng, 108.0, 150.0))
    assert moved(150.0) < plain  # 150 m is worse than 100 m: σ doubled
    assert moved(99.0) > moved(150.0)


def test_kalman_recentres_far_from_origin() -> None:
    kf = KalmanFilter2D(HD.lat, HD.lng, 0.0, 5.0, recenter_after_m=1_000.0)
    for i in range(1, 50):
        p = north_of(HD, 200.0 * i)
        est = kf.step(p.lat, p.lng, 10.0 * i, 5.0)
    assert haversine_m(est, north_of(HD, 200.0 * 49)) < 20.0


# -- LRU ----------------------------------------------------------------------------------------------


def test_lru_cap_never_exceeded_and_evicts_least_recently_seen() -> None:
    clock = FakeClock()
    pipe = PingPipeline(PingParams(max_drivers=5), clock)
    for i in range(5):
        pipe.process(ping(1, 100.0, driver=f"d{i}"))
    clock.now_s += 4
    pipe.process(ping(2, 104.0, driver="d0"))  # d0 seen again: d1 is now the oldest
    for i in range(5, 40):
        pipe.process(ping(1, 100.0, driver=f"d{i}"))
        assert len(pipe) <= 5
    assert len(pipe) == 5
    assert "d0" not in pipe
    assert pipe.counters["evicted"] == 35
    pipe2 = PingPipeline(PingParams(max_drivers=5), clock)
    for i in range(5):
        pipe2.process(ping(1, 100.0, driver=f"d{i}"))
    pipe2.process(ping(2, 104.0, driver="d0"))
    pipe2.process(ping(1, 100.0, driver="d5"))
    assert "d0" in pipe2
    assert "d1" not in pipe2


# -- parsers ------------------------------------------------------------------------------------------


def test_parse_ping_json() -> None:
    p = parse_ping(
        {
            "driver_id": "drv-42",
            "seq": 17,
            "timestamp": 1_764_000_000.25,
            "lat": 49.4093,
            "lon": 8.6947,
            "accuracy": 8,
            "bearing": 271.5,
            "speed": 11.2,
            "status": "busy",
        }
    )
    assert p == Ping("drv-42", 17, 1_764_000_000.25, 49.4093, 8.6947, 8.0, 271.5, 11.2, "busy")
    minimal = parse_ping(
        {"driver_id": "d", "seq": 0, "timestamp": 1, "lat": 0, "lon": 0, "accuracy": 3, "bearing": None}
    )
    assert minimal.status == "online"
    assert minimal.bearing_deg is None
    assert minimal.speed_mps is None


_GOOD = {"driver_id": "d", "seq": 1, "timestamp": 1.0, "lat": 1.0, "lon": 1.0, "accuracy": 3.0}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"lat": None}, "lat"),
        ({"lon": "8.69"}, "lon"),
        ({"seq": 1.5}, "seq"),
        ({"seq": True}, "seq"),
        ({"seq": -1}, "seq"),
        ({"driver_id": ""}, "driver_id"),
        ({"driver_id": 7}, "driver_id"),
        ({"timestamp": math.inf}, "timestamp"),
        ({"accuracy": -2}, "accuracy"),
        ({"bearing": 361}, "bearing"),
        ({"speed": "fast"}, "speed"),
        ({"status": "asleep"}, "status"),
        ({"status": ["online"]}, "status"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_parse_ping_bad_fields(change: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidPing, match=field):
        parse_ping({**_GOOD, **change})


def test_parse_ping_missing_field_and_non_object() -> None:
    body = dict(_GOOD)
    del body["timestamp"]
    with pytest.raises(InvalidPing, match="timestamp"):
        parse_ping(body)
    with pytest.raises(InvalidPing, match="object"):
        parse_ping([1, 2])


OWNTRACKS = {
    "_type": "location",
    "acc": 12,
    "alt": 114,
    "batt": 81,
    "bs": 1,
    "conn": "m",
    "cog": 245,
    "created_at": 1764000003,
    "lat": 49.41207,
    "lon": 8.68751,
    "m": 1,
    "t": "u",
    "tid": "k7",
    "tst": 1764000001,
    "vac": 4,
    "vel": 36,
}


def test_parse_owntracks() -> None:
    p = parse_owntracks(OWNTRACKS, "drv-7")
    assert p.driver_id == "drv-7"
    assert p.seq == 1_764_000_001_000
    assert p.timestamp_s == 1_764_000_001.0
    assert (p.lat, p.lng, p.accuracy_m, p.bearing_deg) == (49.41207, 8.68751, 12.0, 245.0)
    assert p.speed_mps == pytest.approx(10.0)  # 36 km/h
    assert p.status == "online"
    unknown = parse_owntracks({**OWNTRACKS, "cog": -1, "vel": -1}, "drv-7")
    assert unknown.bearing_deg is None
    assert unknown.speed_mps is None
    no_acc = {k: v for k, v in OWNTRACKS.items() if k != "acc"}
    assert parse_owntracks(no_acc, "d").accuracy_m == 100.0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"_type": "transition"}, "_type"),
        ({"lat": "49.4"}, "lat"),
        ({"tst": None}, "tst"),
        ({"acc": -5}, "acc"),
    ],
)
def test_parse_owntracks_bad(change: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidPing, match=field):
        parse_owntracks({**OWNTRACKS, **change}, "d")
    with pytest.raises(InvalidPing, match="lon"):
        parse_owntracks({k: v for k, v in OWNTRACKS.items() if k != "lon"}, "d")


# GET /?id=123456&lat=49.41207&lon=8.68751&timestamp=1764000001&hdop=0.9&altitude=114
#      &speed=10.5&bearing=90&accuracy=6&batt=77
OSMAND = {
    "id": "123456",
    "lat": "49.41207",
    "lon": "8.68751",
    "timestamp": "1764000001",
    "hdop": "0.9",
    "altitude": "114",
    "speed": "10.5",
    "bearing": "90",
    "accuracy": "6",
    "batt": "77",
}


def test_parse_osmand() -> None:
    p = parse_osmand(OSMAND)
    assert p == Ping(
        "123456", 1_764_000_001_000, 1_764_000_001.0, 49.41207, 8.68751, 6.0, 90.0, 10.5 * KNOT_MPS
    )
    assert p.speed_mps == pytest.approx(5.4017, abs=1e-4)
    iso = parse_osmand({**OSMAND, "timestamp": "2025-11-24T16:00:01Z"})
    assert iso.timestamp_s == 1_764_000_001.0
    naive_iso = parse_osmand({**OSMAND, "timestamp": "2025-11-24 16:00:01.5"})
    assert naive_iso.timestamp_s == 1_764_000_001.5
    assert naive_iso.seq == 1_764_000_001_500
    ms = parse_osmand({**OSMAND, "timestamp": "1764000001250"})
    assert ms.timestamp_s == 1_764_000_001.25
    minimal = parse_osmand({"deviceid": "x", "lat": "1", "lon": "2", "timestamp": "3"})
    assert (minimal.driver_id, minimal.speed_mps, minimal.bearing_deg, minimal.accuracy_m) == (
        "x",
        None,
        None,
        100.0,
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"lat": "north"}, "lat"),
        ({"timestamp": "yesterday"}, "timestamp"),
        ({"timestamp": "-5"}, "timestamp"),
        ({"speed": "inf"}, "speed"),
        ({"bearing": "400"}, "bearing"),
        ({"accuracy": "-1"}, "accuracy"),
        ({"id": ""}, "id"),
    ],
)
def test_parse_osmand_bad(change: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidPing, match=field):
        parse_osmand({**OSMAND, **change})


def test_parsed_ping_out_of_range_counts_as_invalid_geo() -> None:
    p = parse_osmand({**OSMAND, "lat": "91"})
    pipe = PingPipeline(PingParams(), FakeClock())
    assert pipe.process(p).verdict is Verdict.INVALID_GEO


# -- properties ---------------------------------------------------------------------------------------

_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
_keys = st.one_of(st.sampled_from(sorted({*_GOOD, "bearing", "speed", "status"})), st.text(max_size=6))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_keys, _values, max_size=10), st.booleans())
def test_parse_ping_raises_only_invalid_ping(body: dict[str, Any], fill: bool) -> None:
    if fill:
        body = {**_GOOD, **body}
    try:
        p = parse_ping(body)
    except InvalidPing:
        return
    assert isinstance(p, Ping)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(OSMAND)), st.text(max_size=12), max_size=10), st.booleans())
def test_parse_osmand_raises_only_invalid_ping(query: dict[str, str], fill: bool) -> None:
    if fill:
        query = {**OSMAND, **query}
    with contextlib.suppress(InvalidPing):
        parse_osmand(query)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(OWNTRACKS)), _values, max_size=8), st.booleans())
def test_parse_owntracks_raises_only_invalid_ping(body: dict[str, Any], fill: bool) -> None:
    if fill:
        body = {**OWNTRACKS, **body}
    with contextlib.suppress(InvalidPing):
        parse_owntracks(body, "d")


_pings = st.builds(
    Ping,
    driver_id=st.sampled_from(["a", "b", "c"]),
    seq=st.integers(min_value=-5, max_value=2**70),
    timestamp_s=st.floats(),
    lat=st.one_of(st.floats(), st.floats(-90, 90)),
    lng=st.one_of(st.floats(), st.floats(-180, 180)),
    accuracy_m=st.floats(),
    bearing_deg=st.one_of(st.none(), st.floats()),
    speed_mps=st.one_of(st.none(), st.floats()),
    status=st.sampled_from(["online", "busy", "offline"]),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_pings, st.floats(0, 1e6)), max_size=30))
def test_process_never_raises(stream: list[tuple[Ping, float]]) -> None:
    pipe = PingPipeline(PingParams(max_drivers=2), FakeClock())
    for p, received_s in stream:
        out = pipe.process(p, received_s=received_s)
        assert out.verdict in Verdict
        if out.verdict is Verdict.ACCEPTED:
            assert out.position is not None
        assert len(pipe) <= 2
    counts = pipe.counters
    assert counts["processed"] == len(stream) == sum(counts[v] for v in Verdict)
