"""Tag → routing attribute rules of the car/bike/foot profiles (after OSRM's Lua profiles)."""

from __future__ import annotations

import pytest

from hexcity.routing.domain.profiles import (
    BIKE,
    CAR,
    FOOT,
    PROFILES,
    WayAttributes,
    barrier_blocks,
    canonical_profile_name,
    get_profile,
    parse_duration_s,
    parse_maxspeed_kmh,
    way_attributes,
)
from hexcity.routing.errors import UnknownProfile


def car(**tags: str) -> WayAttributes | None:
    return way_attributes(CAR, tags)


def bike(**tags: str) -> WayAttributes | None:
    return way_attributes(BIKE, tags)


def foot(**tags: str) -> WayAttributes | None:
    return way_attributes(FOOT, tags)


def speeds(attrs: WayAttributes | None) -> tuple[float | None, float | None] | None:
    return None if attrs is None else (attrs.forward_speed_kmh, attrs.backward_speed_kmh)


def test_profile_names_and_aliases() -> None:
    assert set(PROFILES) == {"car", "bike", "foot"}
    assert canonical_profile_name("driving") == "car"
    assert canonical_profile_name("cycling") == "bike"
    assert canonical_profile_name("walking") == "foot"
    assert get_profile("Car") is CAR
    with pytest.raises(UnknownProfile):
        get_profile("hovercraft")


def test_car_highway_class_speeds_both_ways() -> None:
    assert speeds(car(highway="residential")) == (25.0, 25.0)
    assert speeds(car(highway="primary")) == (65.0, 65.0)
    assert speeds(car(highway="service")) == (15.0, 15.0)


def test_oneway_yes_and_minus_one() -> None:
    assert speeds(car(highway="residential", oneway="yes")) == (25.0, None)
    assert speeds(car(highway="residential", oneway="true")) == (25.0, None)
    assert speeds(car(highway="residential", oneway="-1")) == (None, 25.0)
    assert speeds(car(highway="residential", oneway="no")) == (25.0, 25.0)


def test_implied_oneway_roundabout_and_motorway() -> None:
    assert speeds(car(highway="tertiary", junction="roundabout")) == (40.0, None)
    assert speeds(car(highway="tertiary", junction="circular")) == (40.0, None)
    assert speeds(car(highway="motorway")) == (90.0, None)
    assert speeds(car(highway="motorway", oneway="no")) == (90.0, 90.0)
    assert speeds(car(highway="trunk")) == (85.0, 85.0)


def test_reversible_is_not_routable() -> None:
    assert car(highway="primary", oneway="reversible") is None


def test_maxspeed_parsing() -> None:
    assert parse_maxspeed_kmh("50") == 50.0
    assert parse_maxspeed_kmh("30 mph") == pytest.approx(30 * 1.609)
    assert parse_maxspeed_kmh("none") == 140.0
    assert parse_maxspeed_kmh("DE:urban") == 50.0
    assert parse_maxspeed_kmh("DE:rural") == 100.0
    assert parse_maxspeed_kmh("FR:motorway") == 130.0
    assert parse_maxspeed_kmh("signals") == 0.0
    assert parse_maxspeed_kmh(None) == 0.0


def test_car_maxspeed_replaces_class_speed_with_reduction() -> None:
    # way_handlers.lua: forward_speed = maxspeed * speed_reduction (0.8)
    assert speeds(car(highway="primary", maxspeed="50")) == (40.0, 40.0)
    assert speeds(car(highway="residential", maxspeed="30 mph")) == pytest.approx((30 * 1.609 * 0.8,) * 2)
    assert speeds(car(highway="motorway", maxspeed="none")) == pytest.approx((140 * 0.8, None))
    assert speeds(car(highway="secondary", maxspeed="DE:urban")) == (40.0, 40.0)
    fwd_bwd = car(highway="primary", **{"maxspeed:forward": "70", "maxspeed:backward": "50"})
    assert speeds(fwd_bwd) == pytest.approx((70 * 0.8, 50 * 0.8))


def test_surface_caps_speed() -> None:
    assert speeds(car(highway="primary", surface="cobblestone")) == (30.0, 30.0)


def test_access_no_and_private_excluded() -> None:
    assert car(highway="residential", access="no") is None
    assert car(highway="residential", access="private") is None
    assert car(highway="residential", motor_vehicle="no") is None
    assert foot(highway="footway", access="no") is None
    assert bike(highway="cycleway", bicycle="no") is None


def test_access_hierarchy_most_specific_wins() -> None:
    assert speeds(car(highway="residential", access="no", motorcar="yes")) == (25.0, 25.0)
    assert car(highway="residential", vehicle="no") is None
    assert speeds(foot(highway="residential", access="no", foot="yes")) == (5.0, 5.0)


def test_footway_not_for_car_but_for_foot() -> None:
    assert car(highway="footway") is None
    assert car(highway="path") is None
    assert speeds(foot(highway="footway")) == (5.0, 5.0)
    assert speeds(foot(highway="steps")) == (5.0, 5.0)


def test_bike_on_cycleway_and_pushing_on_footway() -> None:
    assert speeds(bike(highway="cycleway")) == (15.0, 15.0)
    assert speeds(bike(highway="track")) == (12.0, 12.0)
    assert speeds(bike(highway="footway")) == (4.0, 4.0)  # pushing at walking speed
    assert bike(highway="footway", foot="no") is None


def test_bike_contraflow() -> None:
    # oneway street: riding forwards, pushing backwards (OSRM bike_push_handler) ...
    assert speeds(bike(highway="residential", oneway="yes")) == (15.0, 4.0)
    # ... unless a contraflow cycleway or oneway:bicycle=no lets bikes ride both ways
    assert speeds(bike(highway="residential", oneway="yes", cycleway="opposite")) == (15.0, 15.0)
    assert speeds(bike(highway="residential", oneway="yes", **{"oneway:bicycle": "no"})) == (15.0, 15.0)


def test_motorway_and_trunk_not_for_foot_or_bike() -> None:
    assert foot(highway="motorway") is None
    assert foot(highway="trunk") is None
    assert bike(highway="motorway") is None
    assert bike(highway="motorway_link") is None


def test_foot_ignores_oneway_but_respects_oneway_foot() -> None:
    assert speeds(foot(highway="residential", oneway="yes")) == (5.0, 5.0)
    assert speeds(foot(highway="footway", **{"oneway:foot": "yes"})) == (5.0, None)


def test_area_construction_proposed_impassable_skipped_for_car() -> None:
    assert car(highway="pedestrian", area="yes", motorcar="yes") is None
    assert car(highway="construction") is None
    assert car(highway="residential", construction="yes") is None
    assert car(highway="residential", construction="minor") is not None
    assert car(highway="proposed", proposed="residential") is None
    assert car(highway="track", impassable="yes", motorcar="yes") is None
    assert car(highway="steps") is None


def test_ferry_speed_and_duration() -> None:
    attrs = car(route="ferry")
    assert speeds(attrs) == (5.0, 5.0)
    timed = car(route="ferry", duration="01:30")
    assert timed is not None and timed.duration_s == 5400.0
    assert parse_duration_s("PT45M") == 2700.0
    assert speeds(foot(route="ferry")) == (5.0, 5.0)
    assert speeds(bike(route="ferry")) == (5.0, 5.0)


def test_names() -> None:
    attrs = car(highway="residential", name="Hauptstraße")
    assert attrs is not None and attrs.name == "Hauptstraße"
    sidewalk = foot(highway="footway", footway="sidewalk", **{"street:name": "Hauptstraße"})
    assert sidewalk is not None and sidewalk.name == "Hauptstraße"


@pytest.mark.parametrize(
    ("barrier", "blocks_car"),
    [
        ("bollard", True),
        ("block", True),
        ("gate", False),
        ("lift_gate", False),
        ("cattle_grid", False),
        ("toll_booth", False),
        ("border_control", False),
        ("sally_port", False),
    ],
)
def test_car_barriers(barrier: str, blocks_car: bool) -> None:
    assert barrier_blocks(CAR, {"barrier": barrier}) is blocks_car


def test_barrier_access_tags_decide() -> None:
    assert barrier_blocks(CAR, {"barrier": "gate", "access": "private"})
    assert barrier_blocks(CAR, {"barrier": "gate", "access": "no"})
    assert not barrier_blocks(CAR, {"barrier": "bollard", "motor_vehicle": "yes"})
    assert not barrier_blocks(CAR, {"barrier": "bollard", "bollard": "rising"})
    assert not barrier_blocks(CAR, {"barrier": "kerb", "kerb": "lowered"})


def test_bike_and_foot_barriers() -> None:
    assert not barrier_blocks(FOOT, {"barrier": "bollard"})
    assert not barrier_blocks(BIKE, {"barrier": "bollard"})
    assert barrier_blocks(FOOT, {"barrier": "wall"})
    assert barrier_blocks(BIKE, {"barrier": "fence"})
    assert barrier_blocks(BIKE, {"barrier": "bollard", "bicycle": "no"})
    assert not barrier_blocks(BIKE, {"highway": "crossing", "bicycle": "no"})


def test_profile_repr_is_stable_across_hash_seeds() -> None:
    import os
    import subprocess
    import sys

    code = "from hexcity.routing.domain.profiles import get_profile; print(repr(get_profile('car')))"
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": seed},
            check=True, capture_output=True, text=True,
        ).stdout
        for seed in ("1", "2")
    }  # fmt: skip
    assert len(outputs) == 1
    assert repr(CAR) == outputs.pop().strip()
