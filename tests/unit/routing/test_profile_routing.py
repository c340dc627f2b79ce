"""Profile rules seen through the whole pipeline: build a hand-made map, then route on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from hexcity.kernel import LatLng, haversine_m
from hexcity.routing import RoutingEngine, build_graph

MAPS = Path(__file__).resolve().parents[2] / "data" / "osm"


def engine(tmp_path: Path, osm: str, profile: str) -> RoutingEngine:
    return RoutingEngine.open(build_graph(MAPS / osm, profile, tmp_path / f"{osm}-{profile}").path)


def test_oneway_street_is_driven_one_way_only(tmp_path: Path) -> None:
    car = engine(tmp_path, "oneway_access.osm", "car")
    west_end, east_end = LatLng(49.4100, 8.6901), LatLng(49.4100, 8.6919)  # on w10, oneway 1 -> 2
    along = car.route([west_end, east_end])
    against = car.route([east_end, west_end])
    straight_m = haversine_m(west_end, east_end)  # 130.23 m
    assert along.distance_m == pytest.approx(straight_m, abs=0.02)
    assert against.distance_m > 3 * along.distance_m  # around the block: 2-3-4-1
    foot = engine(tmp_path, "oneway_access.osm", "foot")
    assert foot.route([east_end, west_end]).distance_m == pytest.approx(
        straight_m, abs=0.02
    )  # walkers ignore oneway


def test_access_no_and_footway_are_not_for_cars(tmp_path: Path) -> None:
    car = engine(tmp_path, "oneway_access.osm", "car")
    foot = engine(tmp_path, "oneway_access.osm", "foot")
    on_footway = LatLng(49.4125, 8.6925)  # w16 3-6 footway
    assert foot.snap(on_footway, radius_m=5).distance_m < 1
    assert car.snap(on_footway, radius_m=200).distance_m > 40  # snapped to a road, not the footway
    on_access_no = LatLng(49.4095, 8.6925)  # w15 2-5 access=no
    assert car.snap(on_access_no, radius_m=200).distance_m > 40


def test_turn_restriction_forces_a_detour_for_cars_only(tmp_path: Path) -> None:
    south, west = LatLng(49.4095, 8.6900), LatLng(49.4100, 8.68925)  # on the south and west arms
    car = engine(tmp_path, "restrictions.osm", "car")
    foot = engine(tmp_path, "restrictions.osm", "foot")
    walked = foot.route([south, west])
    driven = car.route([south, west])
    # on foot: straight through the crossing, ~55.6 m + ~54.3 m
    assert walked.distance_m == pytest.approx(110.0, abs=1.5)
    # by car the left turn S -> W at the crossing is forbidden (r900): back to node 2, the ring
    # road w107 to node 5, then east along the west arm
    node2, node5 = LatLng(49.4090, 8.6900), LatLng(49.4100, 8.6885)
    detour_m = haversine_m(south, node2) + haversine_m(node2, node5) + haversine_m(node5, west)
    assert driven.distance_m == pytest.approx(detour_m, abs=0.05)
    assert [49.4100, 8.6900] not in driven.geometry.round(7).tolist()  # never through the crossing
