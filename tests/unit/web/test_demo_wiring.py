"""The demo's wiring helpers: map names, shipped trip data, and the dashboard's narrow token."""

from __future__ import annotations

from pathlib import Path

import pytest

from hexcity.demo import MAPS, DemoError, DemoTokens, resolve_map, trip_samples_path
from hexcity.infra.auth import AuthSettings, TokenService


def test_named_maps_resolve_to_the_shipped_extracts(tmp_path: Path) -> None:
    assert resolve_map("andorra").name == MAPS["andorra"]
    pbf = tmp_path / "city.osm.pbf"
    pbf.write_bytes(b"x")
    assert resolve_map(str(pbf)) == pbf
    with pytest.raises(DemoError, match=r"nowhere\.osm\.pbf not found"):
        resolve_map(str(tmp_path / "nowhere.osm.pbf"))
    with pytest.raises(DemoError, match="not found"):
        resolve_map("heidelberg", data_dir=tmp_path)


def test_the_trip_sample_ships_with_the_package() -> None:
    assert trip_samples_path().is_file()


def test_dashboard_token_is_read_only_and_others_are_cached() -> None:
    auth = AuthSettings(demo_mode=True, jwt_max_ttl_s=86_400)
    tokens = DemoTokens(auth)
    verifier = TokenService.from_settings(auth)
    dashboard = verifier.verify(tokens.dashboard())
    assert (dashboard.subject, str(dashboard.role)) == ("dashboard", "admin")
    assert set(dashboard.scopes) == {"routing:read", "trips:read", "fulfillment:read"}  # read-only scopes
    assert tokens("rider", "r1") == tokens("rider", "r1")
    assert verifier.verify(tokens("driver", "d1")).subject == "d1"
