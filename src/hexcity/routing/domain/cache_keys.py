"""Keys, values and the early-refresh rule of the H3 semantic cache for table (matrix) cells.

A table cell ``origin -> destination`` is cached under
``rt:{graph_version}:{profile}:{h3_origin}:{h3_dest}:{heading_sector}`` (routing.md §9):

* *directed*: the two cells are never sorted, because A->B and B->A differ on a graph with one-way
  streets (routing.md pitfall 1);
* the ``graph_version`` and ``profile`` make a map update or another vehicle a different key, so old
  entries simply stop being hit (pitfall 2);
* ``heading_sector`` is the origin's 45° octant for moving origins and ``-`` for static points.

Early refresh follows XFetch: A. Vattani, F. Chierichetti, K. Lowenstein, "Optimal Probabilistic
Cache Stampede Prevention", PVLDB 8(8), 2015. A reader of an entry with remaining time-to-live ``r``
whose value took ``δ`` seconds to compute refreshes it when ``-δ·β·ln(U) >= r`` with ``U`` uniform in
``(0, 1]``; the chance of refreshing grows as expiry approaches, so one reader usually refreshes
before everyone misses at once. XFetch only lowers the odds of a stampede; the single-flight in
:mod:`hexcity.routing.table_cache` is what bounds recomputation (pitfall 4).

Pure: standard library and h3 only, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import h3

from hexcity.kernel import LatLng
from hexcity.routing.errors import InvalidValue

KEY_PREFIX = "rt"
STATIC_SECTOR = "-"
SECTOR_WIDTH_DEG = 45.0
SECTOR_COUNT = 8
MIN_RESOLUTION = 0
MAX_RESOLUTION = 15
_VALID_SECTORS = frozenset({STATIC_SECTOR, *(str(s) for s in range(SECTOR_COUNT))})


@dataclass(frozen=True, slots=True)
class CachedCell:
    """One cached table cell: the value of the first query pair that filled its key.

    ``duration_s``/``distance_m`` are ``None`` for a cached *no route* (negative entry).
    ``compute_s`` is δ, the seconds the computation that produced the value took (for XFetch);
    ``cached_at_s`` is the epoch second it was written and ``ttl_s`` its time-to-live in seconds.
    """

    duration_s: float | None
    distance_m: float | None
    compute_s: float
    cached_at_s: float
    ttl_s: float

    @property
    def no_route(self) -> bool:
        """True when this entry records that the pair is unreachable."""
        return self.duration_s is None

    def remaining_ttl_s(self, now_s: float) -> float:
        """Seconds until this entry expires at epoch second ``now_s`` (negative once expired)."""
        return self.cached_at_s + self.ttl_s - now_s


def heading_sector(bearing_deg: float | None) -> str:
    """The 45° octant of a bearing as one digit ``"0"``-``"7"``, or ``"-"`` for a static point.

    ``floor(((θ mod 360) + 22.5) / 45) mod 8``: sector 0 is centred on north (337.5°-22.5°),
    2 on east. Bearings are degrees clockwise from north; any finite value is accepted (-10 is 350).

    Raises:
        InvalidValue: the bearing is NaN or infinite.
    """
    if bearing_deg is None:
        return STATIC_SECTOR
    if not math.isfinite(bearing_deg):
        raise InvalidValue(f"bearing must be a finite number of degrees, got {bearing_deg!r}")
    sector = math.floor(((bearing_deg % 360.0) + SECTOR_WIDTH_DEG / 2) / SECTOR_WIDTH_DEG) % SECTOR_COUNT
    return str(sector)


def cell_key(graph_version: str, profile: str, origin_cell: str, dest_cell: str, sector: str) -> str:
    """The cache key ``rt:{graph_version}:{profile}:{h3_origin}:{h3_dest}:{sector}`` of one directed pair.

    The two cells keep their order: ``cell_key(.., a, b, ..) != cell_key(.., b, a, ..)`` for a != b.

    Raises:
        InvalidValue: an empty part, a ``:`` inside ``graph_version``/``profile``, an invalid H3 cell
            or a sector other than ``"0"``-``"7"`` / ``"-"``.
    """
    validate_key_scope(graph_version, profile)
    for name, cell in (("origin_cell", origin_cell), ("dest_cell", dest_cell)):
        if not h3.is_valid_cell(cell):
            raise InvalidValue(f"{name} is not a valid H3 cell: {cell!r}")
    if sector not in _VALID_SECTORS:
        raise InvalidValue(f"heading sector must be 0-7 or '-', got {sector!r}")
    return f"{KEY_PREFIX}:{graph_version}:{profile}:{origin_cell}:{dest_cell}:{sector}"


def validate_key_scope(graph_version: str, profile: str) -> None:
    """Check the ``graph_version`` and ``profile`` parts of a key: non-empty, no ``:``.

    Raises:
        InvalidValue: either part is empty or contains ``:`` (it would make keys ambiguous).
    """
    for name, part in (("graph_version", graph_version), ("profile", profile)):
        if not part or ":" in part:
            raise InvalidValue(f"{name} must be non-empty and contain no ':', got {part!r}")


def point_cell(point: LatLng, resolution: int) -> str:
    """The H3 cell (hex string) at ``resolution`` that contains ``point``.

    Raises:
        InvalidValue: latitude outside [-90, 90], longitude outside [-180, 180], NaN, or a
            resolution outside 0..15.
    """
    if not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION:
        raise InvalidValue(f"H3 resolution must be in 0..15, got {resolution}")
    lat, lng = point.lat, point.lng
    if not (math.isfinite(lat) and math.isfinite(lng) and -90.0 <= lat <= 90.0 and -180.0 <= lng <= 180.0):
        raise InvalidValue(f"coordinate out of range: lat={lat!r}, lng={lng!r}")
    cell: str = h3.latlng_to_cell(lat, lng, resolution)
    return cell


def cells_near(origin_cell: str, dest_cell: str) -> bool:
    """True when two cells of one resolution are equal or adjacent (H3 grid distance <= 1).

    Such pairs bypass the cache: on a trip that short the cell approximation error is too large
    (routing.md §9). Cells too far apart for H3 to measure (its grid distance fails across
    pentagon distortion or large distances) count as not near.
    """
    if origin_cell == dest_cell:
        return True
    try:
        return bool(h3.grid_distance(origin_cell, dest_cell) <= 1)
    except h3.H3BaseException:
        return False


def xfetch_should_refresh(delta_s: float, beta: float, remaining_ttl_s: float, u: float) -> bool:
    """XFetch's decision (Vattani et al., VLDB 2015): refresh now when ``-δ·β·ln(u) >= remaining_ttl``.

    Args:
        delta_s: δ, seconds the value took to compute (>= 0).
        beta: β, eagerness (>= 0; 1.0 is the paper's optimum, > 1 refreshes earlier).
        remaining_ttl_s: seconds until the entry expires (<= 0 means already expired: refresh).
        u: a uniform draw in (0, 1].

    Raises:
        InvalidValue: ``u`` outside (0, 1], or a negative or non-finite ``delta_s``/``beta``.
    """
    if not 0.0 < u <= 1.0:
        raise InvalidValue(f"u must be in (0, 1], got {u!r}")
    if not (math.isfinite(delta_s) and delta_s >= 0.0 and math.isfinite(beta) and beta >= 0.0):
        raise InvalidValue(f"delta_s and beta must be finite and >= 0, got {delta_s!r}, {beta!r}")
    return -delta_s * beta * math.log(u) >= remaining_ttl_s
