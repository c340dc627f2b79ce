"""Prometheus metric families for worker pools: one family per name, the pool name as a label.

Families are created lazily, once per :class:`~prometheus_client.CollectorRegistry`, so two pools
that share a name (or a test that builds many pools) never trip prometheus-client's
"Duplicated timeseries" error. The default registry is :data:`POOL_REGISTRY`, a module-level
object the HTTP edge can expose at ``/metrics`` (``prometheus_client.make_asgi_app(POOL_REGISTRY)``).
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

POOL_REGISTRY = CollectorRegistry(auto_describe=True)
"""Default registry for pool metrics; mount it at ``/metrics``."""

# Job durations of webhook-style handlers: 1 ms .. 60 s.
DURATION_BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass(frozen=True, slots=True)
class PoolMetricFamilies:
    """The per-registry metric families, each labelled by ``pool``."""

    submitted: Counter
    dropped: Counter
    failed: Counter
    queue_depth: Gauge
    saturation: Gauge
    in_flight: Gauge
    duration_s: Histogram


_families: weakref.WeakKeyDictionary[CollectorRegistry, PoolMetricFamilies] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def pool_metric_families(registry: CollectorRegistry | None = None) -> PoolMetricFamilies:
    """The pool metric families registered on ``registry`` (default :data:`POOL_REGISTRY`), created once."""
    reg = POOL_REGISTRY if registry is None else registry
    with _lock:
        fams = _families.get(reg)
        if fams is None:
            fams = PoolMetricFamilies(
                submitted=Counter(
                    "jobs_submitted", "Jobs accepted into a worker pool queue.", ["pool"], registry=reg
                ),
                dropped=Counter(
                    "jobs_dropped",
                    "Jobs refused because the pool queue was full (alert if > 0).",
                    ["pool"],
                    registry=reg,
                ),
                failed=Counter(
                    "jobs_failed", "Jobs whose handler raised; the worker carried on.", ["pool"], registry=reg
                ),
                queue_depth=Gauge("queue_depth", "Jobs waiting in the pool queue.", ["pool"], registry=reg),
                saturation=Gauge(
                    "queue_saturation", "Queue depth / capacity (0..1); 429 from 0.8.", ["pool"], registry=reg
                ),
                in_flight=Gauge("jobs_in_flight", "Jobs being handled right now.", ["pool"], registry=reg),
                duration_s=Histogram(
                    "job_duration_seconds",
                    "Handler run time per job.",
                    ["pool"],
                    registry=reg,
                    buckets=DURATION_BUCKETS_S,
                ),
            )
            _families[reg] = fams
        return fams
