"""Prometheus metric families of the push hub, created once per registry (injectable, no globals)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from hexcity.infra.metrics import once_per_registry

__all__ = ["LATENCY_BUCKETS_S", "PushMetrics", "push_metrics"]

# decision -> socket latency: 0.5 ms .. 5 s (target p99 200 ms)
LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0)


@dataclass(frozen=True, slots=True)
class PushMetrics:
    sent: Counter
    delivered: Counter
    replayed: Counter
    heartbeats: Counter
    fallback: Counter
    dropped: Counter
    directory_errors: Counter
    connected: Gauge
    latency_s: Histogram


@once_per_registry
def push_metrics(registry: CollectorRegistry) -> PushMetrics:
    """The push metric families on ``registry``, created once per registry."""
    p = "dispatch_push_"
    return PushMetrics(
        sent=Counter(f"{p}sent", "Messages sequenced by the push hub.", registry=registry),
        delivered=Counter(f"{p}delivered", "Messages written to a socket.", registry=registry),
        replayed=Counter(f"{p}replayed", "Unacked messages replayed on connect.", registry=registry),
        heartbeats=Counter(f"{p}heartbeats", "Heartbeat frames written.", registry=registry),
        fallback=Counter(
            f"{p}fallback", "Messages handed to APNs/FCM, by reason.", ["reason"], registry=registry
        ),
        dropped=Counter(
            f"{p}dropped",
            "Messages lost: unacked evicted from a full ring, or the fallback failed.",
            ["reason"],
            registry=registry,
        ),
        directory_errors=Counter(
            f"{p}directory_errors", "Failed connection directory calls.", registry=registry
        ),
        connected=Gauge(f"{p}connected", "Clients with a live connection here.", registry=registry),
        latency_s=Histogram(
            f"{p}latency_seconds",
            "From send() (the dispatch decision) to the frame written to the socket.",
            registry=registry,
            buckets=LATENCY_BUCKETS_S,
        ),
    )
