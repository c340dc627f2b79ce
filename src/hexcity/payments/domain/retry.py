"""Bounded exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff And
Jitter", 2015): attempt ``n`` sleeps ``uniform(0, min(max_delay, base * 2^n))``.

A retried ledger transaction re-reads balances and re-checks every rule; the policy only says how
long to wait and when to give up (pitfall: blind automatic retry loses updates, Jepsen TiDB 2.1.7).
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``max_attempts`` tries in all (the first included); delays in seconds."""

    max_attempts: int = 5
    base_delay_s: float = 0.025
    max_delay_s: float = 0.5

    def __post_init__(self) -> None:
        if not 1 <= self.max_attempts <= 100:
            raise ValueError("max_attempts must be within 1..100")
        if not 0 <= self.base_delay_s <= self.max_delay_s <= 60:
            raise ValueError("need 0 <= base_delay_s <= max_delay_s <= 60")

    def delay_s(self, attempt: int, rng: random.Random) -> float:
        """Sleep before retry number ``attempt`` (1 = first retry): full jitter, capped."""
        cap = min(self.max_delay_s, self.base_delay_s * (2 ** max(0, attempt - 1)))
        return rng.uniform(0.0, cap)
