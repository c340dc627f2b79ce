"""Road routing on OpenStreetMap: import, contraction hierarchies, route/table/nearest/isochrone.

The only door other modules may use. See docs/routing.md.
"""

from hexcity.routing.adapters.artefact import Artefact, load_artefact, read_manifest
from hexcity.routing.domain.engine import Leg, Route, Table
from hexcity.routing.domain.isochrone import Contour
from hexcity.routing.domain.profiles import PROFILES, canonical_profile_name
from hexcity.routing.domain.snapping import Snap
from hexcity.routing.errors import (
    ArtefactError,
    ArtefactVersionError,
    MapFileError,
    NoRoute,
    NoSegment,
    NotReady,
    RoutingError,
    TooBig,
    UnknownProfile,
)
from hexcity.routing.http import build_routes
from hexcity.routing.pipeline import BuildResult, build_graph, cached_graph_dir
from hexcity.routing.service import Limits, RoutingEngine, RoutingService
from hexcity.routing.settings import RoutingSettings

__all__ = [
    "PROFILES",
    "Artefact",
    "ArtefactError",
    "ArtefactVersionError",
    "BuildResult",
    "Contour",
    "Leg",
    "Limits",
    "MapFileError",
    "NoRoute",
    "NoSegment",
    "NotReady",
    "Route",
    "RoutingEngine",
    "RoutingError",
    "RoutingService",
    "RoutingSettings",
    "Snap",
    "Table",
    "TooBig",
    "UnknownProfile",
    "build_graph",
    "build_routes",
    "cached_graph_dir",
    "canonical_profile_name",
    "load_artefact",
    "read_manifest",
]
