"""Routing errors. Codes follow OSRM v5 where OSRM has one, so OSRM clients understand them."""

from __future__ import annotations

from hexcity.kernel import HexcityError, InvalidInput, Unavailable


class RoutingError(HexcityError):
    """Base of routing errors."""

    code = "RoutingError"
    status = 400


class InvalidUrl(RoutingError, InvalidInput):
    code = "InvalidUrl"


class InvalidService(RoutingError, InvalidInput):
    code = "InvalidService"


class InvalidVersion(RoutingError, InvalidInput):
    code = "InvalidVersion"


class InvalidQuery(RoutingError, InvalidInput):
    """Malformed coordinates or query string."""

    code = "InvalidQuery"


class InvalidValue(RoutingError, InvalidInput):
    """A well-formed value out of its range (latitude 91, number=0, ...)."""

    code = "InvalidValue"


class InvalidOptions(RoutingError, InvalidInput):
    """Options that contradict each other (e.g. more radiuses than coordinates)."""

    code = "InvalidOptions"


class UnknownProfile(RoutingError, InvalidInput):
    code = "InvalidProfile"


class NoSegment(RoutingError):
    """A coordinate is farther than the snap radius from every road of the profile."""

    code = "NoSegment"


class NoRoute(RoutingError):
    """No path between the given points on this profile."""

    code = "NoRoute"


class TooBig(RoutingError):
    """The request exceeds a configured size limit."""

    code = "TooBig"


class Overloaded(RoutingError, Unavailable):
    """Every search workspace stayed busy past the queue timeout: retry after a moment (429)."""

    code = "Overloaded"
    status = 429


class MapFileError(RoutingError):
    """The map file is missing, truncated or not an OSM PBF/XML file."""

    code = "InvalidMapFile"


class ArtefactError(RoutingError):
    """A graph artefact is missing files, corrupt (checksum) or has a malformed manifest."""

    code = "InvalidArtefact"
    status = 500


class ArtefactVersionError(ArtefactError):
    """A graph artefact was written by an incompatible format version."""

    code = "ArtefactVersionMismatch"


class NotReady(RoutingError, Unavailable):
    """The graph for this profile is still loading."""

    code = "NotReady"
    status = 503
