"""RoutingService: several profiles in one process, readiness, errors; the table cache on top."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from hexcity.bootstrap import attach_table_cache
from hexcity.kernel import LatLng
from hexcity.routing import Limits, NotReady, RoutingEngine, RoutingService, RoutingSettings, UnknownProfile

PLACES = [LatLng(42.5063, 1.5211), LatLng(42.5116, 1.5394), LatLng(42.5345, 1.5806), LatLng(42.4633, 1.4913)]


def test_readiness_waits_for_every_expected_profile(graph_dir: Callable[[str, str], Path]) -> None:
    service = RoutingService(Limits())
    assert service.ready is False  # nothing expected yet: not ready
    service.expect(["car", "walking"])
    assert service.status() == {
        "ready": False,
        "profiles": {"car": {"state": "loading"}, "foot": {"state": "loading"}},
    }
    with pytest.raises(NotReady, match="'car' is still loading"):
        service.get("driving")
    service.add(RoutingEngine.open(graph_dir("andorra", "car")))
    assert service.ready is False
    assert service.get("driving").profile == "car"
    service.add(RoutingEngine.open(graph_dir("andorra", "foot")))
    assert service.ready is True
    assert service.get("walking").profile == "foot"
    with pytest.raises(UnknownProfile, match="'bike' is not served here"):
        service.get("cycling")
    with pytest.raises(UnknownProfile, match="unknown profile 'truck'"):
        service.get("truck")


def test_a_failed_profile_keeps_the_service_unready() -> None:
    service = RoutingService(Limits())
    service.expect(["car"])
    service.fail("car", "artefact corrupt")
    assert service.ready is False
    assert service.status()["profiles"] == {"car": {"state": "failed", "error": "artefact corrupt"}}


def test_table_cache_serves_repeats_from_the_store(graph_dir: Callable[[str, str], Path]) -> None:
    exact = RoutingEngine.open(graph_dir("andorra", "car"))
    cached = RoutingEngine.open(graph_dir("andorra", "car"))
    attach_table_cache(cached, RoutingSettings(cache_enabled=True, cache_max_entries=1000))
    assert cached.cache is not None
    truth = exact.table(PLACES)
    first = cached.table(PLACES)
    # the first pass computes every pair exactly (cells far apart are looked up and missed)
    np.testing.assert_array_equal(first.durations_s, truth.durations_s)
    misses = cached.cache.stats["misses"]
    assert misses == 12  # 4 x 4 minus the diagonal, whose cells are equal and bypass the cache
    assert cached.cache.stats["bypassed"] == 4
    second = cached.table(PLACES)
    np.testing.assert_array_equal(second.durations_s, truth.durations_s)
    assert cached.cache.stats["hits"] == 12
    assert cached.cache.stats["misses"] == misses


def test_loader_reports_a_corrupt_artefact_and_serves_the_good_one(
    graph_dir: Callable[[str, str], Path], tmp_path: Path
) -> None:
    import shutil

    from hexcity.bootstrap import start_loading

    good = graph_dir("andorra", "car")
    bad = tmp_path / "foot"
    shutil.copytree(graph_dir("andorra", "foot"), bad)
    (bad / "arc_head.npy").write_bytes(b"garbage")
    service = RoutingService(Limits())
    start_loading(service, RoutingSettings(), graphs=[good, bad]).join(timeout=120)
    status = service.status()
    assert status["ready"] is False
    profiles = status["profiles"]
    assert isinstance(profiles, dict)
    assert profiles["car"]["state"] == "ready"
    assert profiles["foot"] == {
        "state": "failed",
        "error": f"artefact {bad}: checksum mismatch for arc_head.npy (corrupt or modified)",
    }
    assert service.get("car").route([PLACES[0], PLACES[1]]).duration_s > 0
