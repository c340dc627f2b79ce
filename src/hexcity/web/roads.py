"""The dashboard's base map: our own road geometry as GeoJSON, built once per profile.

Every chain of the routing network (a polyline between two junctions, see
``hexcity.routing.domain.network``) becomes one ``LineString`` feature with its street name, so
the browser draws the roads the router actually uses: no tile server, no third-party map.
Coordinates are rounded to 5 decimals (about 1 m), which keeps Andorra's car network near 2 MB.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import orjson

__all__ = ["ChainGeometry", "RoadsCache", "bounds_of", "roads_geojson"]

COORD_DECIMALS = 5
MAX_FEATURES = 500_000  # a bigger network is refused rather than shipped to a browser


class ChainGeometry(Protocol):
    """What the roads layer reads from a routing network (``RoadNetwork`` satisfies it)."""

    @property
    def geom_offset(self) -> npt.NDArray[np.int64]: ...

    @property
    def geom_lat(self) -> npt.NDArray[np.float64]: ...

    @property
    def geom_lon(self) -> npt.NDArray[np.float64]: ...

    @property
    def chain_name(self) -> npt.NDArray[np.int32]: ...

    @property
    def names(self) -> list[str]: ...


def roads_geojson(network: ChainGeometry) -> dict[str, Any]:
    """A GeoJSON ``FeatureCollection``: one LineString per chain with ≥ 2 distinct vertices.

    Properties: ``name`` (street name, "" if none). ``bbox`` is [west, south, east, north].
    Raises ValueError above :data:`MAX_FEATURES` chains.
    """
    offsets = np.asarray(network.geom_offset, dtype=np.int64)
    n_chains = int(offsets.shape[0]) - 1
    if n_chains > MAX_FEATURES:
        raise ValueError(f"network has {n_chains} chains, above the {MAX_FEATURES} the map can show")
    lon = np.round(np.asarray(network.geom_lon, dtype=np.float64), COORD_DECIMALS)
    lat = np.round(np.asarray(network.geom_lat, dtype=np.float64), COORD_DECIMALS)
    names = network.names
    name_idx = np.asarray(network.chain_name)
    features: list[dict[str, Any]] = []
    for c in range(n_chains):
        lo, hi = int(offsets[c]), int(offsets[c + 1])
        coords: list[list[float]] = []
        for x, y in zip(lon[lo:hi].tolist(), lat[lo:hi].tolist(), strict=True):
            if not coords or coords[-1] != [x, y]:
                coords.append([x, y])
        if len(coords) < 2:
            continue
        k = int(name_idx[c]) if c < name_idx.shape[0] else -1
        features.append(
            {
                "type": "Feature",
                "id": c,
                "geometry": {"type": "LineString", "coordinates": coords},
                "properties": {"name": names[k] if 0 <= k < len(names) else ""},
            }
        )
    return {"type": "FeatureCollection", "bbox": bounds_of(network), "features": features}


def bounds_of(network: ChainGeometry) -> list[float]:
    """[west, south, east, north] of every vertex (degrees); [0, 0, 0, 0] for an empty network."""
    lon = np.asarray(network.geom_lon, dtype=np.float64)
    lat = np.asarray(network.geom_lat, dtype=np.float64)
    if lon.size == 0:
        return [0.0, 0.0, 0.0, 0.0]
    return [
        round(float(lon.min()), COORD_DECIMALS),
        round(float(lat.min()), COORD_DECIMALS),
        round(float(lon.max()), COORD_DECIMALS),
        round(float(lat.max()), COORD_DECIMALS),
    ]


@dataclass
class _Entry:
    graph_version: str
    body: bytes


class RoadsCache:
    """Serialised roads per profile, rebuilt only when the graph version changes (thread-safe)."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def get(self, profile: str, graph_version: str, network: ChainGeometry) -> bytes:
        """The GeoJSON bytes for ``profile`` at ``graph_version`` (built on first use)."""
        with self._lock:
            entry = self._entries.get(profile)
            if entry is not None and entry.graph_version == graph_version:
                return entry.body
        body = orjson.dumps(roads_geojson(network))
        with self._lock:
            self._entries[profile] = _Entry(graph_version, body)
        return body
