"""Graph artefacts on disk: one directory of ``.npy`` arrays plus a ``manifest.json``.

The manifest names the format version, the ``graph_version``, the profile, the source extract's
SHA-256 and a SHA-256 per file. Arrays are loaded memory-mapped (``np.load(mmap_mode="r")``), so
several processes serving one artefact share its pages. An artefact is written into a temporary
sibling directory and renamed into place, so a reader never sees a half-written one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hexcity import __version__
from hexcity.routing.domain.ch_query import QueryGraph
from hexcity.routing.domain.network import ImportReport, RoadNetwork
from hexcity.routing.errors import ArtefactError, ArtefactVersionError

FORMAT_NAME = "hexcity-graph"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"

NETWORK_ARRAYS = (
    "node_lat",
    "node_lon",
    "geom_offset",
    "geom_lat",
    "geom_lon",
    "geom_cum_dist_m",
    "geom_cum_fwd_s",
    "geom_cum_bwd_s",
    "chain_forward",
    "chain_backward",
    "chain_name",
    "arc_tail",
    "arc_head",
    "arc_chain",
    "arc_forward",
    "arc_weight_ms",
    "arc_dist_cm",
)
QUERY_ARRAYS = (
    "fwd_first",
    "fwd_to",
    "fwd_weight",
    "fwd_dist",
    "fwd_edge",
    "bwd_first",
    "bwd_to",
    "bwd_weight",
    "bwd_dist",
    "bwd_edge",
    "edge_tail",
    "edge_head",
    "edge_child1",
    "edge_child2",
)


@dataclass(frozen=True, slots=True)
class Artefact:
    """A loaded artefact: the network, its hierarchy and the manifest."""

    path: Path
    manifest: dict[str, Any]
    network: RoadNetwork
    query: QueryGraph

    @property
    def graph_version(self) -> str:
        return str(self.manifest["graph_version"])

    @property
    def profile(self) -> str:
        return str(self.manifest["profile"])


def sha256_file(path: Path, chunk_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def write_artefact(
    out_dir: Path, network: RoadNetwork, query: QueryGraph, *, graph_version: str, source: dict[str, Any]
) -> Path:
    """Write an artefact atomically to ``out_dir`` (replacing an existing one); returns the path."""
    out_dir = out_dir.resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        files: dict[str, str] = {}
        for name in NETWORK_ARRAYS:
            files[f"{name}.npy"] = _save(tmp, name, getattr(network, name))
        for name in QUERY_ARRAYS:
            files[f"{name}.npy"] = _save(tmp, name, getattr(query, name))
        names_path = tmp / "names.json"
        names_path.write_text(json.dumps(network.names, ensure_ascii=False))
        files["names.json"] = sha256_file(names_path)
        manifest = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "graph_version": graph_version,
            "profile": network.profile,
            "hexcity_version": __version__,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "source": source,
            "counts": {
                "nodes": network.n_nodes,
                "chains": network.n_chains,
                "arcs": network.n_arcs,
                "shortcuts": int(query.edge_tail.shape[0]) - network.n_arcs,
            },
            "bbox": _bbox(network),
            "report": asdict(network.report),
            "files": files,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        _swap_into_place(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def read_manifest(path: Path) -> dict[str, Any]:
    """Read and check an artefact's manifest (format and version) without loading arrays."""
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise ArtefactError(f"{path} is not a graph artefact: {MANIFEST} is missing")
    try:
        manifest: dict[str, Any] = json.loads(manifest_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtefactError(f"{manifest_path} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise ArtefactError(f"{manifest_path} is not a {FORMAT_NAME} manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ArtefactVersionError(
            f"artefact {path} has format version {manifest.get('format_version')!r}; this hexcity "
            f"({__version__}) reads version {FORMAT_VERSION}: rebuild it with `hexcity routing build`"
        )
    return manifest


def load_artefact(path: Path, *, verify: bool = True) -> Artefact:
    """Load an artefact memory-mapped; with ``verify`` check every file's SHA-256 first.

    Raises ArtefactError (missing/corrupt/truncated file) or ArtefactVersionError.
    """
    path = Path(path)
    manifest = read_manifest(path)
    files: dict[str, str] = manifest.get("files", {})
    expected = {f"{n}.npy" for n in (*NETWORK_ARRAYS, *QUERY_ARRAYS)} | {"names.json"}
    missing = sorted(expected - set(files)) + sorted(f for f in files if not (path / f).is_file())
    if missing:
        raise ArtefactError(f"artefact {path} is missing files: {', '.join(missing)}")
    if verify:
        for name, digest in files.items():
            if sha256_file(path / name) != digest:
                raise ArtefactError(f"artefact {path}: checksum mismatch for {name} (corrupt or modified)")
    arrays = {name: _load(path, name) for name in (*NETWORK_ARRAYS, *QUERY_ARRAYS)}
    names = json.loads((path / "names.json").read_text())
    report = ImportReport(**manifest["report"])
    network = RoadNetwork(
        profile=manifest["profile"], names=names, report=report, **{k: arrays[k] for k in NETWORK_ARRAYS}
    )
    query = QueryGraph(n_nodes=network.n_nodes, n_arcs=network.n_arcs, **{k: arrays[k] for k in QUERY_ARRAYS})
    return Artefact(path=path, manifest=manifest, network=network, query=query)


def _save(directory: Path, name: str, array: Any) -> str:
    target = directory / f"{name}.npy"
    np.save(target, np.ascontiguousarray(array), allow_pickle=False)
    return sha256_file(target)


def _load(directory: Path, name: str) -> Any:
    try:
        # a plain ndarray view of the read-only memory map: shared pages, no memmap indexing overhead
        return np.asarray(np.load(directory / f"{name}.npy", mmap_mode="r", allow_pickle=False))
    except (OSError, ValueError) as exc:
        raise ArtefactError(f"artefact {directory}: cannot read {name}.npy ({exc})") from exc


def _bbox(network: RoadNetwork) -> list[float]:
    if network.n_nodes == 0:
        return [0.0, 0.0, 0.0, 0.0]
    return [
        float(network.node_lon.min()),
        float(network.node_lat.min()),
        float(network.node_lon.max()),
        float(network.node_lat.max()),
    ]


def _swap_into_place(tmp: Path, out_dir: Path) -> None:
    if not out_dir.exists():
        os.replace(tmp, out_dir)
        return
    if out_dir.is_dir() and not (out_dir / MANIFEST).exists() and any(out_dir.iterdir()):
        raise ArtefactError(f"{out_dir} exists and is not a graph artefact; refusing to overwrite it")
    old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
    os.replace(out_dir, old)
    os.replace(tmp, out_dir)
    shutil.rmtree(old, ignore_errors=True)
