"""The operations dashboard: a live map of the city drawn from our own road network.

Served by the app (no CDN, no tile server): ``/dashboard`` (page), ``/web/static/*`` (vendored
MapLibre GL JS and the page's script), ``/web/v1/roads.geojson``, ``/web/v1/live`` (SSE fed from the
platform bus by :class:`LiveFeed`). Business modules add panels with
``PanelRegistry.register``. The page's support chat (``chat.js``) talks to ``/assistant/v1`` as the
demo customer. See docs/demo.md.
"""

from hexcity.web.http import (
    DEMO_CUSTOMER_TOKEN_PATH,
    DEMO_TOKEN_PATH,
    build_web_router,
    static_files,
    web_public_paths,
)
from hexcity.web.live import FEED_GROUP, FEED_TOPICS, FeedLimits, LiveFeed
from hexcity.web.panels import EXPECTED_PANELS, Panel, PanelRegistry
from hexcity.web.roads import RoadsCache, bounds_of, roads_geojson

__all__ = [
    "DEMO_CUSTOMER_TOKEN_PATH",
    "DEMO_TOKEN_PATH",
    "EXPECTED_PANELS",
    "FEED_GROUP",
    "FEED_TOPICS",
    "FeedLimits",
    "LiveFeed",
    "Panel",
    "PanelRegistry",
    "RoadsCache",
    "bounds_of",
    "build_web_router",
    "roads_geojson",
    "static_files",
    "web_public_paths",
]
