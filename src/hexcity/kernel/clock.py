"""Time as the platform sees it: the wall clock, or a manual clock that only a caller advances.

Every time-dependent decision (batching windows, offer timeouts, rate limits, expiry) reads a
:class:`Clock` instead of ``time.time``. In production that is :class:`SystemClock`; under a
``ManualClock`` ("test clock", like Stripe's) time stands still until ``advance``/``set`` moves
it, so a seeded simulation gives the same outcome twice. Standard library only.
"""

from __future__ import annotations

import math
import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "ManualClock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """A source of the current time."""

    def now(self) -> float:
        """Epoch seconds."""
        ...


class SystemClock:
    """The wall clock: ``now()`` is ``time.time()``."""

    def now(self) -> float:
        return time.time()

    def __repr__(self) -> str:
        return "SystemClock()"


class ManualClock:
    """A clock that moves only when told to; never backwards."""

    def __init__(self, start_s: float) -> None:
        self._now = _finite("start_s", start_s)

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` (>= 0); returns the new now."""
        if _finite("seconds", seconds) < 0:
            raise ValueError(f"a clock cannot go backwards (seconds={seconds})")
        self._now += seconds
        return self._now

    def set(self, when_s: float) -> None:
        """Jump to ``when_s``; raises ValueError if that is before now."""
        if _finite("when_s", when_s) < self._now:
            raise ValueError(f"a clock cannot go backwards ({when_s} < {self._now})")
        self._now = when_s

    def __repr__(self) -> str:
        return f"ManualClock(now={self._now!r})"


def _finite(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return value
