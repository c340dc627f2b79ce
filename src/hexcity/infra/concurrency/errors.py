"""Errors raised by the concurrency toolkit."""

from __future__ import annotations

from hexcity.kernel import HexcityError


class PoolClosedError(HexcityError):
    """The pool is draining or stopped and takes no new work."""

    code = "PoolClosed"
    status = 503


class TooManyWaitersError(HexcityError):
    """A limiter's bounded wait queue is full; shed the work instead of queueing it."""

    code = "Overloaded"
    status = 429
