"""The base of every module's error tree.

Each error carries a stable machine-readable ``code`` and an HTTP ``status``; the HTTP layer maps
them to a JSON body and never shows a stack trace to a caller.
"""

from __future__ import annotations


class HexcityError(Exception):
    """Base of all hexcity errors."""

    code: str = "InternalError"
    status: int = 500

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class InvalidInput(HexcityError):
    """The caller sent something we cannot accept."""

    code = "InvalidInput"
    status = 400


class NotFound(HexcityError):
    """The thing asked for does not exist."""

    code = "NotFound"
    status = 404


class Unavailable(HexcityError):
    """The service cannot answer now (not ready, overloaded, shutting down)."""

    code = "Unavailable"
    status = 503
