"""The two refusals of the access layer, as :class:`hexcity.kernel.HexcityError` subclasses."""

from __future__ import annotations

from hexcity.kernel import HexcityError


class AuthError(HexcityError):
    """Base of the access errors; the app answers them with ``{"code", "message"}`` JSON."""


class Unauthenticated(AuthError):
    """No credentials, or credentials that do not verify (expired, forged, unknown key...)."""

    code = "Unauthenticated"
    status = 401


class Forbidden(AuthError):
    """Valid credentials that do not grant this operation or this tenant's data."""

    code = "Forbidden"
    status = 403
