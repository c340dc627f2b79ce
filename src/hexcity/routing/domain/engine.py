"""The query engine of one profile: nearest, route, table, isochrone on a contracted graph.

Pure computation over the arrays of a loaded artefact. Searches run in numba-compiled code that
releases the GIL; each concurrent query borrows its own workspace from a bounded pool.
"""

from __future__ import annotations

import functools
import itertools
import queue
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from hexcity.kernel import LatLng
from hexcity.routing.domain.ch_query import (
    QueryGraph,
    Workspace,
    clear_route,
    path_arcs,
    search_route,
    search_table,
)
from hexcity.routing.domain.contraction import INF
from hexcity.routing.domain.dijkstra import ForwardGraph, out_csr
from hexcity.routing.domain.geometry import (
    arcs_vertices,
    arrive_vertices,
    assemble,
    between_vertices,
    leave_vertices,
)
from hexcity.routing.domain.network import RoadNetwork
from hexcity.routing.domain.phantom import (
    ChainArcs,
    Phantom,
    bulk_seeds,
    make_phantom,
    same_chain_cost,
    seeds_csr,
)
from hexcity.routing.domain.snapping import Snap, SnapIndex
from hexcity.routing.errors import NoRoute, NoSegment, Overloaded

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
_NO_LINE = np.empty((0, 2))
_NO_ARCS = np.empty(0, dtype=np.int64)


@dataclass(frozen=True, slots=True)
class Leg:
    """One leg between consecutive waypoints."""

    duration_s: float
    distance_m: float
    geometry: F64  # (n, 2) rows of (lat, lng); empty when not asked for
    arcs: I64  # the input arcs the leg drives along, in order


@dataclass(frozen=True, slots=True)
class Route:
    duration_s: float
    distance_m: float
    geometry: F64  # (n, 2) rows of (lat, lng); empty when not asked for
    legs: list[Leg]
    waypoints: list[Snap]


@dataclass(frozen=True, slots=True)
class Table:
    """Row-major durations (s) and distances (m); nan where unreachable."""

    durations_s: F64
    distances_m: F64
    sources: list[Snap]
    destinations: list[Snap]


class Engine:
    """Queries on one profile's network and hierarchy."""

    def __init__(
        self,
        network: RoadNetwork,
        query: QueryGraph,
        *,
        max_workspaces: int = 8,
        queue_timeout_s: float = 5.0,
    ) -> None:
        self.queue_timeout_s = queue_timeout_s
        self.network = network
        self.query = query
        self.snap_index = SnapIndex(network)
        self.chain_arcs = ChainArcs(network)
        self._pool: queue.LifoQueue[Workspace] = queue.LifoQueue(maxsize=max_workspaces)
        for _ in range(max_workspaces):
            self._pool.put(_LazyWorkspace(network.n_nodes))  # type: ignore[arg-type]

    # -- snapping -------------------------------------------------------------------------------
    def snap(self, point: LatLng, max_distance_m: float) -> Snap:
        """Closest road point; raises NoSegment if none lies within ``max_distance_m``."""
        return self.snap_many([point], [max_distance_m])[0]

    def snap_many(self, points: Sequence[LatLng], max_distance_m: Sequence[float]) -> list[Snap]:
        """Closest road points of many inputs at once; raises NoSegment naming the first miss."""
        found = self.snap_index.snap_many(list(points), list(max_distance_m))
        for i, snap in enumerate(found):
            if snap is None:
                p = points[i]
                raise NoSegment(
                    f"Could not find a matching segment for coordinate {i} ({p.lng:.6f},{p.lat:.6f}) "
                    f"within {max_distance_m[i]:.0f} m"
                )
        return found  # type: ignore[return-value]

    def nearest(self, point: LatLng, number: int, max_distance_m: float) -> list[Snap]:
        found = self.snap_index.nearest(point, number, max_distance_m)
        if not found:
            raise NoSegment(f"No road within {max_distance_m:.0f} m of {point.lng:.6f},{point.lat:.6f}")
        return found

    @functools.cached_property
    def forward_graph(self) -> ForwardGraph:
        """The plain arc graph as CSR, for searches outside the hierarchy (isochrones); built once."""
        net = self.network
        return out_csr(net.n_nodes, net.arc_tail, net.arc_head, net.arc_weight_ms, net.arc_dist_cm)

    def phantom(self, snap: Snap) -> Phantom:
        return make_phantom(self.network, self.chain_arcs, snap)

    # -- route ----------------------------------------------------------------------------------
    def route(self, snaps: Sequence[Snap], *, geometry: bool = True) -> Route:
        """Fastest route through the snapped waypoints in order; raises NoRoute.

        ``geometry=False`` skips assembling the line (OSRM's ``overview=false``).
        """
        phantoms = [self.phantom(s) for s in snaps]
        legs = [self._leg(a, b, geometry) for a, b in itertools.pairwise(phantoms)]
        line = (
            np.vstack([legs[0].geometry] + [leg.geometry[1:] for leg in legs[1:]])
            if geometry
            else np.empty((0, 2))
        )
        return Route(
            duration_s=sum(leg.duration_s for leg in legs),
            distance_m=sum(leg.distance_m for leg in legs),
            geometry=line,
            legs=legs,
            waypoints=list(snaps),
        )

    def _leg(self, src: Phantom, dst: Phantom, geometry: bool) -> Leg:
        direct = same_chain_cost(src, dst)
        _, s_nodes, s_w, s_d = seeds_csr([src], as_source=True)
        _, t_nodes, t_w, t_d = seeds_csr([dst], as_source=False)
        q = self.query
        with self._workspace() as ws:
            best_w, best_d, meet, ntf, ntb = search_route(q, ws, s_nodes, s_w, s_d, t_nodes, t_w, t_d)
            try:
                if direct is not None and (meet < 0 or direct <= (best_w, best_d)):
                    return self._direct_leg(src, dst, direct, geometry)
                if meet < 0:
                    raise NoRoute("Impossible route between points")
                arcs, first_node, last_node = path_arcs(q, ws, meet)
            finally:
                clear_route(ws, ntf, ntb)
        line = self._leg_geometry(src, dst, arcs, int(first_node), int(last_node)) if geometry else _NO_LINE
        return Leg(
            duration_s=best_w / 1000.0,
            distance_m=best_d / 100.0,
            geometry=line,
            arcs=arcs,
        )

    def _direct_leg(self, src: Phantom, dst: Phantom, cost: tuple[int, int], geometry: bool) -> Leg:
        forward = dst.snap.offset_m >= src.snap.offset_m and src.fwd_head >= 0
        line = _NO_LINE
        if geometry:
            inner = between_vertices(self.network, src.snap, dst.snap, forward=forward)
            line = assemble(self.network, src.snap, [inner], dst.snap)
        return Leg(duration_s=cost[0] / 1000.0, distance_m=cost[1] / 100.0, geometry=line, arcs=_NO_ARCS)

    def _leg_geometry(self, src: Phantom, dst: Phantom, arcs: I64, first: int, last: int) -> F64:
        leaves_forward = first == src.fwd_head and (
            src.bwd_head != first or self._seed_cost(src, True) <= self._seed_cost(src, False)
        )
        arrives_forward = last in dst.fwd_tails and (
            last not in dst.bwd_tails or self._target_cost(dst, True) <= self._target_cost(dst, False)
        )
        net = self.network
        return assemble(
            net,
            src.snap,
            [
                leave_vertices(net, src.snap, forward=leaves_forward),
                arcs_vertices(net, arcs),
                arrive_vertices(net, dst.snap, forward=arrives_forward),
            ],
            dst.snap,
        )

    @staticmethod
    def _seed_cost(p: Phantom, forward: bool) -> tuple[int, int]:
        if forward:
            return (p.fwd_weight_ms - p.to_start_fwd_ms, p.dist_cm - p.offset_cm)
        return (p.to_start_bwd_ms, p.offset_cm)

    @staticmethod
    def _target_cost(p: Phantom, forward: bool) -> tuple[int, int]:
        if forward:
            return (p.to_start_fwd_ms, p.offset_cm)
        return (p.bwd_weight_ms - p.to_start_bwd_ms, p.dist_cm - p.offset_cm)

    # -- table ----------------------------------------------------------------------------------
    def table(self, sources: Sequence[Snap], destinations: Sequence[Snap]) -> Table:
        """Many-to-many durations and distances (bucket CH); nan where unreachable."""
        same = sources is destinations
        sources = list(sources)
        destinations = sources if same else list(destinations)
        s_first, s_nodes, s_w, s_d = bulk_seeds(self.network, self.chain_arcs, sources, as_source=True)
        t_first, t_nodes, t_w, t_d = bulk_seeds(self.network, self.chain_arcs, destinations, as_source=False)
        res_w = np.full((len(sources), len(destinations)), INF, dtype=np.int64)
        res_d = np.full((len(sources), len(destinations)), INF, dtype=np.int64)
        with self._workspace() as ws:
            search_table(
                self.query, ws, (s_first, s_nodes, s_w, s_d), (t_first, t_nodes, t_w, t_d), res_w, res_d
            )
        self._same_chain_fixup(sources, destinations, res_w, res_d)
        unreachable = res_w >= INF
        durations = np.where(unreachable, np.nan, res_w / 1000.0)
        distances = np.where(unreachable, np.nan, res_d / 100.0)
        return Table(durations, distances, sources, destinations)

    def _same_chain_fixup(self, src: list[Snap], dst: list[Snap], res_w: I64, res_d: I64) -> None:
        """Pairs on one chain may be joined along it without reaching a node."""
        by_chain: dict[int, list[int]] = {}
        for j, snap in enumerate(dst):
            by_chain.setdefault(snap.chain, []).append(j)
        src_cache: dict[int, Phantom] = {}
        dst_cache: dict[int, Phantom] = {}
        for i, snap in enumerate(src):
            for j in by_chain.get(snap.chain, ()):
                if snap == dst[j]:
                    res_w[i, j], res_d[i, j] = 0, 0  # the same point: nothing to drive
                    continue
                if i not in src_cache:
                    src_cache[i] = self.phantom(snap)
                if j not in dst_cache:
                    dst_cache[j] = self.phantom(dst[j])
                direct = same_chain_cost(src_cache[i], dst_cache[j])
                if direct is not None and direct < (int(res_w[i, j]), int(res_d[i, j])):
                    res_w[i, j], res_d[i, j] = direct

    # -- helpers --------------------------------------------------------------------------------
    @contextmanager
    def _workspace(self) -> Iterator[Workspace]:
        try:
            item = self._pool.get(timeout=self.queue_timeout_s)
        except queue.Empty:
            raise Overloaded(
                f"all {self._pool.maxsize} search workspaces stayed busy for {self.queue_timeout_s:g} s"
            ) from None
        try:
            ws = item.get() if isinstance(item, _LazyWorkspace) else item
        except BaseException:
            self._pool.put(item)
            raise
        try:
            yield ws
        finally:
            self._pool.put(ws)


class _LazyWorkspace:
    """A workspace allocated on first use, so an idle pool costs no memory."""

    def __init__(self, n_nodes: int) -> None:
        self._n = n_nodes

    def get(self) -> Workspace:
        return Workspace(self._n)
