"""Read an OSM file (``.osm.pbf`` or ``.osm`` XML) with pyosmium into a profile's :class:`RoadNetwork`.

One streaming pass with the node-location cache: C++ filters hand Python only ways carrying a
routing key, nodes carrying barrier/access tags and ``type=restriction`` relations. Way
coordinates come out of libosmium as one WKB linestring per way (much cheaper than touching
every node location from Python). Tag evaluation is ``domain.profiles``; graph building is
``domain.network_build``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import osmium
import osmium.filter
from osmium.osm import NODE, RELATION, WAY

from hexcity.routing.domain.network import RoadNetwork
from hexcity.routing.domain.network_build import MapExtract, TurnRestriction, WayTable, build_road_network
from hexcity.routing.domain.profiles import Profile, barrier_blocks, get_profile, way_function
from hexcity.routing.errors import MapFileError

Progress = Callable[[str, int, int], None]

PROGRESS_EVERY = 20_000
_WKB_HEADER_BYTES = 9  # byte order (1) + geometry type (4) + point count (4)


@dataclass(slots=True)
class _WayCollector:
    """Growing per-way lists, turned into a :class:`WayTable` at the end."""

    way_ids: list[int] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    refs: list[int] = field(default_factory=list)
    coords: bytearray = field(default_factory=bytearray)  # little-endian float64 lon, lat pairs
    fwd_kmh: list[float] = field(default_factory=list)
    bwd_kmh: list[float] = field(default_factory=list)
    duration_s: list[float] = field(default_factory=list)
    name_index: list[int] = field(default_factory=list)
    names: dict[str, int] = field(default_factory=lambda: {"": 0})

    def table(self) -> WayTable:
        offset = np.zeros(len(self.lengths) + 1, dtype=np.int64)
        np.cumsum(np.asarray(self.lengths, dtype=np.int64), out=offset[1:])
        xy = np.frombuffer(bytes(self.coords), dtype="<f8").reshape(-1, 2)
        return WayTable(
            way_id=np.asarray(self.way_ids, dtype=np.int64),
            node_offset=offset,
            node_id=np.asarray(self.refs, dtype=np.int64),
            node_lat=np.ascontiguousarray(xy[:, 1], dtype=np.float64),
            node_lon=np.ascontiguousarray(xy[:, 0], dtype=np.float64),
            fwd_speed_kmh=np.asarray(self.fwd_kmh, dtype=np.float64),
            bwd_speed_kmh=np.asarray(self.bwd_kmh, dtype=np.float64),
            duration_s=np.asarray(self.duration_s, dtype=np.float64),
            name_index=np.asarray(self.name_index, dtype=np.int32),
            names=list(self.names),
        )


@dataclass(slots=True)
class _Counts:
    ways_read: int = 0
    restrictions_read: int = 0
    via_way: int = 0
    except_skipped: int = 0
    malformed: int = 0
    missing_locations: int = 0


def _way_coords(way: osmium.osm.Way, fab: osmium.geom.WKBFactory) -> tuple[list[int], bytes] | None:
    """Node refs and packed coordinates of a way; nodes without a location are skipped."""
    nodes = way.nodes
    try:
        wkb = bytes.fromhex(fab.create_linestring(way, osmium.geom.use_nodes.ALL))
        if wkb[0] == 1 and len(wkb) == _WKB_HEADER_BYTES + 16 * len(nodes):  # little-endian, all nodes
            return [n.ref for n in nodes], wkb[_WKB_HEADER_BYTES:]
    except (osmium.InvalidLocationError, RuntimeError):
        pass
    refs: list[int] = []
    xy: list[float] = []
    for n in nodes:
        if n.location.valid():
            refs.append(n.ref)
            xy += (n.lon, n.lat)
    return (refs, np.asarray(xy, dtype="<f8").tobytes()) if len(refs) >= 2 else None


def _restriction(rel: osmium.osm.Relation, profile: Profile, counts: _Counts) -> TurnRestriction | None:
    """A via-node restriction relevant to ``profile`` (``restriction[:mode]``, ``except``), else None."""
    tags = dict(rel.tags)
    value = None
    for mode in profile.restriction_modes:
        value = value or tags.get("restriction:" + mode)
    value = value or tags.get("restriction")
    if not value:
        return None
    counts.restrictions_read += 1
    excepted = {part.strip() for part in tags.get("except", "").split(";")}
    if excepted & set(profile.restriction_modes):
        counts.except_skipped += 1
        return None
    members: dict[str, list[tuple[str, int]]] = {"from": [], "via": [], "to": []}
    for m in rel.members:
        if m.role in members:
            members[m.role].append((m.type, m.ref))
    if any(kind == "w" for kind, _ in members["via"]):
        counts.via_way += 1
        return None
    shapes = [members[role] for role in ("from", "via", "to")]
    kinds_ok = [m[0][0] if len(m) == 1 else "" for m in shapes] == ["w", "n", "w"]
    if not kinds_ok or not value.startswith(("no_", "only_")):
        counts.malformed += 1
        return None
    (_, from_way), (_, via_node), (_, to_way) = (m[0] for m in shapes)
    return TurnRestriction(rel.id, from_way, via_node, to_way, only=value.startswith("only_"))


def _only_for(filt: osmium.BaseFilter, entities: osmium.osm.osm_entity_bits) -> osmium.BaseFilter:
    filt.enable_for(entities)
    return filt


def _processor(path: Path, profile: Profile) -> osmium.FileProcessor:
    """Locations cached for all nodes; Python sees only candidate ways, barrier nodes, restrictions."""
    entities = NODE | WAY | RELATION if profile.use_turn_restrictions else NODE | WAY
    node_keys = ("barrier", *profile.access_tags_hierarchy)
    return (
        osmium.FileProcessor(str(path), entities)
        .with_locations()
        .with_filter(osmium.filter.EmptyTagFilter())
        .with_filter(_only_for(osmium.filter.KeyFilter(*profile.way_keys), WAY))
        .with_filter(_only_for(osmium.filter.KeyFilter(*node_keys), NODE))
        .with_filter(_only_for(osmium.filter.TagFilter(("type", "restriction")), RELATION))
    )


def _read_extract(path: Path, profile: Profile, progress: Progress) -> MapExtract:
    way_fn = way_function(profile)
    fab = osmium.geom.WKBFactory()
    ways = _WayCollector()
    counts = _Counts()
    barriers: list[int] = []
    restrictions: list[TurnRestriction] = []
    seen = 0
    for obj in _processor(path, profile):
        seen += 1
        if seen % PROGRESS_EVERY == 0:
            progress("read", seen, 0)
        if isinstance(obj, osmium.osm.Way):
            counts.ways_read += 1
            attrs = way_fn(dict(obj.tags))
            if attrs is None:
                continue
            geometry = _way_coords(obj, fab)
            if geometry is None:
                counts.missing_locations += 1
                continue
            refs, xy = geometry
            ways.way_ids.append(obj.id)
            ways.lengths.append(len(refs))
            ways.refs += refs
            ways.coords += xy
            ways.fwd_kmh.append(np.nan if attrs.forward_speed_kmh is None else attrs.forward_speed_kmh)
            ways.bwd_kmh.append(np.nan if attrs.backward_speed_kmh is None else attrs.backward_speed_kmh)
            ways.duration_s.append(np.nan if attrs.duration_s is None else attrs.duration_s)
            ways.name_index.append(ways.names.setdefault(attrs.name, len(ways.names)))
        elif isinstance(obj, osmium.osm.Node):
            if barrier_blocks(profile, dict(obj.tags)):
                barriers.append(obj.id)
        elif isinstance(obj, osmium.osm.Relation):
            restriction = _restriction(obj, profile, counts)
            if restriction is not None:
                restrictions.append(restriction)
    progress("read", seen, seen)
    extra = {
        "restrictions_via_way_skipped": counts.via_way,
        "restrictions_except_skipped": counts.except_skipped,
        "restrictions_malformed": counts.malformed,
        "ways_missing_locations": counts.missing_locations,
    }
    return MapExtract(
        profile=profile.name,
        ways=ways.table(),
        barrier_nodes=np.asarray(barriers, dtype=np.int64),
        restrictions=restrictions,
        ways_read=counts.ways_read,
        restrictions_read=counts.restrictions_read,
        extra=extra,
    )


def _check_file(path: Path) -> None:
    if not path.exists():
        raise MapFileError(f"map file not found: {path}")
    if not path.is_file():
        raise MapFileError(f"map file is not a regular file: {path}")
    if path.stat().st_size == 0:
        raise MapFileError(f"map file is empty: {path}")


def read_road_network(path: Path, profile: str, progress: Progress | None = None) -> RoadNetwork:
    """Import ``path`` for ``profile`` (``car``/``bike``/``foot`` or an OSRM alias).

    ``progress(stage, done, total)`` is called periodically (``total`` is 0 while unknown).
    Raises ``UnknownProfile`` for a bad profile and ``MapFileError`` for a missing, empty,
    truncated or non-OSM file, or one without any routable way for the profile.
    """
    prof = get_profile(profile)
    path = Path(path)
    _check_file(path)
    notify: Progress = progress or (lambda stage, done, total: None)
    try:
        extract = _read_extract(path, prof, notify)
    except (RuntimeError, ValueError, OSError) as exc:
        raise MapFileError(f"cannot read map file {path}: {exc}") from exc
    if extract.ways.n_ways == 0:
        raise MapFileError(f"map file {path} has no way routable for profile {prof.name!r}")
    return build_road_network(extract, notify)
