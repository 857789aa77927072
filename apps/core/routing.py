"""Routing for the web process's ASGI app: websocket routes, and the bid app's paths."""
from __future__ import annotations

from django.urls import path

from apps.analytics.consumers import LiveStatsConsumer

websocket_urlpatterns: list = [
    path("ws/analytics/live/", LiveStatsConsumer.as_asgi()),  # analytics live view (staff only)
]

# The bid app's public paths (apps.bidding.asgi); its /ready, /live and /metrics stay Django's here.
BID_PATH_PREFIXES = ("/v1/bid", "/v1/win", "/v1/click")


def bid_paths(path: str):
    """The bid ASGI app when ``path`` belongs to it, else None (Django handles the request)."""
    if path.startswith(BID_PATH_PREFIXES):
        from apps.bidding.asgi import app

        return app
    return None
