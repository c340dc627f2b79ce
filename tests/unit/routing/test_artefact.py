"""Graph artefacts: checksummed, versioned, written atomically, rejected when damaged."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from hexcity.routing import ArtefactError, ArtefactVersionError, RoutingEngine, load_artefact, read_manifest

pytestmark = pytest.mark.slow


@pytest.fixture()
def artefact(graph_dir: Callable[[str, str], Path], tmp_path: Path) -> Path:
    copy = tmp_path / "graph"
    shutil.copytree(graph_dir("andorra", "car"), copy)
    return copy


def test_manifest_names_version_profile_and_checksums(artefact: Path) -> None:
    manifest = read_manifest(artefact)
    assert manifest["format"] == "hexcity-graph"
    assert manifest["format_version"] == 1
    assert manifest["profile"] == "car"
    assert manifest["graph_version"].startswith("0e35753ee068.car.")
    assert manifest["source"]["sha256"].startswith("0e35753ee0685e39")
    assert manifest["counts"]["nodes"] == manifest["report"]["nodes_kept"] > 1000
    assert set(manifest["files"]) >= {"arc_tail.npy", "fwd_first.npy", "names.json"}
    assert all(len(digest) == 64 for digest in manifest["files"].values())


def test_arrays_are_memory_mapped(artefact: Path) -> None:
    loaded = load_artefact(artefact)
    for array in (loaded.network.arc_tail, loaded.query.fwd_to):
        assert isinstance(array.base, np.memmap)
        assert not array.flags.writeable


def test_other_format_version_is_refused(artefact: Path) -> None:
    manifest = json.loads((artefact / "manifest.json").read_text())
    manifest["format_version"] = 999
    (artefact / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtefactVersionError, match="format version 999") as info:
        RoutingEngine.open(artefact)
    assert info.value.code == "ArtefactVersionMismatch"


def test_corrupted_file_fails_its_checksum(artefact: Path) -> None:
    target = artefact / "arc_weight_ms.npy"
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(ArtefactError, match=r"checksum mismatch for arc_weight_ms\.npy"):
        load_artefact(artefact)


def test_truncated_file_is_rejected_even_without_checksums(artefact: Path) -> None:
    target = artefact / "fwd_to.npy"
    target.write_bytes(target.read_bytes()[:100])
    with pytest.raises(ArtefactError, match="fwd_to"):
        load_artefact(artefact, verify=False)


def test_missing_file_and_missing_manifest(artefact: Path, tmp_path: Path) -> None:
    (artefact / "geom_lat.npy").unlink()
    with pytest.raises(ArtefactError, match=r"missing files: geom_lat\.npy"):
        load_artefact(artefact)
    with pytest.raises(ArtefactError, match=r"manifest\.json is missing"):
        load_artefact(tmp_path)


def test_garbage_manifest(artefact: Path) -> None:
    (artefact / "manifest.json").write_text("{not json")
    with pytest.raises(ArtefactError, match="not valid JSON"):
        read_manifest(artefact)
