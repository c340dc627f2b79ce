"""``GracefulShutdown``: the SIGTERM sequence of operations.md §2.8.

1. mark not-ready (readiness answers 503, liveness stays 200, pitfall 3);
2. keep serving for the ``preStop`` delay (default 15 s) so the endpoints controller removes the pod;
3. stop accepting: run the ``on_stop_accepting`` hooks (e.g. uvicorn server shutdown), each bounded
   by ``stop_accepting_timeout_s`` (default 10 s);
4. drain the registered pools concurrently, bounded by ``drain_deadline_s``; jobs still running at
   the deadline are cancelled and counted;
5. run the ``on_drained`` hooks: commit offsets/acks for **completed** work only;
6. set :attr:`done` so the process can exit.

Set ``terminationGracePeriodSeconds >= pre_stop_delay_s + stop_accepting_timeout_s +
drain_deadline_s`` (e.g. 15 + 10 + 30 -> 60 s).
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from hexcity.infra.concurrency.pool import DrainReport
from hexcity.infra.logging import get_logger

log = get_logger(__name__)
Hook = Callable[[], Awaitable[Any]]


class Drainable(Protocol):
    """Anything with a ``name`` and an async ``drain(deadline_s)``; ``WorkerPool`` is one."""

    name: str

    async def drain(self, deadline_s: float = ...) -> DrainReport: ...


@dataclass(slots=True)
class ShutdownReport:
    """What :meth:`GracefulShutdown.shutdown` did, step by step."""

    drains: dict[str, DrainReport] = field(default_factory=dict)
    hook_errors: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0


class GracefulShutdown:
    """Coordinates readiness, the preStop delay, server stop, pool drains and final commits."""

    def __init__(
        self,
        *,
        pre_stop_delay_s: float = 15.0,
        stop_accepting_timeout_s: float = 10.0,
        drain_deadline_s: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.pre_stop_delay_s = pre_stop_delay_s
        self.stop_accepting_timeout_s = stop_accepting_timeout_s
        self.drain_deadline_s = drain_deadline_s
        self._sleep = sleep
        self._pools: list[Drainable] = []
        self._stop_accepting: list[Hook] = []
        self._drained: list[Hook] = []
        self._ready = True
        self._task: asyncio.Task[ShutdownReport] | None = None
        self.done = asyncio.Event()

    @property
    def ready(self) -> bool:
        """False from the first step on; wire into ``/health/ready`` (never into liveness)."""
        return self._ready

    @property
    def started(self) -> bool:
        return self._task is not None

    def register(self, pool: Drainable) -> None:
        """Drain ``pool`` at step 4."""
        self._pools.append(pool)

    def on_stop_accepting(self, hook: Hook) -> None:
        """Run ``hook`` at step 3 (stop the HTTP server, stop consuming)."""
        self._stop_accepting.append(hook)

    def on_drained(self, hook: Hook) -> None:
        """Run ``hook`` at step 5 (commit offsets/acks of completed work, close clients)."""
        self._drained.append(hook)

    def install(self, signals: Iterable[signal.Signals] = (signal.SIGTERM, signal.SIGINT)) -> None:
        """Start :meth:`shutdown` when one of ``signals`` arrives (Unix event loops only)."""
        loop = asyncio.get_running_loop()
        for sig in signals:
            loop.add_signal_handler(sig, self.trigger)

    def trigger(self) -> asyncio.Task[ShutdownReport]:
        """Start the sequence in the background (idempotent) and return its task."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._sequence(), name="graceful-shutdown")
        return self._task

    async def shutdown(self) -> ShutdownReport:
        """Run (or join) the sequence and return its report."""
        return await self.trigger()

    async def _sequence(self) -> ShutdownReport:
        report = ShutdownReport()
        start = time.perf_counter()
        self._ready = False
        log.info("shutdown_not_ready", pre_stop_delay_s=self.pre_stop_delay_s)
        await self._sleep(self.pre_stop_delay_s)
        await self._run_hooks(self._stop_accepting, self.stop_accepting_timeout_s, report)
        drains = await asyncio.gather(*(p.drain(self.drain_deadline_s) for p in self._pools))
        report.drains = {p.name: d for p, d in zip(self._pools, drains, strict=True)}
        await self._run_hooks(self._drained, self.stop_accepting_timeout_s, report)
        report.elapsed_s = time.perf_counter() - start
        log.info("shutdown_done", elapsed_s=round(report.elapsed_s, 3), errors=len(report.hook_errors))
        self.done.set()
        return report

    async def _run_hooks(self, hooks: list[Hook], timeout_s: float, report: ShutdownReport) -> None:
        for hook in hooks:
            name = getattr(hook, "__qualname__", repr(hook))
            try:
                async with asyncio.timeout(timeout_s):
                    await hook()
            except Exception as exc:  # a failing hook must not stop the rest of the sequence
                report.hook_errors.append(f"{name}: {type(exc).__name__}: {exc}")
                log.exception("shutdown_hook_failed", hook=name)
