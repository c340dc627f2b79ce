"""Dispatch errors (stable codes)."""

from __future__ import annotations

from hexcity.kernel import HexcityError, InvalidInput


class DispatchError(HexcityError):
    code = "DispatchError"
    status = 400


class InvalidPing(DispatchError, InvalidInput):
    """A location report that cannot be accepted (bad coordinates, unknown fields, ...)."""

    code = "InvalidPing"
