"""The offline map build: read OSM → build network → contract → write artefact.

One function that reads like a recipe (OSMnx's pipeline style). Never run inside a serving
process's request path.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from hexcity import __version__
from hexcity.routing.adapters.artefact import FORMAT_VERSION, sha256_file, write_artefact
from hexcity.routing.adapters.osm_reader import read_road_network
from hexcity.routing.domain.ch_query import build_query_graph
from hexcity.routing.domain.contraction import ContractionParams, contract
from hexcity.routing.domain.network import ImportReport
from hexcity.routing.domain.profiles import canonical_profile_name, get_profile
from hexcity.routing.errors import MapFileError

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class BuildResult:
    path: Path
    graph_version: str
    report: ImportReport
    import_s: float
    contract_s: float
    shortcuts: int


def graph_version_for(pbf_sha256: str, profile: str) -> str:
    """``{extract sha}.{profile}.{profile hash}.f{format}.{code version}``: changes with any input."""
    profile_hash = hashlib.sha256(repr(get_profile(profile)).encode()).hexdigest()[:8]
    return f"{pbf_sha256[:12]}.{profile}.{profile_hash}.f{FORMAT_VERSION}.{__version__}"


def build_graph(
    pbf: Path,
    profile: str,
    out_dir: Path,
    *,
    params: ContractionParams | None = None,
    progress: Progress | None = None,
) -> BuildResult:
    """Build the artefact of ``profile`` from ``pbf`` into ``out_dir``.

    Raises MapFileError (bad input file) or UnknownProfile.
    """
    profile = canonical_profile_name(profile)
    get_profile(profile)
    if not pbf.is_file():
        raise MapFileError(f"map file {pbf} does not exist")
    report = progress or (lambda stage, done, total: None)
    pbf_sha = sha256_file(pbf)
    t0 = time.perf_counter()
    network = read_road_network(pbf, profile, progress)
    import_s = time.perf_counter() - t0
    report("contract", 0, 1)
    t1 = time.perf_counter()
    hierarchy = contract(
        network.n_nodes,
        network.arc_tail,
        network.arc_head,
        network.arc_weight_ms,
        network.arc_dist_cm,
        params,
    )
    query = build_query_graph(hierarchy, network.n_nodes, network.n_arcs)
    contract_s = time.perf_counter() - t1
    report("contract", 1, 1)
    version = graph_version_for(pbf_sha, profile)
    network = replace(
        network,
        report=replace(
            network.report,
            extra={
                **network.report.extra,
                "import_ms": round(import_s * 1000),
                "contract_ms": round(contract_s * 1000),
            },
        ),
    )
    path = write_artefact(
        out_dir,
        network,
        query,
        graph_version=version,
        source={"file": pbf.name, "sha256": pbf_sha, "bytes": pbf.stat().st_size},
    )
    report("write", 1, 1)
    return BuildResult(path, version, network.report, import_s, contract_s, hierarchy.n_shortcuts)


def cached_graph_dir(cache_dir: Path, pbf: Path, profile: str) -> Path:
    """Where the cached artefact of (pbf contents, profile, code version) lives."""
    return cache_dir / graph_version_for(sha256_file(pbf), canonical_profile_name(profile))
