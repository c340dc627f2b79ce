"""Keys, heading sectors and the XFetch rule of the table semantic cache."""

from __future__ import annotations

import math

import h3
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hexcity.kernel import HexcityError, LatLng
from hexcity.routing.domain.cache_keys import (
    CachedCell,
    cell_key,
    cells_near,
    heading_sector,
    point_cell,
    xfetch_should_refresh,
)
from hexcity.routing.errors import InvalidValue

HEIDELBERG = LatLng(49.4094, 8.6940)
MANNHEIM = LatLng(49.4875, 8.4660)
A = h3.latlng_to_cell(HEIDELBERG.lat, HEIDELBERG.lng, 9)
B = h3.latlng_to_cell(MANNHEIM.lat, MANNHEIM.lng, 9)


@pytest.mark.parametrize(
    ("bearing_deg", "sector"),
    [
        (0.0, "0"),
        (22.4, "0"),
        (22.5, "1"),
        (359.9, "0"),
        (-10.0, "0"),
        (None, "-"),
        (90.0, "2"),
        (180.0, "4"),
        (337.4, "7"),
        (337.5, "0"),
        (720.0 + 45.0, "1"),
    ],
)
def test_heading_sector_exact_values(bearing_deg: float | None, sector: str) -> None:
    assert heading_sector(bearing_deg) == sector


@pytest.mark.parametrize("bearing_deg", [math.nan, math.inf, -math.inf])
def test_heading_sector_rejects_non_finite(bearing_deg: float) -> None:
    with pytest.raises(InvalidValue):
        heading_sector(bearing_deg)


@given(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False))
def test_heading_sector_is_one_digit(bearing_deg: float) -> None:
    assert heading_sector(bearing_deg) in {"0", "1", "2", "3", "4", "5", "6", "7"}


@given(st.integers(min_value=-100_000, max_value=100_000))
def test_heading_sector_is_periodic(bearing_deg: int) -> None:
    assert (
        heading_sector(bearing_deg + 360) == heading_sector(bearing_deg) == heading_sector(bearing_deg % 360)
    )


def test_cell_key_layout() -> None:
    assert cell_key("2024-05-01-ab12", "car", A, B, "3") == f"rt:2024-05-01-ab12:car:{A}:{B}:3"


def test_cell_key_is_directed() -> None:
    assert cell_key("v1", "car", A, B, "-") != cell_key("v1", "car", B, A, "-")


def test_cell_key_carries_graph_version_profile_and_sector() -> None:
    base = cell_key("v1", "car", A, B, "-")
    assert cell_key("v2", "car", A, B, "-") != base
    assert cell_key("v1", "truck", A, B, "-") != base
    assert cell_key("v1", "car", A, B, "0") != base
    assert ":v1:" in base


@pytest.mark.parametrize(
    ("graph_version", "profile", "origin", "dest", "sector"),
    [
        ("", "car", A, B, "-"),
        ("v:1", "car", A, B, "-"),
        ("v1", "c:ar", A, B, "-"),
        ("v1", "car", "not-a-cell", B, "-"),
        ("v1", "car", A, B, "8"),
        ("v1", "car", A, B, ""),
    ],
)
def test_cell_key_rejects_bad_parts(
    graph_version: str, profile: str, origin: str, dest: str, sector: str
) -> None:
    with pytest.raises(InvalidValue) as info:
        cell_key(graph_version, profile, origin, dest, sector)
    assert isinstance(info.value, HexcityError)


def test_point_cell_matches_h3_and_validates() -> None:
    assert point_cell(HEIDELBERG, 9) == A
    for bad in (LatLng(91.0, 0.0), LatLng(0.0, 181.0), LatLng(math.nan, 0.0)):
        with pytest.raises(InvalidValue):
            point_cell(bad, 9)
    with pytest.raises(InvalidValue):
        point_cell(HEIDELBERG, 16)


def test_cells_near() -> None:
    neighbour = next(c for c in h3.grid_disk(A, 1) if c != A)
    two_away = next(c for c in h3.grid_ring(A, 2))
    assert cells_near(A, A)
    assert cells_near(A, neighbour)
    assert not cells_near(A, two_away)
    assert not cells_near(A, B)
    sydney = h3.latlng_to_cell(-33.87, 151.21, 9)
    assert not cells_near(A, sydney)  # h3 cannot measure: treated as far


def test_xfetch_rule() -> None:
    # -δ·β·ln(u) >= remaining
    assert xfetch_should_refresh(1.0, 1.0, 27.0, 1e-12)  # 27.63 >= 27
    assert not xfetch_should_refresh(1.0, 1.0, 28.0, 1e-12)
    assert not xfetch_should_refresh(1.0, 1.0, 0.001, 1.0)  # u = 1 never refreshes a live entry
    assert xfetch_should_refresh(1.0, 1.0, 0.0, 1.0)  # expired: always
    assert xfetch_should_refresh(2.0, 1.0, 1.0, math.exp(-0.5))  # exactly at the boundary: 1.0 >= 1.0
    assert not xfetch_should_refresh(0.0, 1.0, 1.0, 1e-300)
    assert xfetch_should_refresh(1.0, 2.0, 50.0, 1e-12)  # larger beta refreshes earlier


@pytest.mark.parametrize(
    ("delta_s", "beta", "u"), [(1.0, 1.0, 0.0), (1.0, 1.0, 1.5), (-1.0, 1.0, 0.5), (1.0, -1.0, 0.5)]
)
def test_xfetch_rejects_bad_arguments(delta_s: float, beta: float, u: float) -> None:
    with pytest.raises(InvalidValue):
        xfetch_should_refresh(delta_s, beta, 10.0, u)


def test_cached_cell_remaining_ttl_and_no_route() -> None:
    cell = CachedCell(duration_s=None, distance_m=None, compute_s=0.5, cached_at_s=100.0, ttl_s=120.0)
    assert cell.no_route
    assert cell.remaining_ttl_s(150.0) == 70.0
    assert not CachedCell(10.0, 100.0, 0.5, 100.0, 120.0).no_route
