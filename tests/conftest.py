"""Shared fixtures: graphs built once per session from the shipped OSM extracts."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OSM_DIR = ROOT / "data" / "osm"
EXTRACTS = {
    "andorra": OSM_DIR / "andorra-2021-10-28.osm.pbf",
    "heidelberg": OSM_DIR / "heidelberg.osm.pbf",
}
IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="session")
def graph_dir(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], Path]:
    """``graph_dir(extract, profile)`` builds (once per session) and returns an artefact dir."""
    from hexcity.routing import build_graph

    root = tmp_path_factory.mktemp("graphs")
    built: dict[tuple[str, str], Path] = {}

    def get(extract: str, profile: str) -> Path:
        key = (extract, profile)
        if key not in built:
            built[key] = build_graph(EXTRACTS[extract], profile, root / f"{extract}-{profile}").path
        return built[key]

    return get


def require_service(name: str, reachable: bool, detail: str) -> None:
    """Fail in CI, skip on a laptop, when a real service a test needs is not reachable."""
    if reachable:
        return
    message = f"{name} not reachable ({detail})"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)
