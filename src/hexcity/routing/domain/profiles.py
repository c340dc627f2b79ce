"""Routing profiles: OSM tags → per-direction access and speed, after OSRM's Lua profiles.

The reference is OSRM 26.10's ``profiles/{car,bicycle,foot}.lua`` and ``profiles/lib/*.lua``
(``way_handlers.lua``, ``access.lua``, ``maxspeed.lua``, ``measure.lua``, ``tags.lua``). Tables
below are copied from those files; the functions follow the handler order of each profile's
``process_way`` / ``process_node``.

Deliberate differences from OSRM (we model duration only, no turn costs or rates):

* routability penalties (service roads, width, side roads, ``hov``, cyclability) only change
  OSRM's *weight*, never its duration, and are not modelled;
* gate penalties (``barrier=gate`` 60 s in car.lua) are not modelled: a gate is passable;
* car ``access=private`` is excluded (OSRM keeps "restricted" roads routable and relies on an
  entry turn penalty we do not have); the other restricted values (``destination``,
  ``delivery``, ``customers``, ``permit``, ``residents``) stay routable on the highway classes
  of OSRM's ``restricted_highway_whitelist``, as in OSRM;
* the driving-side / guidance / lanes / classes handlers have no effect on the graph.

Everything here is pure Python on ``Mapping[str, str]`` tag dictionaries.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from hexcity.routing.errors import UnknownProfile

Tags = Mapping[str, str]

# --------------------------------------------------------------------------------------------
# Tables (from OSRM's Lua profiles)
# --------------------------------------------------------------------------------------------

MPH_TO_KMH = 1.609  # measure.lua miles_to_kilometers

CAR_SPEEDS_KMH: dict[str, float] = {
    "motorway": 90, "motorway_link": 45, "trunk": 85, "trunk_link": 40,
    "primary": 65, "primary_link": 30, "secondary": 55, "secondary_link": 25,
    "tertiary": 40, "tertiary_link": 20, "unclassified": 25, "residential": 25,
    "living_street": 10, "service": 15, "winter_road": 20, "ice_road": 15,
}  # fmt: skip
CAR_DEFAULT_SPEED_KMH = 10.0
CAR_SPEED_REDUCTION = 0.8  # car.lua speed_reduction, applied to maxspeed
CAR_ROUTE_SPEEDS_KMH: dict[str, float] = {"ferry": 5, "shuttle_train": 10}
CAR_BRIDGE_SPEEDS_KMH: dict[str, float] = {"movable": 5}
CAR_SURFACE_SPEEDS_KMH: dict[str, float] = {
    "cement": 80, "compacted": 80, "fine_gravel": 80,
    "paving_stones": 60, "metal": 60, "bricks": 60,
    "grass": 40, "wood": 40, "sett": 40, "grass_paver": 40, "gravel": 40, "unpaved": 40,
    "ground": 40, "dirt": 40, "pebblestone": 40, "tartan": 40,
    "cobblestone": 30, "clay": 30, "earth": 20, "stone": 20, "rocky": 20, "sand": 20,
    "laterite": 15, "mud": 10, "ice": 20, "snow": 30,
}  # fmt: skip
CAR_TRACKTYPE_SPEEDS_KMH: dict[str, float] = {
    "grade1": 60, "grade2": 40, "grade3": 30, "grade4": 25, "grade5": 20,
}  # fmt: skip
CAR_SMOOTHNESS_SPEEDS_KMH: dict[str, float] = {
    "intermediate": 80, "bad": 40, "very_bad": 20, "horrible": 10, "very_horrible": 5, "impassable": 0,
}  # fmt: skip
MAXSPEED_DEFAULTS_KMH: dict[str, float] = {"urban": 50, "rural": 90, "trunk": 110, "motorway": 130}
MAXSPEED_TABLE_KMH: dict[str, float] = {
    "at:rural": 100, "at:trunk": 100, "ar:urban": 40, "ar:rural": 110, "be:motorway": 120,
    "be-bru:rural": 70, "be-bru:urban": 30, "be-vlg:rural": 70, "bg:motorway": 140,
    "by:urban": 60, "by:motorway": 110, "ca-on:rural": 80, "ch:rural": 80, "ch:trunk": 100,
    "ch:motorway": 120, "de:living_street": 7, "de:rural": 100, "de:motorway": 0,
    "dk:rural": 80, "es:trunk": 90, "fr:rural": 80,
    "gb:nsl_single": 60 * 1609 / 1000, "gb:nsl_dual": 70 * 1609 / 1000, "gb:motorway": 70 * 1609 / 1000,
    "lv:living_street": 20, "nl:rural": 80, "nl:trunk": 100, "no:rural": 80, "no:motorway": 110,
    "ph:urban": 40, "ph:rural": 80, "ph:motorway": 100, "pl:rural": 100, "pl:expressway": 120,
    "pl:motorway": 140, "ro:trunk": 100, "ru:living_street": 20, "ru:urban": 60,
    "ru:motorway": 110, "uk:nsl_single": 60 * 1609 / 1000, "uk:nsl_dual": 70 * 1609 / 1000,
    "uk:motorway": 70 * 1609 / 1000, "za:urban": 60, "za:rural": 100, "none": 140,
}  # fmt: skip
CAR_RESTRICTED_HIGHWAYS = frozenset(CAR_SPEEDS_KMH)  # car.lua restricted_highway_whitelist
CAR_VEHICLE_HEIGHT_M = 2.0
CAR_VEHICLE_WIDTH_M = 1.9
CAR_VEHICLE_LENGTH_M = 4.8
CAR_VEHICLE_WEIGHT_KG = 2000.0

BIKE_DEFAULT_SPEED_KMH = 15.0
BIKE_WALKING_SPEED_KMH = 4.0
BIKE_MAX_SPEED_KMH = 21.0  # bicycle.lua vehicle_max_speed
BIKE_SPEEDS_KMH: dict[str, float] = {
    "cycleway": 15, "primary": 15, "primary_link": 15, "secondary": 15, "secondary_link": 15,
    "tertiary": 15, "tertiary_link": 15, "residential": 15, "unclassified": 15,
    "living_street": 15, "service": 15, "track": 12, "path": 13,
}  # fmt: skip
BIKE_PEDESTRIAN_SPEEDS_KMH: dict[str, float] = {"footway": 4, "pedestrian": 4, "steps": 2}
BIKE_RAILWAY_SPEEDS_KMH: dict[str, float] = {
    "train": 10, "railway": 10, "subway": 10, "light_rail": 10, "monorail": 10, "tram": 10,
}  # fmt: skip
BIKE_AMENITY_SPEEDS_KMH: dict[str, float] = {"parking": 10, "parking_entrance": 10}
BIKE_SURFACE_SPEEDS_KMH: dict[str, float] = {
    "asphalt": 15, "chipseal": 15, "concrete": 15, "concrete_lanes": 15, "wood": 10, "metal": 10,
    "cobblestone:flattened": 10, "paving_stones": 10, "compacted": 10, "cobblestone": 7,
    "unpaved": 6, "fine_gravel": 10, "gravel": 6, "pebblestone": 6, "grass_paver": 6,
    "ground": 10, "dirt": 8, "earth": 6, "laterite": 5, "grass": 6, "mud": 3, "sand": 3,
    "woodchips": 3, "sett": 9,
}  # fmt: skip
BIKE_CYCLEWAY_TAGS = frozenset({"track", "lane", "share_busway", "sharrow", "shared", "shared_lane"})
BIKE_OPPOSITE_CYCLEWAY_TAGS = frozenset({"opposite", "opposite_lane", "opposite_track"})

FOOT_WALKING_SPEED_KMH = 5.0
FOOT_HIGHWAYS = frozenset({
    "primary", "primary_link", "secondary", "secondary_link", "tertiary", "tertiary_link",
    "unclassified", "residential", "living_street", "service", "track", "path", "steps",
    "pedestrian", "platform", "footway", "pier",
})  # fmt: skip
FOOT_SURFACE_SPEEDS_KMH: dict[str, float] = {
    "fine_gravel": 3.75, "gravel": 3.75, "pebblestone": 3.75, "mud": 2.5, "sand": 2.5,
}  # fmt: skip

FERRY_SPEED_KMH = 5.0
TRUE_VALUES = frozenset({"yes", "1", "true"})
FALSE_VALUES = frozenset({"no", "0", "false"})
NON_NUMERIC_SIZES = frozenset({"none", "default", "no-sign", "unsigned", "below_default", "no_indications"})
CONSTRUCTION_WHITELIST = frozenset({"no", "widening", "minor"})


@dataclass(frozen=True, slots=True)
class Profile:
    """One routing profile: the OSRM tables that decide access (see the module docstring)."""

    name: str
    access_tags_hierarchy: tuple[str, ...]
    access_whitelist: frozenset[str]
    access_blacklist: frozenset[str]
    restricted_access: frozenset[str]  # routable "restricted" values (car only)
    barrier_whitelist: frozenset[str]  # car: passable barriers; empty for bike/foot
    barrier_blacklist: frozenset[str]  # bike/foot: blocking barriers; empty for car
    avoid: frozenset[str]  # blocked_ways switches of way_handlers.lua
    way_keys: tuple[str, ...]  # a way without any of these keys is never routable
    use_turn_restrictions: bool
    restriction_modes: tuple[str, ...]  # ``restriction:<mode>`` / ``except`` values honoured

    def __repr__(self) -> str:
        """Stable across processes (sets sorted) and covering the speed tables of this module.

        The build pipeline hashes it into the graph version, so a table change invalidates caches.
        """
        parts = [f"{name}={_stable(getattr(self, name))}" for name in self.__slots__]
        return f"Profile({', '.join(parts)}, tables={_TABLES_DIGEST})"


# fmt: off
CAR = Profile(
    name="car",
    access_tags_hierarchy=("motorcar", "motor_vehicle", "vehicle", "access"),
    access_whitelist=frozenset({
        "yes", "motorcar", "motor_vehicle", "vehicle", "permissive", "designated", "hov",
    }),
    access_blacklist=frozenset({
        "no", "agricultural", "forestry", "emergency", "psv", "taxi", "share_taxi", "minibus", "bus",
        "foot", "emergency_vehicle", "restricted", "military", "official", "customers", "private",
        "delivery", "destination", "permit", "residents",
    }),
    restricted_access=frozenset({"delivery", "destination", "customers", "permit", "residents", "unknown"}),
    barrier_whitelist=frozenset({
        "cattle_grid", "border_control", "toll_booth", "sally_port", "no", "entrance",
        "height_restrictor", "arch", "gate", "lift_gate",
    }),
    barrier_blacklist=frozenset(),
    avoid=frozenset({"area", "reversible", "impassable", "hov_lanes", "steps", "construction", "proposed"}),
    way_keys=("highway", "route"),
    use_turn_restrictions=True,
    restriction_modes=("motorcar", "motor_vehicle", "vehicle"),
)

BIKE = Profile(
    name="bike",
    access_tags_hierarchy=("bicycle", "vehicle", "access"),
    access_whitelist=frozenset({"yes", "permissive", "designated"}),
    access_blacklist=frozenset({"no", "private", "agricultural", "forestry", "delivery", "use_sidepath"}),
    restricted_access=frozenset(),
    barrier_whitelist=frozenset(),
    barrier_blacklist=frozenset({"yes", "wall", "fence"}),
    avoid=frozenset({"impassable", "construction", "proposed", "motorroad"}),
    way_keys=("highway", "route", "railway", "amenity", "man_made", "public_transport", "bridge"),
    use_turn_restrictions=False,
    restriction_modes=("bicycle",),
)

FOOT = Profile(
    name="foot",
    access_tags_hierarchy=("foot", "access"),
    access_whitelist=frozenset({"yes", "foot", "permissive", "designated"}),
    access_blacklist=frozenset({"no", "agricultural", "forestry", "private", "delivery", "use_sidepath"}),
    restricted_access=frozenset(),
    barrier_whitelist=frozenset(),
    barrier_blacklist=frozenset({"yes", "wall", "fence"}),
    avoid=frozenset({"impassable", "proposed", "motorroad"}),
    way_keys=("highway", "route", "railway", "amenity", "man_made", "public_transport", "bridge"),
    use_turn_restrictions=False,
    restriction_modes=("foot",),
)

# fmt: on


def _stable(value: object) -> str:
    """``repr`` with sets sorted (set order varies with PYTHONHASHSEED)."""
    return repr(sorted(value)) if isinstance(value, frozenset) else repr(value)


_TABLES: tuple[object, ...] = (
    CAR_SPEEDS_KMH, CAR_DEFAULT_SPEED_KMH, CAR_SPEED_REDUCTION, CAR_ROUTE_SPEEDS_KMH, CAR_BRIDGE_SPEEDS_KMH,
    CAR_SURFACE_SPEEDS_KMH, CAR_TRACKTYPE_SPEEDS_KMH, CAR_SMOOTHNESS_SPEEDS_KMH, MAXSPEED_DEFAULTS_KMH,
    MAXSPEED_TABLE_KMH, CAR_RESTRICTED_HIGHWAYS, CAR_VEHICLE_HEIGHT_M, CAR_VEHICLE_WIDTH_M,
    CAR_VEHICLE_LENGTH_M, CAR_VEHICLE_WEIGHT_KG, BIKE_DEFAULT_SPEED_KMH, BIKE_WALKING_SPEED_KMH,
    BIKE_MAX_SPEED_KMH, BIKE_SPEEDS_KMH, BIKE_PEDESTRIAN_SPEEDS_KMH, BIKE_RAILWAY_SPEEDS_KMH,
    BIKE_AMENITY_SPEEDS_KMH, BIKE_SURFACE_SPEEDS_KMH, BIKE_CYCLEWAY_TAGS, BIKE_OPPOSITE_CYCLEWAY_TAGS,
    FOOT_WALKING_SPEED_KMH, FOOT_HIGHWAYS, FOOT_SURFACE_SPEEDS_KMH, FERRY_SPEED_KMH, CONSTRUCTION_WHITELIST,
)  # fmt: skip
_TABLES_DIGEST = hashlib.sha256("|".join(_stable(t) for t in _TABLES).encode()).hexdigest()[:12]

PROFILES: dict[str, Profile] = {"car": CAR, "bike": BIKE, "foot": FOOT}
PROFILE_ALIASES: dict[str, str] = {"driving": "car", "cycling": "bike", "bicycle": "bike", "walking": "foot"}


def canonical_profile_name(name: str) -> str:
    """``car``/``bike``/``foot`` for a profile name or OSRM alias (``driving``, ``cycling``, ``walking``)."""
    key = name.strip().lower()
    key = PROFILE_ALIASES.get(key, key)
    if key not in PROFILES:
        raise UnknownProfile(f"unknown profile {name!r}; expected one of {sorted(PROFILES)}")
    return key


def get_profile(name: str) -> Profile:
    """The profile for a name or alias; raises ``UnknownProfile``."""
    return PROFILES[canonical_profile_name(name)]


@dataclass(frozen=True, slots=True)
class WayAttributes:
    """What a profile makes of one OSM way. A speed of ``None`` means the direction is closed."""

    forward_speed_kmh: float | None
    backward_speed_kmh: float | None
    name: str
    duration_s: float | None = None  # ferry/movable-bridge ``duration`` tag: total time, both ways

    @property
    def forward(self) -> bool:
        return self.forward_speed_kmh is not None

    @property
    def backward(self) -> bool:
        return self.backward_speed_kmh is not None


# --------------------------------------------------------------------------------------------
# Small parsers (lib/measure.lua, lib/access.lua, lib/tags.lua, way_handlers.parse_maxspeed)
# --------------------------------------------------------------------------------------------

_LEADING_INT = re.compile(r"\d+")
_NUMBER = re.compile(r"\d+\.?\d*")
_ISO_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


def parse_speed_kmh(value: str | None) -> float | None:
    """Leading integer of a speed value, ``mph`` converted (measure.lua ``parse_value_speed``)."""
    if not value:
        return None
    m = _LEADING_INT.match(value)
    if m is None:
        return None
    n = float(m.group())
    return n * MPH_TO_KMH if ("mph" in value or "mp/h" in value) else n


def parse_maxspeed_kmh(value: str | None) -> float:
    """A ``maxspeed`` value in km/h, 0 when unknown (``WayHandlers.parse_maxspeed``).

    Numbers (``50``, ``30 mph``), ``none`` (140) and zone codes (``DE:urban``, ``FR:rural``).
    """
    if not value:
        return 0.0
    n = parse_speed_kmh(value)
    if n is not None:
        return n
    key = value.lower()
    if key in MAXSPEED_TABLE_KMH:
        return MAXSPEED_TABLE_KMH[key]
    m = re.match(r"[a-z][a-z]:([a-z]+)", key)
    return MAXSPEED_DEFAULTS_KMH.get(m.group(1), 0.0) if m else 0.0


def parse_meters(value: str | None) -> float | None:
    """A length in metres, feet'inches converted (measure.lua ``parse_value_meters``)."""
    if not value:
        return None
    m = _NUMBER.search(value.replace(",", "."))
    if m is None:
        return None
    n = float(m.group())
    if "'" in value:
        inches = re.search(r"'\D*(\d+)", value)
        n = (n * 12 + (float(inches.group(1)) if inches else 0.0)) * 0.0254
    return n


def parse_kilograms(value: str | None) -> float | None:
    """A weight in kg; bare numbers are tonnes (measure.lua ``parse_value_kilograms``)."""
    if not value:
        return None
    m = _NUMBER.search(value.replace(",", "."))
    if m is None:
        return None
    n = float(m.group())
    if "lbs" in value:
        return n * 0.45359237
    return n if "kg" in value else n * 1000


def parse_duration_s(value: str | None) -> float | None:
    """``HH:MM``, ``HH:MM:SS``, ``MM`` or ISO 8601 ``PT1H30M`` → seconds (OSRM ``parseDuration``)."""
    if not value:
        return None
    value = value.strip()
    iso = _ISO_DURATION.match(value)
    if iso and value != "P":
        d, h, mi, s = (float(g) if g else 0.0 for g in iso.groups())
        return ((d * 24 + h) * 60 + mi) * 60 + s
    parts = value.split(":")
    if not all(p.isdigit() for p in parts) or len(parts) > 3:
        return None
    nums = [float(p) for p in parts]
    if len(nums) == 1:
        return nums[0] * 60
    return nums[0] * 3600 + nums[1] * 60 + (nums[2] if len(nums) == 3 else 0.0)


def resolve_access(value: str | None, profile: Profile) -> str | None:
    """The most permissive part of a ``;`` list (access.lua ``resolve_access``)."""
    if value is None or ";" not in value:
        return value
    best, best_rank = None, -1
    for part in (p.strip() for p in value.split(";")):
        if part in profile.access_whitelist:
            rank = 3
        elif part in profile.restricted_access:
            rank = 2
        elif part in profile.access_blacklist:
            rank = 1
        else:
            rank = 0
        if rank > best_rank:
            best, best_rank = part, rank
    return best or value


def find_access(tags: Tags, profile: Profile) -> str | None:
    """The first present tag of the access hierarchy (access.lua ``find_access_tag``)."""
    for key in profile.access_tags_hierarchy:
        value = tags.get(key)
        if value is not None:
            return value
    return None


def forward_backward(tags: Tags, keys: tuple[str, ...]) -> tuple[str | None, str | None]:
    """``key:forward`` / ``key:backward`` / ``key`` over a key sequence.

    tags.lua ``get_forward_backward_by_set``.
    """
    forward: str | None = None
    backward: str | None = None
    for key in keys:
        forward = forward or tags.get(key + ":forward")
        backward = backward or tags.get(key + ":backward")
        if forward is None or backward is None:
            common = tags.get(key)
            forward = forward or common
            backward = backward or common
        if forward is not None and backward is not None:
            break
    return forward, backward


def way_name(tags: Tags) -> str:
    """``name``, or a sidewalk/sidepath's street name (``WayHandlers.names``)."""
    name = tags.get("name")
    if name is not None:
        return name
    side = tags.get("is_sidepath:of:name") or tags.get("street:name")
    is_sidepath = (
        tags.get("footway") == "sidewalk"
        or tags.get("cycleway") == "sidepath"
        or tags.get("is_sidepath") == "yes"
    )
    if side and is_sidepath and tags.get("highway") in ("footway", "cycleway", "path"):
        return side
    return ""


def is_blocked_way(tags: Tags, profile: Profile) -> bool:
    """``WayHandlers.blocked_ways`` + ``avoid_ways``: areas, construction, proposed, impassable, ..."""
    avoid = profile.avoid
    highway = tags.get("highway")
    if highway is not None and highway in avoid:
        return True
    if "area" in avoid and tags.get("area") == "yes":
        return True
    if "construction" in avoid:
        if highway == "construction" or tags.get("railway") == "construction":
            return True
        construction = tags.get("construction")
        if construction is not None and construction not in CONSTRUCTION_WHITELIST:
            return True
    if "motorroad" in avoid and tags.get("motorroad") == "yes":
        return True
    if "proposed" in avoid and "proposed" in tags and (not highway or highway == "proposed"):
        return True
    if "reversible" in avoid and tags.get("oneway") == "reversible":
        return True
    return "impassable" in avoid and (tags.get("impassable") == "yes" or tags.get("status") == "impassable")


def _speed_or_none(allowed: bool, speed_kmh: float) -> float | None:
    return float(speed_kmh) if allowed and speed_kmh > 0 else None


# --------------------------------------------------------------------------------------------
# Car (car.lua process_way)
# --------------------------------------------------------------------------------------------


def _car_access(tags: Tags, highway: str | None) -> tuple[str | None, str | None, bool, bool]:
    """Forward/backward access values and whether each direction is open (``WayHandlers.access``)."""
    fwd_access, bwd_access = forward_backward(tags, CAR.access_tags_hierarchy)
    fwd_access, bwd_access = resolve_access(fwd_access, CAR), resolve_access(bwd_access, CAR)
    restricted_ok = highway in CAR_RESTRICTED_HIGHWAYS

    def open_(access: str | None) -> bool:
        if access is None or access not in CAR.access_blacklist:
            return True
        return restricted_ok and access in CAR.restricted_access

    return fwd_access, bwd_access, open_(fwd_access), open_(bwd_access)


def _car_size_blocks(tags: Tags) -> tuple[bool, bool]:
    """Directions closed by maxheight/maxwidth/maxlength/maxweight (``handle_height`` etc.)."""
    closed = [False, False]
    checks: list[tuple[tuple[str, ...], Callable[[str | None], float | None], float, bool]] = [
        (("maxheight:physical", "maxheight"), parse_meters, CAR_VEHICLE_HEIGHT_M, False),
        (("maxwidth:physical", "maxwidth", "width", "est_width"), parse_meters, CAR_VEHICLE_WIDTH_M, True),
        (("maxlength",), parse_meters, CAR_VEHICLE_LENGTH_M, False),
        (("maxweightrating", "maxweight"), parse_kilograms, CAR_VEHICLE_WEIGHT_KG, False),
    ]
    for keys, parse, limit, inclusive in checks:
        for i, raw in enumerate(forward_backward(tags, keys)):
            if raw in NON_NUMERIC_SIZES:
                continue
            value = parse(raw)
            if value is not None and (value <= limit if inclusive else value < limit):
                closed[i] = True
    return closed[0], closed[1]


def oneway_direction(tags: Tags, profile: Profile, implied: bool) -> tuple[bool, bool]:
    """(forward open, backward open) from ``oneway:<mode>`` / ``oneway`` (``WayHandlers.oneway``).

    ``implied`` is true for ways that are oneway without a tag (motorway, roundabout) unless
    ``oneway=no``. Foot uses only ``oneway:foot`` (``oneway_handling = 'specific'``).
    """
    oneway = None
    for mode in profile.restriction_modes:
        oneway = oneway or tags.get("oneway:" + mode)
    if oneway is None and profile.name != "foot":
        oneway = tags.get("oneway")
    if oneway == "-1":
        return False, True
    if oneway in TRUE_VALUES:
        return True, False
    if implied and oneway != "no":
        return True, False
    return True, True


def _car_base_speeds(
    highway: str | None, access: tuple[str | None, str | None], fwd_ok: bool, bwd_ok: bool
) -> tuple[float, float, bool, bool]:
    """``WayHandlers.speed``: the highway class speed, else the default speed if access allows it."""
    fwd_access, bwd_access = access
    if highway is not None and highway in CAR_SPEEDS_KMH:
        speed = CAR_SPEEDS_KMH[highway]
        return speed, speed, fwd_ok, bwd_ok
    fwd_speed = bwd_speed = -1.0
    if fwd_access is not None and fwd_access not in CAR.access_blacklist:
        fwd_speed = CAR_DEFAULT_SPEED_KMH
    elif fwd_access is None and bwd_access is not None:
        fwd_ok = False
    if bwd_access is not None and bwd_access not in CAR.access_blacklist:
        bwd_speed = CAR_DEFAULT_SPEED_KMH
    elif bwd_access is None and fwd_access is not None:
        bwd_ok = False
    return fwd_speed, bwd_speed, fwd_ok, bwd_ok


def _car_speed_caps(tags: Tags, fwd_kmh: float, bwd_kmh: float) -> tuple[float, float]:
    """``WayHandlers.maxspeed`` (maxspeed × 0.8 replaces the class speed) then ``surface`` caps."""
    keys = ("maxspeed:advisory", "maxspeed", "source:maxspeed", "maxspeed:type")
    fwd_raw, bwd_raw = forward_backward(tags, keys)
    fwd_max, bwd_max = parse_maxspeed_kmh(fwd_raw), parse_maxspeed_kmh(bwd_raw)
    if fwd_max > 0:
        fwd_kmh = fwd_max * CAR_SPEED_REDUCTION
    if bwd_max > 0:
        bwd_kmh = bwd_max * CAR_SPEED_REDUCTION
    for key, table in (
        ("surface", CAR_SURFACE_SPEEDS_KMH),
        ("tracktype", CAR_TRACKTYPE_SPEEDS_KMH),
        ("smoothness", CAR_SMOOTHNESS_SPEEDS_KMH),
    ):
        cap = table.get(tags.get(key, ""))
        if cap is not None:
            fwd_kmh, bwd_kmh = min(cap, fwd_kmh), min(cap, bwd_kmh)
    return fwd_kmh, bwd_kmh


def _special_speed(
    tags: Tags, routes: Mapping[str, float], bridges: Mapping[str, float]
) -> tuple[float, float | None] | None:
    """Ferry / movable bridge speed and optional ``duration`` (``WayHandlers.ferries``/``movables``)."""
    route = tags.get("route")
    if route is not None and routes.get(route, 0) > 0:
        return routes[route], parse_duration_s(tags.get("duration"))
    bridge = tags.get("bridge")
    if bridge is not None and bridges.get(bridge, 0) > 0 and tags.get("capacity:car") != "0":
        return bridges[bridge], parse_duration_s(tags.get("duration"))
    return None


def car_way(tags: Tags) -> WayAttributes | None:
    """car.lua ``process_way``; ``None`` when the way is closed to cars both ways."""
    highway = tags.get("highway")
    if not highway and not tags.get("route"):
        return None
    if is_blocked_way(tags, CAR):
        return None
    size_fwd_closed, size_bwd_closed = _car_size_blocks(tags)
    fwd_access, bwd_access, fwd_ok, bwd_ok = _car_access(tags, highway)
    fwd_ok, bwd_ok = fwd_ok and not size_fwd_closed, bwd_ok and not size_bwd_closed
    if not fwd_ok and not bwd_ok:
        return None
    junction = tags.get("junction")
    implied = highway == "motorway" or junction in ("roundabout", "circular")
    one_fwd, one_bwd = oneway_direction(tags, CAR, implied)
    fwd_ok, bwd_ok = fwd_ok and one_fwd, bwd_ok and one_bwd
    if tags.get("service") == "emergency_access":
        return None
    duration_s: float | None = None
    special = _special_speed(tags, CAR_ROUTE_SPEEDS_KMH, CAR_BRIDGE_SPEEDS_KMH)
    if special is not None:
        fwd_kmh = bwd_kmh = special[0]
        duration_s = special[1]
    else:
        fwd_kmh, bwd_kmh, fwd_ok, bwd_ok = _car_base_speeds(highway, (fwd_access, bwd_access), fwd_ok, bwd_ok)
        if fwd_kmh < 0 and bwd_kmh < 0:
            return None
    fwd_kmh, bwd_kmh = _car_speed_caps(tags, fwd_kmh, bwd_kmh)
    return _attributes(_speed_or_none(fwd_ok, fwd_kmh), _speed_or_none(bwd_ok, bwd_kmh), tags, duration_s)


def _attributes(
    fwd: float | None, bwd: float | None, tags: Tags, duration_s: float | None
) -> WayAttributes | None:
    if fwd is None and bwd is None:
        return None
    if duration_s is not None:
        duration_s = max(duration_s, 1.0)
    return WayAttributes(fwd, bwd, way_name(tags), duration_s)


# --------------------------------------------------------------------------------------------
# Bicycle (bicycle.lua handle_bicycle_tags and its handlers)
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _BikeState:
    fwd_kmh: float = -1.0
    bwd_kmh: float = -1.0
    fwd_ok: bool = True
    bwd_ok: bool = True
    pushing_allowed: bool = False
    implied_oneway: bool = False
    reverse: bool = False
    duration_s: float | None = None


def _bike_base_speed(tags: Tags, access: str | None, st: _BikeState) -> None:
    """bicycle.lua ``speed_handler``."""
    highway, railway = tags.get("highway"), tags.get("railway")
    amenity, bridge = tags.get("amenity"), tags.get("bridge")
    speed: float | None = None
    if bridge is not None and CAR_BRIDGE_SPEEDS_KMH.get(bridge, 0) > 0:
        speed, st.pushing_allowed = CAR_BRIDGE_SPEEDS_KMH[bridge], True
        st.duration_s = parse_duration_s(tags.get("duration"))
    elif tags.get("route") == "ferry":
        speed, st.duration_s = FERRY_SPEED_KMH, parse_duration_s(tags.get("duration"))
    elif railway == "platform" or tags.get("public_transport") == "platform":
        speed, st.pushing_allowed = BIKE_WALKING_SPEED_KMH, True
    elif railway is not None and railway in BIKE_RAILWAY_SPEEDS_KMH and access in BIKE.access_whitelist:
        speed = BIKE_RAILWAY_SPEEDS_KMH[railway]
    elif amenity is not None and amenity in BIKE_AMENITY_SPEEDS_KMH:
        speed, st.pushing_allowed = BIKE_AMENITY_SPEEDS_KMH[amenity], True
    elif highway is not None and highway in BIKE_SPEEDS_KMH:
        speed, st.pushing_allowed = BIKE_SPEEDS_KMH[highway], True
    elif access is not None and access in BIKE.access_whitelist:
        speed, st.pushing_allowed = BIKE_DEFAULT_SPEED_KMH, True
    if speed is not None:
        st.fwd_kmh = st.bwd_kmh = speed


def _bike_oneway(tags: Tags, st: _BikeState) -> None:
    """bicycle.lua ``oneway_handler``: ``oneway:bicycle`` first, then ``oneway``, then implied."""
    highway, junction = tags.get("highway"), tags.get("junction")
    st.implied_oneway = junction in ("roundabout", "circular") or highway == "motorway"
    for key in ("oneway:bicycle", "oneway"):
        value = tags.get(key)
        if value in TRUE_VALUES:
            st.bwd_ok = False
            return
        if value in FALSE_VALUES:
            return
        if value == "-1":
            st.fwd_ok, st.reverse = False, True
            return
    if st.implied_oneway:
        st.bwd_ok = False


def _bike_cycleway(tags: Tags, st: _BikeState) -> tuple[bool, bool]:
    """bicycle.lua ``cycleway_handler``: (has forward cycleway, has backward cycleway)."""
    both = tags.get("cycleway") or tags.get("cycleway:both")
    left, right = tags.get("cycleway:left"), tags.get("cycleway:right")
    lane, opposite = BIKE_CYCLEWAY_TAGS, BIKE_OPPOSITE_CYCLEWAY_TAGS
    fwd = bwd = False
    if st.fwd_ok and st.bwd_ok and not st.implied_oneway:
        if both in lane:
            fwd = bwd = True
        fwd = fwd or right in lane or left in opposite
        bwd = bwd or left in lane or right in opposite
        return fwd, bwd
    if both in opposite or right in opposite or left in opposite:
        if both in opposite:
            return True, True
        return (True, False) if st.reverse else (False, True)
    if both in lane or right in lane or left in lane:
        return (False, True) if st.reverse else (True, False)
    return False, False


def _bike_push(tags: Tags, st: _BikeState) -> None:
    """bicycle.lua ``bike_push_handler``: walk the bike where riding is not allowed."""
    highway, foot = tags.get("highway"), tags.get("foot")
    closed = not st.fwd_ok or not st.bwd_ok or st.fwd_kmh == -1 or st.bwd_kmh == -1
    if closed and foot != "no":
        push_fwd: float | None = None
        push_bwd: float | None = None
        walking = BIKE_WALKING_SPEED_KMH
        if highway is not None and highway in BIKE_PEDESTRIAN_SPEEDS_KMH:
            push_fwd = push_bwd = BIKE_PEDESTRIAN_SPEEDS_KMH[highway]
        elif tags.get("man_made") == "pier":
            push_fwd = push_bwd = walking
        elif foot == "yes":
            push_fwd = walking
            push_bwd = None if st.implied_oneway else walking
        elif tags.get("foot:forward") == "yes":
            push_fwd = walking
        elif tags.get("foot:backward") == "yes":
            push_bwd = walking
        elif st.pushing_allowed:
            push_fwd = walking
            push_bwd = None if st.implied_oneway else walking
        if push_fwd is not None and (not st.fwd_ok or st.fwd_kmh == -1):
            st.fwd_ok, st.fwd_kmh = True, push_fwd
        if push_bwd is not None and (not st.bwd_ok or st.bwd_kmh == -1):
            st.bwd_ok, st.bwd_kmh = True, push_bwd
    if tags.get("bicycle") == "dismount":
        st.fwd_ok = st.bwd_ok = True
        st.fwd_kmh = st.bwd_kmh = BIKE_WALKING_SPEED_KMH


def _bike_cycleway_separate(tags: Tags) -> bool:
    """bicycle.lua ``handle_cycleway_separate``: the road has a separately mapped cycleway."""
    keys = ("cycleway", "cycleway:both", "cycleway:left", "cycleway:right")
    if not any(tags.get(k) == "separate" for k in keys):
        return False
    return tags.get("bicycle") not in ("yes", "permissive", "designated", "destination")


def bike_way(tags: Tags) -> WayAttributes | None:
    """bicycle.lua ``process_way``; ``None`` when the way is closed to bikes both ways."""
    if not any(tags.get(k) for k in BIKE.way_keys) or is_blocked_way(tags, BIKE):
        return None
    access = find_access(tags, BIKE)
    fwd_access, bwd_access = forward_backward(tags, BIKE.access_tags_hierarchy)
    fwd_access, bwd_access = resolve_access(fwd_access, BIKE), resolve_access(bwd_access, BIKE)
    black = BIKE.access_blacklist
    if access in black or (fwd_access in black and bwd_access in black):
        return None
    st = _BikeState()
    _bike_base_speed(tags, access, st)
    _bike_oneway(tags, st)
    has_fwd, has_bwd = _bike_cycleway(tags, st)
    if has_fwd:
        st.fwd_ok, st.fwd_kmh = True, BIKE_SPEEDS_KMH["cycleway"]
    if has_bwd:
        st.bwd_ok, st.bwd_kmh = True, BIKE_SPEEDS_KMH["cycleway"]
    _bike_push(tags, st)
    _bike_limit(tags, st)
    if fwd_access in black:
        st.fwd_ok = False
    if bwd_access in black:
        st.bwd_ok = False
    if _bike_cycleway_separate(tags):
        return None
    cap = BIKE_SURFACE_SPEEDS_KMH.get(tags.get("surface", ""), BIKE_MAX_SPEED_KMH)
    fwd = _speed_or_none(st.fwd_ok, min(st.fwd_kmh, cap, BIKE_MAX_SPEED_KMH))
    bwd = _speed_or_none(st.bwd_ok, min(st.bwd_kmh, cap, BIKE_MAX_SPEED_KMH))
    return _attributes(fwd, bwd, tags, st.duration_s)


def _bike_limit(tags: Tags, st: _BikeState) -> None:
    """maxspeed.lua ``limit``: cap by ``maxspeed[:forward|:backward]`` (no reduction for bikes)."""
    both = parse_speed_kmh(tags.get("maxspeed")) or 0.0
    fwd = parse_speed_kmh(tags.get("maxspeed:forward")) or 0.0
    bwd = parse_speed_kmh(tags.get("maxspeed:backward")) or 0.0
    fwd_cap, bwd_cap = fwd if fwd > 0 else both, bwd if bwd > 0 else both
    if fwd_cap > 0:
        st.fwd_kmh = min(st.fwd_kmh, fwd_cap)
    if bwd_cap > 0:
        st.bwd_kmh = min(st.bwd_kmh, bwd_cap)


# --------------------------------------------------------------------------------------------
# Foot (foot.lua process_way)
# --------------------------------------------------------------------------------------------


def _foot_table_speed(tags: Tags) -> float | None:
    """foot.lua ``speeds``: highway / railway / amenity / man_made classes walkable at 5 km/h."""
    if tags.get("highway") in FOOT_HIGHWAYS or tags.get("railway") == "platform":
        return FOOT_WALKING_SPEED_KMH
    if tags.get("amenity") in ("parking", "parking_entrance") or tags.get("man_made") == "pier":
        return FOOT_WALKING_SPEED_KMH
    return None


def _foot_sidewalk_separate(tags: Tags, fwd_access: str | None, bwd_access: str | None) -> tuple[bool, bool]:
    """foot.lua ``handle_sidewalk_separate``: a road with separate sidewalks needs explicit access."""
    keys = ("sidewalk", "sidewalk:both", "sidewalk:left", "sidewalk:right")
    if not any(tags.get(k) == "separate" for k in keys):
        return True, True
    black = FOOT.access_blacklist
    return (
        fwd_access is not None and fwd_access not in black,
        bwd_access is not None and bwd_access not in black,
    )


def foot_way(tags: Tags) -> WayAttributes | None:
    """foot.lua ``process_way``; ``None`` when the way is closed to pedestrians both ways."""
    if not any(tags.get(k) for k in FOOT.way_keys) or is_blocked_way(tags, FOOT):
        return None
    fwd_access, bwd_access = forward_backward(tags, FOOT.access_tags_hierarchy)
    fwd_access, bwd_access = resolve_access(fwd_access, FOOT), resolve_access(bwd_access, FOOT)
    black = FOOT.access_blacklist
    fwd_ok, bwd_ok = fwd_access not in black, bwd_access not in black
    side_fwd, side_bwd = _foot_sidewalk_separate(tags, fwd_access, bwd_access)
    fwd_ok, bwd_ok = fwd_ok and side_fwd, bwd_ok and side_bwd
    one_fwd, one_bwd = oneway_direction(tags, FOOT, implied=False)
    fwd_ok, bwd_ok = fwd_ok and one_fwd, bwd_ok and one_bwd
    if not fwd_ok and not bwd_ok:
        return None
    duration_s: float | None = None
    fwd_kmh = bwd_kmh = -1.0
    if tags.get("route") == "ferry":
        fwd_kmh = bwd_kmh = FERRY_SPEED_KMH
        duration_s = parse_duration_s(tags.get("duration"))
    elif (speed := _foot_table_speed(tags)) is not None:
        fwd_kmh = bwd_kmh = speed
    else:
        if fwd_access is not None and fwd_access not in black:
            fwd_kmh = FOOT_WALKING_SPEED_KMH
        elif fwd_access is None and bwd_access is not None:
            fwd_ok = False
        if bwd_access is not None and bwd_access not in black:
            bwd_kmh = FOOT_WALKING_SPEED_KMH
        elif bwd_access is None and fwd_access is not None:
            bwd_ok = False
    cap = FOOT_SURFACE_SPEEDS_KMH.get(tags.get("surface", ""))
    if cap is not None:
        fwd_kmh, bwd_kmh = min(cap, fwd_kmh), min(cap, bwd_kmh)
    fwd_ok, bwd_ok = _foot_conveying(tags, fwd_ok, bwd_ok)
    return _attributes(_speed_or_none(fwd_ok, fwd_kmh), _speed_or_none(bwd_ok, bwd_kmh), tags, duration_s)


def _foot_conveying(tags: Tags, fwd_ok: bool, bwd_ok: bool) -> tuple[bool, bool]:
    """``WayHandlers.conveying``: escalators / moving walkways running one way."""
    conveying = tags.get("conveying")
    moving = conveying in ("forward", "backward") and tags.get("highway") in ("steps", "footway")
    if moving and tags.get("oneway") != "no":
        return (fwd_ok, False) if conveying == "forward" else (False, bwd_ok)
    return fwd_ok, bwd_ok


_WAY_FUNCTIONS: dict[str, Callable[[Tags], WayAttributes | None]] = {
    "car": car_way, "bike": bike_way, "foot": foot_way,
}  # fmt: skip


def way_attributes(profile: Profile, tags: Tags) -> WayAttributes | None:
    """The profile's view of a way: per-direction speeds (``None`` = closed) and name.

    ``None`` when the way is not routable for the profile at all.
    """
    return _WAY_FUNCTIONS[profile.name](tags)


def way_function(profile: Profile) -> Callable[[Tags], WayAttributes | None]:
    """The bare per-profile way function (avoids one dispatch per way in the reader)."""
    return _WAY_FUNCTIONS[profile.name]


# --------------------------------------------------------------------------------------------
# Barrier nodes (process_node of each profile)
# --------------------------------------------------------------------------------------------


def barrier_blocks(profile: Profile, tags: Tags) -> bool:
    """Whether a node blocks the profile (OSRM ``process_node`` → ``barrier``).

    An access tag on the node decides alone (blacklisted → blocks). Otherwise car blocks any
    ``barrier`` outside its whitelist (gates pass; rising bollards, flat kerbs and audible
    fences pass; a ``height_restrictor`` below 2 m blocks), bike/foot block ``yes``/``wall``/``fence``.
    """
    access = find_access(tags, profile)
    if profile.name == "car":
        access = resolve_access(access, profile)
    if access:
        if profile.name == "bike" and tags.get("highway") == "crossing":
            return False
        if profile.name == "car" and access in profile.restricted_access:
            return False
        return access in profile.access_blacklist
    barrier = tags.get("barrier")
    if not barrier:
        return False
    if barrier == "fence" and tags.get("sensory") in ("audible", "audio"):
        return False
    if profile.name != "car":
        rising = profile.name == "foot" and tags.get("bollard") == "rising"
        return barrier in profile.barrier_blacklist and not rising
    if barrier == "height_restrictor":
        height_m = parse_meters(tags.get("maxheight"))
        return height_m is not None and height_m < CAR_VEHICLE_HEIGHT_M
    if tags.get("bollard") == "rising" or tags.get("kerb") in ("lowered", "flush"):
        return False
    if barrier == "kerb" and tags.get("highway") == "crossing":
        return False
    return barrier not in profile.barrier_whitelist
