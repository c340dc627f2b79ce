"""In-process diagnostics behind the admin server: CPU profile, heap, task and thread dumps.

CPU profiles use pyinstrument (a required dependency; no ptrace privilege needed). pyinstrument
samples the thread that starts it, so :func:`profile_loop` starts and stops a
``Profiler(async_mode="disabled")`` ON THE TARGET EVENT LOOP'S THREAD via
``loop.call_soon_threadsafe``: the profile then shows every task and every synchronous call (the
routing queries run synchronously on the loop) that used the loop thread during the window.
Worker threads other than the loop thread are not in the CPU profile; use the thread dump for them.

Heap statistics use :mod:`tracemalloc`, started on demand: while tracing, every allocation is
recorded with its traceback (roughly +30-100 % CPU on allocation-heavy code and extra memory per
live block), so tracing stops by itself after a TTL.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import sys
import threading
import traceback
import tracemalloc
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from pyinstrument import Profiler, processors
from pyinstrument.renderers import HTMLRenderer, SpeedscopeRenderer

T = TypeVar("T")
ProfileFormat = Literal["speedscope", "html"]
LOOP_CALL_TIMEOUT_S = 5.0
MAX_TASKS = 2_000
MAX_FRAMES = 30


class LoopUnresponsive(Exception):
    """The target event loop did not run a callback in time (it is blocked)."""


async def call_on_loop(loop: asyncio.AbstractEventLoop, fn: Callable[[], T], *, always: bool = False) -> T:
    """Run ``fn`` on ``loop``'s thread and return its result, waiting at most 5 s.

    On a timeout, ``fn`` is skipped if the loop gets to it later, unless ``always`` (used to stop
    a profiler, which must happen even late).
    """
    try:
        if loop is asyncio.get_running_loop():
            return fn()
    except RuntimeError:  # no running loop here: fall through to the thread-safe path
        pass
    future: concurrent.futures.Future[T] = concurrent.futures.Future()

    def run() -> None:
        if not always and not future.set_running_or_notify_cancel():
            return  # the caller gave up: do not start anything nobody will stop
        try:
            result = fn()
        except BaseException as exc:
            with contextlib.suppress(concurrent.futures.InvalidStateError):
                future.set_exception(exc)
            return
        with contextlib.suppress(concurrent.futures.InvalidStateError):
            future.set_result(result)

    loop.call_soon_threadsafe(run)
    try:
        return await asyncio.wait_for(asyncio.wrap_future(future), LOOP_CALL_TIMEOUT_S)
    except TimeoutError as exc:
        future.cancel()
        raise LoopUnresponsive(f"event loop did not respond within {LOOP_CALL_TIMEOUT_S} s") from exc


async def profile_loop(
    loop: asyncio.AbstractEventLoop, seconds: float, fmt: ProfileFormat, interval_s: float = 0.001
) -> str:
    """Sample ``loop``'s thread for ``seconds`` and render the profile (speedscope JSON or HTML)."""
    profiler = Profiler(interval=interval_s, async_mode="disabled")
    await call_on_loop(loop, profiler.start)
    try:
        await asyncio.sleep(seconds)
    finally:
        session = await call_on_loop(loop, profiler.stop, always=True)
    renderer: SpeedscopeRenderer | HTMLRenderer
    if fmt == "speedscope":
        renderer = SpeedscopeRenderer()
        # speedscope is a timeline: calls are not aggregated, so on a busy loop every single call
        # is under the 1 % "irrelevant" threshold and the whole profile would be pruned away
        renderer.processors = [p for p in renderer.processors if p is not processors.remove_irrelevant_nodes]
    else:
        renderer = HTMLRenderer()
    # rendering a long session is CPU work: keep it off the event loop
    return await asyncio.to_thread(renderer.render, session)


class HeapTracer:
    """On-demand tracemalloc: start, snapshot top allocations, diff, stop after a TTL."""

    def __init__(self, frames: int = 10, ttl_s: float = 600.0) -> None:
        self.frames = frames
        self.ttl_s = ttl_s
        self._previous: tracemalloc.Snapshot | None = None
        self._started_here = False
        self._timer: asyncio.TimerHandle | None = None

    def snapshot(self, top: int, compare: bool = False) -> dict[str, Any]:
        """Top ``top`` allocation sites (or growth since the last snapshot with ``compare``)."""
        if not tracemalloc.is_tracing():
            tracemalloc.start(self.frames)
            self._started_here = True
            self._previous = None
            self._arm_ttl()
            return {
                "tracing": True,
                "started": True,
                "ttl_s": self.ttl_s,
                "note": "tracemalloc started now; request again later to see allocations "
                "(tracing costs CPU and memory and stops after ttl_s)",
                "top": [],
            }
        snap = tracemalloc.take_snapshot().filter_traces((tracemalloc.Filter(False, tracemalloc.__file__),))
        current, peak = tracemalloc.get_traced_memory()
        body: dict[str, Any] = {
            "tracing": True,
            "started": False,
            "traced_current_bytes": current,
            "traced_peak_bytes": peak,
        }
        if compare and self._previous is not None:
            diffs = snap.compare_to(self._previous, "lineno")[:top]
            body["top"] = [
                {"site": str(d.traceback[0]), "size_diff_bytes": d.size_diff, "count_diff": d.count_diff}
                for d in diffs
            ]
        else:
            stats = snap.statistics("lineno")[:top]
            body["top"] = [
                {"site": str(s.traceback[0]), "size_bytes": s.size, "count": s.count} for s in stats
            ]
        self._previous = snap
        return body

    def stop(self) -> bool:
        """Stop tracing if this tracer started it; whether it stopped."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._previous = None
        if self._started_here and tracemalloc.is_tracing():
            tracemalloc.stop()
            self._started_here = False
            return True
        return False

    def _arm_ttl(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._timer = loop.call_later(self.ttl_s, self.stop)


def _frames(frames: list[traceback.FrameSummary]) -> list[str]:
    return [f"{f.filename}:{f.lineno} in {f.name}" for f in frames[-MAX_FRAMES:]]


def task_dump(loop: asyncio.AbstractEventLoop) -> list[dict[str, Any]]:
    """Every task of ``loop`` with its coroutine and stack (call on the loop's thread)."""
    tasks = list(asyncio.all_tasks(loop))[:MAX_TASKS]
    out = []
    for task in tasks:
        stack = task.get_stack(limit=MAX_FRAMES)
        frames = [
            traceback.FrameSummary(f.f_code.co_filename, f.f_lineno, f.f_code.co_name, line=None)
            for f in stack
        ]
        coro = task.get_coro()
        out.append(
            {
                "name": task.get_name(),
                "coro": getattr(coro, "__qualname__", repr(coro)),
                "done": task.done(),
                "cancelling": task.cancelling(),
                "stack": _frames(frames),
            }
        )
    return out


def thread_dump() -> list[dict[str, Any]]:
    """Every thread of the process with its current stack."""
    frames = sys._current_frames()
    out = []
    for thread in threading.enumerate():
        frame = frames.get(thread.ident) if thread.ident is not None else None
        stack = traceback.extract_stack(frame, limit=MAX_FRAMES) if frame is not None else []
        out.append(
            {
                "name": thread.name,
                "ident": thread.ident,
                "daemon": thread.daemon,
                "stack": _frames(list(stack)),
            }
        )
    return out


def alloc_stats() -> dict[str, Any]:
    """Allocator and GC statistics: allocated blocks, GC generations, traced memory if tracing."""
    body: dict[str, Any] = {
        "allocated_blocks": sys.getallocatedblocks(),
        "gc_counts": list(gc.get_count()),
        "gc_thresholds": list(gc.get_threshold()),
        "gc_stats": gc.get_stats(),
        "tracemalloc": tracemalloc.is_tracing(),
    }
    if tracemalloc.is_tracing():
        current, peak = tracemalloc.get_traced_memory()
        body["traced_current_bytes"] = current
        body["traced_peak_bytes"] = peak
    return body
