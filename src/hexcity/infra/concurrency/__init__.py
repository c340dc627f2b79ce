"""Bounded concurrency toolkit: worker pools, errgroups, weighted and rate limiters, shutdown.

Every module uses these instead of ad-hoc ``create_task`` loops (operations.md §2.4-2.9);
``docs/concurrency.md`` says which to use when.
"""

from hexcity.infra.concurrency.errgroup import ErrGroup
from hexcity.infra.concurrency.errors import PoolClosedError, TooManyWaitersError
from hexcity.infra.concurrency.limiter import ConcurrencyLimiter
from hexcity.infra.concurrency.metrics import POOL_REGISTRY, PoolMetricFamilies, pool_metric_families
from hexcity.infra.concurrency.pool import DrainReport, PoolStats, WorkerPool
from hexcity.infra.concurrency.ratelimit import RateLimiter
from hexcity.infra.concurrency.shutdown import Drainable, GracefulShutdown, ShutdownReport

__all__ = [
    "POOL_REGISTRY",
    "ConcurrencyLimiter",
    "DrainReport",
    "Drainable",
    "ErrGroup",
    "GracefulShutdown",
    "PoolClosedError",
    "PoolMetricFamilies",
    "PoolStats",
    "RateLimiter",
    "ShutdownReport",
    "TooManyWaitersError",
    "WorkerPool",
    "pool_metric_families",
]
