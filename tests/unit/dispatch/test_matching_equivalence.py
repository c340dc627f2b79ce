"""The KD-tree candidate ranking returns exactly what the previous dense ranking returned.

The oracle is the previous ``build_shards`` kept verbatim in ``benchmarks/dispatch_matching_legacy.py``
(dense rider × pool distance matrices, Python loops). Pinned digests were produced by the previous
``match_batch`` (before the rewrite) on the same seeded instances.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import h3
import numpy as np
import pytest

from hexcity.dispatch.domain.matching import Driver, MatchParams, Rider, Shard, build_shards, match_batch
from hexcity.dispatch.domain.sharding import local_distance_m, rank_candidates
from hexcity.kernel import LatLng, haversine_m

_LEGACY = Path(__file__).resolve().parents[3] / "benchmarks" / "dispatch_matching_legacy.py"


def _load_legacy() -> Callable[[Sequence[Rider], Sequence[Driver], MatchParams], list[Shard]]:
    spec = importlib.util.spec_from_file_location("dispatch_matching_legacy", _LEGACY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["dispatch_matching_legacy"] = module
    spec.loader.exec_module(module)
    fn: Callable[[Sequence[Rider], Sequence[Driver], MatchParams], list[Shard]] = module.legacy_build_shards
    return fn


legacy_build_shards = _load_legacy()


def haversine_eta(drivers: Sequence[LatLng], riders: Sequence[LatLng]) -> np.ndarray:
    return np.array([[haversine_m(d, r) / 8.0 for r in riders] for d in drivers], dtype=np.float64).reshape(
        len(drivers), len(riders)
    )


def fleet(
    seed: int, n: int, m: int, span_deg: float, *, center: tuple[float, float] = (49.41, 8.69)
) -> tuple[list[Rider], list[Driver]]:
    rng = np.random.default_rng(seed)
    rl = rng.uniform(-span_deg, span_deg, size=(n, 2))
    dl = rng.uniform(-span_deg, span_deg, size=(m, 2))
    riders = [Rider(f"r{i}", center[0] + a, center[1] + b) for i, (a, b) in enumerate(rl)]
    drivers = [
        Driver(f"d{j}", center[0] + a, center[1] + b, bearing_deg=float(rng.uniform(0, 360)))
        for j, (a, b) in enumerate(dl)
    ]
    return riders, drivers


def key(shards: list[Shard]) -> list[tuple[Any, ...]]:
    return [
        (s.zone, [r.id for r in s.riders], [d.id for d in s.drivers], [sorted(c) for c in s.candidates])
        for s in shards
    ]


CASES = [
    # seed, riders, drivers, span (deg), params
    (1, 300, 900, 0.08, MatchParams()),
    (2, 300, 900, 0.08, MatchParams(lock_rule="own_zone")),
    (3, 400, 700, 0.01, MatchParams(max_riders_per_shard=20, max_drivers_per_shard=25)),
    (4, 400, 700, 0.01, MatchParams(lock_rule="own_zone", max_riders_per_shard=20, max_drivers_per_shard=25)),
    (5, 50, 2000, 0.3, MatchParams(candidates_per_rider=5)),
    (6, 120, 40, 0.05, MatchParams()),  # pools smaller than k: dense path
    (7, 200, 600, 0.02, MatchParams(candidates_per_rider=1, max_riders_per_shard=7)),
]


@pytest.mark.parametrize(("seed", "n", "m", "span", "params"), CASES)
def test_same_shards_as_legacy(seed: int, n: int, m: int, span: float, params: MatchParams) -> None:
    riders, drivers = fleet(seed, n, m, span)
    assert key(build_shards(riders, drivers, params)) == key(legacy_build_shards(riders, drivers, params))


def _spec_candidates(riders: list[Rider], drivers: list[Driver], k: int) -> list[list[int]]:
    """Brute force of the documented rule: k smallest (distance, driver index) in the zone ring."""
    out = []
    for r in riders:
        ring = set(h3.grid_disk(r.zone, 1))
        pool = [j for j, d in enumerate(drivers) if d.zone in ring]
        dist = local_distance_m(
            np.array([r.lat]),
            np.array([r.lng]),
            np.array([drivers[j].lat for j in pool]),
            np.array([drivers[j].lng for j in pool]),
        )[0]
        out.append(sorted(pool, key=lambda j: (dist[pool.index(j)], j))[:k])
    return out


def _ranked(riders: list[Rider], drivers: list[Driver], k: int) -> list[list[int]]:
    cand_j, _dist = rank_candidates(riders, drivers, k)
    return [[int(j) for j in row if j >= 0] for row in cand_j]


def test_exact_ties_broken_by_driver_index() -> None:
    """Drivers stacked on 12 points (taxi ranks) force exact ties at the k-th place and the dense
    fallback; the lower driver index wins (the legacy argpartition picked an arbitrary one)."""
    rng = np.random.default_rng(9)
    points = rng.uniform(-0.01, 0.01, size=(12, 2))
    drivers = [Driver(f"d{j:03d}", 49.41 + points[j % 12][0], 8.69 + points[j % 12][1]) for j in range(400)]
    riders = [Rider(f"r{i}", 49.41 + points[i % 5][0], 8.69 + points[i % 5][1]) for i in range(60)]
    got = _ranked(riders, drivers, 30)
    assert got == _spec_candidates(riders, drivers, 30)
    # rider 0 stands on rank 0, holding drivers 0, 12, 24, ...: those 34 tie at 0 m, the first 30 win
    assert got[0] == list(range(0, 360, 12))


def test_ranking_equals_brute_force_on_random_fleets() -> None:
    for seed in range(6):
        riders, drivers = fleet(100 + seed, 40, 300, 0.03 * (seed + 1))
        for k in (1, 7, 30):
            assert _ranked(riders, drivers, k) == _spec_candidates(riders, drivers, k)


def test_same_shards_far_north() -> None:
    """At 78°N the projection factor is larger than in Heidelberg; still exact (Longyearbyen)."""
    riders, drivers = fleet(11, 150, 600, 0.2, center=(78.22, 15.65))
    assert key(build_shards(riders, drivers, MatchParams())) == key(
        legacy_build_shards(riders, drivers, MatchParams())
    )


def test_candidates_are_nearest_within_zone_ring() -> None:
    riders, drivers = fleet(12, 80, 500, 0.05)
    for s in build_shards(riders, drivers, MatchParams(candidates_per_rider=10)):
        ring = set(h3.grid_disk(s.zone, 1))
        assert all(d.zone in ring for d in s.drivers)
        assert all(len(c) <= 10 for c in s.candidates)


@pytest.mark.parametrize(
    ("seed", "rule", "matched", "digest", "total_eta_s"),
    [
        (2024, "nearest_rider", 150, "e94961a19068d71a", 4589.593005),
        (2025, "own_zone", 150, "617ab2806cb1d586", 4995.977131),
    ],
)
def test_assignments_pinned_to_previous_version(
    seed: int, rule: Literal["nearest_rider", "own_zone"], matched: int, digest: str, total_eta_s: float
) -> None:
    riders, drivers = fleet(seed, 150, 300, 0.03)
    params = MatchParams(lock_rule=rule, max_riders_per_shard=20, max_drivers_per_shard=40)
    got = match_batch(riders, drivers, haversine_eta, params)
    pairs = ",".join(f"{a.rider_id}:{a.driver_id}" for a in got)
    assert len(got) == matched
    assert hashlib.sha256(pairs.encode()).hexdigest()[:16] == digest
    assert sum(a.eta_s for a in got) == pytest.approx(total_eta_s, abs=1e-6)
    assert len(build_shards(riders, drivers, params)) == 11
