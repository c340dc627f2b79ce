"""Driver location pings: the ingestion pipeline of dispatch.md §2.2–2.3 (pure, no I/O).

Order of the checks (dispatch.md §2.3), each one a :class:`Verdict`:

1. coordinate check: lat ∈ [−90, 90], lng ∈ [−180, 180], and every numeric field the pipeline
   uses (lat, lng, timestamp, accuracy) finite, accuracy ≥ 0 → ``invalid_geo``;
2. per-driver GCRA rate limit (1 ping/s, burst 3, on the *receipt* clock) → ``rate_limited``;
3. dedupe by ``seq`` and by timestamp against the driver's last accepted ping → ``duplicate``;
4. out-of-order: a timestamp (or seq) older than the last accepted one → ``out_of_order``; the
   caller sends it to cold storage, it never moves the live position;
5. plausibility: implied speed (haversine ÷ Δt) from the last accepted raw position above
   200 km/h → ``teleport``; accuracy worse than 100 m is down-weighted in the smoother;
6. per-driver Kalman smoother (constant velocity) → ``accepted`` with the smoothed position.

Only accepted pings update the per-driver seq/timestamp/position; every ping that passes the
coordinate check spends GCRA budget and refreshes the driver's place in the LRU.

References:

* GCRA: ATM Forum, *Traffic Management Specification 4.0* (1996), the virtual-scheduling form
  of the Generic Cell Rate Algorithm; Brandur Leach, "Rate limiting, cells, and GCRA" (2015),
  https://brandur.org/rate-limiting.
* Kalman filter: G. Welch and G. Bishop, *An Introduction to the Kalman Filter*, UNC-Chapel Hill
  TR 95-041; the constant-velocity model with continuous white-noise acceleration (process
  noise spectral density q, Q = q·[[Δt³/3, Δt²/2], [Δt²/2, Δt]] per axis).
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, NamedTuple

from hexcity.dispatch.errors import InvalidPing
from hexcity.kernel import EARTH_RADIUS_M, LatLng

STATUSES: Final = frozenset({"online", "busy", "offline"})
KNOT_MPS: Final = 1852.0 / 3600.0
KMH_MPS: Final = 1.0 / 3.6
MAX_DRIVER_ID_CHARS: Final = 256
_DEG_M: Final = EARTH_RADIUS_M * math.pi / 180.0  # metres per degree of latitude (and of lng at the equator)
_RAD: Final = math.pi / 180.0
_GCRA_EPS_S: Final = 1e-9  # absorbs float rounding in TAT accumulation (e.g. rate 1/3)


# -- the ping ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ping:
    """One location report of one driver. Speeds in m/s, angles in degrees, times in unix s."""

    driver_id: str
    seq: int
    timestamp_s: float
    lat: float
    lng: float
    accuracy_m: float
    bearing_deg: float | None = None
    speed_mps: float | None = None
    status: str = "online"


@dataclass(frozen=True, slots=True)
class PingParams:
    """Pipeline settings; the defaults are dispatch.md §2.3/§2.4's."""

    rate_per_s: float = 1.0
    burst: int = 3
    max_speed_kmh: float = 200.0
    low_accuracy_threshold_m: float = 100.0
    low_accuracy_sigma_factor: float = 2.0  # σ ×2 (σ² ×4) beyond the threshold: "down-weighted"
    min_accuracy_m: float = 1.0  # floor, so that a reported 0 m never makes the filter overconfident
    stale_after_s: float = 12.0  # 3 missed pings: the filter restarts from the next accepted ping
    process_noise_m2_s3: float = 0.5  # white-noise acceleration spectral density q
    initial_velocity_sigma_mps: float = 15.0
    recenter_after_m: float = 50_000.0  # local metric frame re-centred beyond this offset
    max_drivers: int = 1_000_000

    def __post_init__(self) -> None:
        checks = {
            "rate_per_s": self.rate_per_s > 0 and math.isfinite(self.rate_per_s),
            "burst": self.burst >= 1,
            "max_speed_kmh": self.max_speed_kmh > 0,
            "low_accuracy_threshold_m": self.low_accuracy_threshold_m > 0,
            "low_accuracy_sigma_factor": self.low_accuracy_sigma_factor >= 1,
            "min_accuracy_m": self.min_accuracy_m > 0,
            "stale_after_s": self.stale_after_s > 0,
            "process_noise_m2_s3": self.process_noise_m2_s3 >= 0,
            "initial_velocity_sigma_mps": self.initial_velocity_sigma_mps >= 0,
            "recenter_after_m": self.recenter_after_m > 0,
            "max_drivers": self.max_drivers >= 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid PingParams: {', '.join(bad)}")

    @property
    def max_speed_mps(self) -> float:
        return self.max_speed_kmh * KMH_MPS


class Verdict(StrEnum):
    ACCEPTED = "accepted"
    INVALID_GEO = "invalid_geo"
    RATE_LIMITED = "rate_limited"
    DUPLICATE = "duplicate"
    OUT_OF_ORDER = "out_of_order"
    TELEPORT = "teleport"


class PingOutcome(NamedTuple):
    """What :meth:`PingPipeline.process` decided; ``position`` (smoothed) only when accepted."""

    verdict: Verdict
    position: LatLng | None = None


_REJECTED: Final[dict[Verdict, PingOutcome]] = {
    v: PingOutcome(v) for v in Verdict if v is not Verdict.ACCEPTED
}


# -- GCRA ----------------------------------------------------------------------------------------------


class Gcra:
    """Generic Cell Rate Algorithm, virtual-scheduling form (ATM Forum TM 4.0; Brandur's write-up).

    Emission interval T = 1/rate, tolerance τ = T·(burst − 1). A ping arriving at ``now_s``
    conforms iff TAT − now ≤ τ (TAT = theoretical arrival time, at least ``now``); then
    TAT ← max(TAT, now) + T. A non-conforming ping leaves TAT unchanged. So ``burst`` pings pass
    at once, then one per T. The limiter is stateless: the caller keeps one TAT per driver
    (start with ``-inf``), which keeps per-driver state to a single float.
    """

    __slots__ = ("emission_interval_s", "tolerance_s")

    def __init__(self, rate_per_s: float, burst: int) -> None:
        if not (rate_per_s > 0 and math.isfinite(rate_per_s)) or burst < 1:
            raise ValueError("GCRA needs rate_per_s > 0 and burst >= 1")
        self.emission_interval_s = 1.0 / rate_per_s
        self.tolerance_s = self.emission_interval_s * (burst - 1)

    def check(self, tat_s: float, now_s: float) -> tuple[bool, float]:
        """``(allowed, new_tat_s)`` for a ping at ``now_s`` given the driver's TAT."""
        tat = tat_s if tat_s > now_s else now_s
        if tat - now_s > self.tolerance_s + _GCRA_EPS_S:
            return False, tat_s
        return True, tat + self.emission_interval_s

    def retry_after_s(self, tat_s: float, now_s: float) -> float:
        """Seconds until the next ping would conform (0 if it would now): the 429 Retry-After."""
        return max(0.0, tat_s - self.tolerance_s - now_s)


# -- Kalman smoother ---------------------------------------------------------------------------------


class KalmanFilter2D:
    """Constant-velocity Kalman filter on [px, py, vx, vy] in a local metric frame (Welch & Bishop).

    The frame is equirectangular around an origin (the first fix, re-centred when the estimate
    drifts beyond ``recenter_after_m``): x east, y north, metres. Process noise is continuous
    white-noise acceleration of spectral density ``process_noise_m2_s3`` on each axis; measurement
    noise is σ² = accuracy_m² on each axis. Because both axes share the same dynamics, the same
    isotropic measurement noise and the same initial covariance, their 2×2 covariances stay equal
    and uncorrelated, so one 2×2 covariance [[p00, p01], [p01, p11]] serves both axes exactly.
    """

    __slots__ = (
        "_kx",
        "_lat0",
        "_lng0",
        "_q",
        "_recenter_m",
        "p00",
        "p01",
        "p11",
        "timestamp_s",
        "vx",
        "vy",
        "x",
        "y",
    )

    def __init__(
        self,
        lat: float,
        lng: float,
        timestamp_s: float,
        accuracy_m: float,
        *,
        process_noise_m2_s3: float = 0.5,
        initial_velocity_sigma_mps: float = 15.0,
        recenter_after_m: float = 50_000.0,
    ) -> None:
        self._q = process_noise_m2_s3
        self._recenter_m = recenter_after_m
        self._set_origin(lat, lng)
        self.x = 0.0
        self.y = 0.0
        self.vx = 0.0
        self.vy = 0.0
        self.p00 = accuracy_m * accuracy_m
        self.p01 = 0.0
        self.p11 = initial_velocity_sigma_mps * initial_velocity_sigma_mps
        self.timestamp_s = timestamp_s

    def _set_origin(self, lat: float, lng: float) -> None:
        self._lat0 = lat
        self._lng0 = lng
        self._kx = _DEG_M * max(math.cos(lat * _RAD), 1e-9)

    def _to_local(self, lat: float, lng: float) -> tuple[float, float]:
        dlng = lng - self._lng0
        if dlng > 180.0:
            dlng -= 360.0
        elif dlng < -180.0:
            dlng += 360.0
        return dlng * self._kx, (lat - self._lat0) * _DEG_M

    @property
    def position(self) -> LatLng:
        lat = self._lat0 + self.y / _DEG_M
        lng = self._lng0 + self.x / self._kx
        lat = 90.0 if lat > 90.0 else (-90.0 if lat < -90.0 else lat)
        if lng > 180.0 or lng < -180.0:
            lng = (lng + 180.0) % 360.0 - 180.0
        return LatLng(lat, lng)

    @property
    def velocity_mps(self) -> tuple[float, float]:
        """(east, north) velocity estimate in m/s."""
        return self.vx, self.vy

    def predict(self, timestamp_s: float) -> None:
        """Propagate state and covariance to ``timestamp_s`` (no-op if not later)."""
        dt_s = timestamp_s - self.timestamp_s
        if dt_s <= 0.0:
            return
        q = self._q
        self.x += self.vx * dt_s
        self.y += self.vy * dt_s
        p01, p11 = self.p01, self.p11
        self.p00 += dt_s * (2.0 * p01 + dt_s * p11) + q * dt_s * dt_s * dt_s / 3.0
        self.p01 = p01 + dt_s * p11 + q * dt_s * dt_s / 2.0
        self.p11 = p11 + q * dt_s
        self.timestamp_s = timestamp_s

    def update(self, lat: float, lng: float, accuracy_m: float) -> LatLng:
        """Fuse a position measurement with σ = ``accuracy_m`` on each axis; return the estimate."""
        zx, zy = self._to_local(lat, lng)
        p00, p01 = self.p00, self.p01
        s = p00 + accuracy_m * accuracy_m
        k0 = p00 / s
        k1 = p01 / s
        rx = zx - self.x
        ry = zy - self.y
        self.x += k0 * rx
        self.y += k0 * ry
        self.vx += k1 * rx
        self.vy += k1 * ry
        self.p11 -= k1 * p01
        self.p00 = (1.0 - k0) * p00
        self.p01 = (1.0 - k0) * p01
        position = self.position
        if abs(self.x) > self._recenter_m or abs(self.y) > self._recenter_m:
            self._set_origin(position.lat, position.lng)
            self.x = 0.0
            self.y = 0.0
        return position

    def step(self, lat: float, lng: float, timestamp_s: float, accuracy_m: float) -> LatLng:
        """``predict(timestamp_s)`` then ``update(lat, lng, accuracy_m)``."""
        self.predict(timestamp_s)
        return self.update(lat, lng, accuracy_m)


# -- pipeline ----------------------------------------------------------------------------------------


class _DriverState:
    __slots__ = ("kf", "lat", "lng", "seq", "tat_s", "ts_s")

    def __init__(self) -> None:
        self.tat_s = -math.inf
        self.seq: int | None = None
        self.ts_s = -math.inf
        self.lat = 0.0
        self.lng = 0.0
        self.kf: KalmanFilter2D | None = None


def _haversine_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Same formula and radius as :func:`hexcity.kernel.haversine_m`, without the tuples."""
    p1 = lat1 * _RAD
    p2 = lat2 * _RAD
    h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin((lng2 - lng1) * _RAD / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


class PingPipeline:
    """Per-driver ingestion state machine (dispatch.md §2.3). Never raises on bad data.

    ``clock`` gives the receipt time in seconds (monotonic); it drives only the GCRA. Per-driver
    state lives in an LRU of at most ``params.max_drivers`` entries (least recently seen evicted).
    ``counters`` counts every verdict plus ``processed`` (all pings) and ``evicted``.
    Not thread-safe: one pipeline per partition (``hash(driver_id) % N``).
    """

    def __init__(self, params: PingParams | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.params = params or PingParams()
        self.clock = clock
        self.gcra = Gcra(self.params.rate_per_s, self.params.burst)
        self._drivers: OrderedDict[str, _DriverState] = OrderedDict()
        self.counters: dict[str, int] = {v.value: 0 for v in Verdict}
        self.counters["processed"] = 0
        self.counters["evicted"] = 0

    def __len__(self) -> int:
        return len(self._drivers)

    def __contains__(self, driver_id: object) -> bool:
        return driver_id in self._drivers

    def last_position(self, driver_id: str) -> LatLng | None:
        """The driver's smoothed position after the last accepted ping (does not touch the LRU)."""
        state = self._drivers.get(driver_id)
        if state is None or state.kf is None:
            return None
        return state.kf.position

    def _reject(self, verdict: Verdict) -> PingOutcome:
        self.counters[verdict.value] += 1
        return _REJECTED[verdict]

    def process(self, ping: Ping, received_s: float | None = None) -> PingOutcome:
        """Run one ping through the checks; ``received_s`` overrides the clock (batch replay)."""
        counters = self.counters
        counters["processed"] += 1
        lat = ping.lat
        lng = ping.lng
        ts = ping.timestamp_s
        acc = ping.accuracy_m
        # 1. coordinates (comparisons with NaN are False, so NaN fails here too)
        if not (
            -90.0 <= lat <= 90.0
            and -180.0 <= lng <= 180.0
            and acc >= 0.0
            and math.isfinite(acc)
            and math.isfinite(ts)
        ):
            return self._reject(Verdict.INVALID_GEO)
        # 2. GCRA, on the receipt clock
        drivers = self._drivers
        driver_id = ping.driver_id
        state = drivers.get(driver_id)
        if state is None:
            state = _DriverState()
            drivers[driver_id] = state
            if len(drivers) > self.params.max_drivers:
                drivers.popitem(last=False)
                counters["evicted"] += 1
        else:
            drivers.move_to_end(driver_id)
        now = self.clock() if received_s is None else received_s
        ok, state.tat_s = self.gcra.check(state.tat_s, now)
        if not ok:
            return self._reject(Verdict.RATE_LIMITED)
        params = self.params
        kf = state.kf
        if state.seq is not None:
            # 3. dedupe, 4. order
            if ping.seq == state.seq or ts == state.ts_s:
                return self._reject(Verdict.DUPLICATE)
            dt_s = ts - state.ts_s
            if dt_s < 0.0 or ping.seq < state.seq:
                return self._reject(Verdict.OUT_OF_ORDER)
            # 5. plausibility
            if _haversine_m(state.lat, state.lng, lat, lng) > params.max_speed_mps * dt_s:
                return self._reject(Verdict.TELEPORT)
            if dt_s > params.stale_after_s:
                kf = None
        # 6. smoother
        if acc < params.min_accuracy_m:
            acc = params.min_accuracy_m
        elif acc > params.low_accuracy_threshold_m:
            acc *= params.low_accuracy_sigma_factor
        if kf is None:
            kf = state.kf = KalmanFilter2D(
                lat,
                lng,
                ts,
                acc,
                process_noise_m2_s3=params.process_noise_m2_s3,
                initial_velocity_sigma_mps=params.initial_velocity_sigma_mps,
                recenter_after_m=params.recenter_after_m,
            )
            position = LatLng(lat, lng)
        else:
            position = kf.step(lat, lng, ts, acc)
        state.seq = ping.seq
        state.ts_s = ts
        state.lat = lat
        state.lng = lng
        counters["accepted"] += 1
        return PingOutcome(Verdict.ACCEPTED, position)


# -- parsers ----------------------------------------------------------------------------------------


def _number(value: Any, field: str, *, finite: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidPing(f"field {field!r} must be a number, got {type(value).__name__}")
    try:
        out = float(value)
    except OverflowError:
        raise InvalidPing(f"field {field!r} is out of range") from None
    if finite and not math.isfinite(out):
        raise InvalidPing(f"field {field!r} must be finite")
    return out


def _str_number(value: str, field: str, *, finite: bool = True) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise InvalidPing(f"field {field!r} must be a number, got {value!r:.40}") from None
    if finite and not math.isfinite(out):
        raise InvalidPing(f"field {field!r} must be finite")
    return out


def _driver_id(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_DRIVER_ID_CHARS:
        raise InvalidPing(
            f"field {field!r} must be a non-empty string of at most {MAX_DRIVER_ID_CHARS} chars"
        )
    return value


def _non_negative(value: float, field: str) -> float:
    if value < 0:
        raise InvalidPing(f"field {field!r} must be >= 0, got {value}")
    return value


def _bearing(value: float, field: str) -> float:
    if not 0.0 <= value <= 360.0:
        raise InvalidPing(f"field {field!r} must be in [0, 360] degrees, got {value}")
    return value


def _seq_from_timestamp(timestamp_s: float) -> int:
    """Sequence for protocols without one: the timestamp in integer milliseconds."""
    return round(timestamp_s * 1000.0)


_JSON_REQUIRED: Final = ("driver_id", "seq", "timestamp", "lat", "lon", "accuracy")
_JSON_OPTIONAL: Final = ("bearing", "speed", "status")
_JSON_FIELDS: Final = frozenset(_JSON_REQUIRED + _JSON_OPTIONAL)


def parse_ping(data: Any) -> Ping:
    """The debug JSON form of a ping (dispatch.md §2.2) → :class:`Ping`.

    ``{"driver_id": str, "seq": int >= 0, "timestamp": unix s, "lat": deg, "lon": deg,
    "accuracy": m, "bearing"?: deg | null, "speed"?: m/s | null, "status"?: online|busy|offline}``.
    Types and value ranges of the non-coordinate fields are checked here; the coordinate range is
    the pipeline's ``invalid_geo`` check. Raises :class:`InvalidPing` naming the field.
    """
    if not isinstance(data, Mapping):
        raise InvalidPing(f"a ping must be a JSON object, got {type(data).__name__}")
    unknown = sorted(str(k) for k in data if k not in _JSON_FIELDS)
    if unknown:
        raise InvalidPing(f"unknown field(s): {', '.join(unknown)[:200]}")
    missing = [k for k in _JSON_REQUIRED if k not in data]
    if missing:
        raise InvalidPing(f"missing field(s): {', '.join(missing)}")
    seq = data["seq"]
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise InvalidPing("field 'seq' must be a non-negative integer")
    bearing = data.get("bearing")
    speed = data.get("speed")
    status = data.get("status", "online")
    if not isinstance(status, str) or status not in STATUSES:
        raise InvalidPing(f"field 'status' must be one of {sorted(STATUSES)}")
    return Ping(
        driver_id=_driver_id(data["driver_id"], "driver_id"),
        seq=seq,
        timestamp_s=_number(data["timestamp"], "timestamp"),
        lat=_number(data["lat"], "lat", finite=False),
        lng=_number(data["lon"], "lon", finite=False),
        accuracy_m=_non_negative(_number(data["accuracy"], "accuracy"), "accuracy"),
        bearing_deg=None if bearing is None else _bearing(_number(bearing, "bearing"), "bearing"),
        speed_mps=None if speed is None else _non_negative(_number(speed, "speed"), "speed"),
        status=status,
    )


def parse_owntracks(data: Any, driver_id: str, *, default_accuracy_m: float = 100.0) -> Ping:
    """An OwnTracks ``_type: location`` payload → :class:`Ping` (status ``online``).

    Uses ``lat``, ``lon``, ``tst`` (unix s), ``acc`` (m, optional: ``default_accuracy_m``),
    ``cog`` (deg, optional) and ``vel`` (km/h, optional); a negative ``cog``/``vel`` means unknown.
    Other OwnTracks keys (``tid``, ``batt``, ``conn``, ...) are ignored; the driver comes from the
    authenticated connection, not from ``tid``. ``seq`` is ``tst`` in milliseconds.
    """
    if not isinstance(data, Mapping):
        raise InvalidPing(f"an OwnTracks message must be a JSON object, got {type(data).__name__}")
    if data.get("_type") != "location":
        raise InvalidPing(f"field '_type' must be 'location', got {data.get('_type')!r:.40}")
    for key in ("lat", "lon", "tst"):
        if key not in data:
            raise InvalidPing(f"missing field {key!r}")
    tst = _non_negative(_number(data["tst"], "tst"), "tst")
    acc = data.get("acc")
    cog = data.get("cog")
    vel = data.get("vel")
    cog_deg = None if cog is None else _number(cog, "cog")
    vel_kmh = None if vel is None else _number(vel, "vel")
    return Ping(
        driver_id=_driver_id(driver_id, "driver_id"),
        seq=_seq_from_timestamp(tst),
        timestamp_s=tst,
        lat=_number(data["lat"], "lat", finite=False),
        lng=_number(data["lon"], "lon", finite=False),
        accuracy_m=default_accuracy_m if acc is None else _non_negative(_number(acc, "acc"), "acc"),
        bearing_deg=None if cog_deg is None or cog_deg < 0 else _bearing(cog_deg, "cog"),
        speed_mps=None if vel_kmh is None or vel_kmh < 0 else vel_kmh * KMH_MPS,
    )


def _osmand_timestamp(value: str) -> float:
    """Unix seconds, unix milliseconds (Traccar's rule: above 2³¹−1 it is ms) or ISO 8601."""
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        number = None
    if number is not None:
        if not math.isfinite(number) or number < 0:
            raise InvalidPing("field 'timestamp' must be a finite non-negative unix time")
        return number / 1000.0 if number > 2**31 - 1 else number
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InvalidPing(f"field 'timestamp' must be unix seconds or ISO 8601, got {text!r:.40}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    try:
        return when.timestamp()
    except (OverflowError, ValueError, OSError):
        raise InvalidPing("field 'timestamp' is out of range") from None


def parse_osmand(query: Mapping[str, str], *, default_accuracy_m: float = 100.0) -> Ping:
    """An OsmAnd/Traccar query string (already decoded to a mapping) → :class:`Ping`.

    ``id`` (or ``deviceid``), ``lat``, ``lon``, ``timestamp`` (unix s/ms or ISO 8601; default:
    missing is an error), ``speed`` (knots), ``bearing`` (deg), ``accuracy`` (m). ``seq`` is the
    timestamp in milliseconds.
    """
    if not isinstance(query, Mapping):
        raise InvalidPing("an OsmAnd request must be a query-string mapping")
    values: dict[str, str] = {}
    for key in ("id", "deviceid", "lat", "lon", "timestamp", "speed", "bearing", "accuracy"):
        value = query.get(key)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise InvalidPing(f"field {key!r} must be a string")
        values[key] = value
    device = values.get("id", values.get("deviceid"))
    if device is None:
        raise InvalidPing("missing field 'id'")
    for key in ("lat", "lon", "timestamp"):
        if key not in values:
            raise InvalidPing(f"missing field {key!r}")
    timestamp_s = _osmand_timestamp(values["timestamp"])
    try:
        seq = _seq_from_timestamp(timestamp_s)
    except (OverflowError, ValueError):
        raise InvalidPing("field 'timestamp' is out of range") from None
    speed = values.get("speed")
    bearing = values.get("bearing")
    accuracy = values.get("accuracy")
    return Ping(
        driver_id=_driver_id(device, "id"),
        seq=seq,
        timestamp_s=timestamp_s,
        lat=_str_number(values["lat"], "lat", finite=False),
        lng=_str_number(values["lon"], "lon", finite=False),
        accuracy_m=(
            default_accuracy_m
            if accuracy is None
            else _non_negative(_str_number(accuracy, "accuracy"), "accuracy")
        ),
        bearing_deg=None if bearing is None else _bearing(_str_number(bearing, "bearing"), "bearing"),
        speed_mps=None if speed is None else _non_negative(_str_number(speed, "speed"), "speed") * KNOT_MPS,
    )
