"""The roads GeoJSON: one LineString per chain, rounded, deduplicated vertices, names, bbox."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import orjson
import pytest

from hexcity.web import RoadsCache, bounds_of, roads_geojson
from hexcity.web import roads as roads_module


@dataclass
class FakeNetwork:
    geom_offset: npt.NDArray[np.int64]
    geom_lat: npt.NDArray[np.float64]
    geom_lon: npt.NDArray[np.float64]
    chain_name: npt.NDArray[np.int32]
    names: list[str]


def network() -> FakeNetwork:
    # chain 0: 3 vertices; chain 1: two vertices that round to the same point (dropped);
    # chain 2: 2 vertices with a repeated middle vertex after rounding
    return FakeNetwork(
        geom_offset=np.array([0, 3, 5, 8], dtype=np.int64),
        geom_lat=np.array([42.5, 42.501, 42.502, 42.6, 42.600001, 42.7, 42.7000001, 42.71]),
        geom_lon=np.array([1.5, 1.501, 1.502, 1.6, 1.600001, 1.7, 1.7000001, 1.71]),
        chain_name=np.array([1, 0, -1], dtype=np.int32),
        names=["", "Avinguda Meritxell"],
    )


def test_one_linestring_per_chain_with_distinct_rounded_vertices() -> None:
    fc = roads_geojson(network())
    assert fc["type"] == "FeatureCollection"
    assert fc["bbox"] == [1.5, 42.5, 1.71, 42.71]
    assert fc["features"] == [
        {
            "type": "Feature",
            "id": 0,
            "geometry": {
                "type": "LineString",
                "coordinates": [[1.5, 42.5], [1.501, 42.501], [1.502, 42.502]],
            },
            "properties": {"name": "Avinguda Meritxell"},
        },
        {
            "type": "Feature",
            "id": 2,
            "geometry": {"type": "LineString", "coordinates": [[1.7, 42.7], [1.71, 42.71]]},
            "properties": {"name": ""},
        },
    ]


def test_empty_network_has_zero_bounds_and_no_features() -> None:
    empty = FakeNetwork(
        np.array([0], dtype=np.int64),
        np.array([], dtype=np.float64),
        np.array([], dtype=np.float64),
        np.array([], dtype=np.int32),
        [],
    )
    assert bounds_of(empty) == [0.0, 0.0, 0.0, 0.0]
    assert roads_geojson(empty)["features"] == []


def test_too_many_chains_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(roads_module, "MAX_FEATURES", 2)
    with pytest.raises(ValueError, match="3 chains, above the 2"):
        roads_geojson(network())


def test_cache_builds_once_per_graph_version() -> None:
    cache = RoadsCache()
    net = network()
    first = cache.get("car", "v1", net)
    net.names[1] = "renamed"  # a rebuild would show it; a cache hit does not
    assert cache.get("car", "v1", net) is first
    rebuilt = orjson.loads(cache.get("car", "v2", net))
    assert rebuilt["features"][0]["properties"]["name"] == "renamed"
