"""Live view over a websocket (Django Channels): every ``ANALYTICS_LIVE_INTERVAL_MS`` (1000) the
consumer pushes bids/s, no-bids/s and p50/p99 latency for the last 60 seconds
(``selectors.live_stats``) to the page at ``/admin/analytics/dashboard/live/``.

Only signed-in active staff holding the Marketer or Approver role (or Admin) may connect, with a
session verified by an authenticator code where STAFF_2FA_REQUIRED asks for one; others are closed
with code 4403. The session cookie authenticates (``AuthMiddlewareStack`` in config/asgi.py).
"""
from __future__ import annotations

import asyncio
import contextlib

import structlog
from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

log = structlog.get_logger(__name__)


def _allowed(user, session=None) -> bool:
    from apps.core.auth import session_meets_two_factor
    from apps.core.roles import Role, user_has_role

    # The websocket does not pass through Django's middleware: the staff two-factor rule
    # (STAFF_2FA_REQUIRED) is checked here as apps.core.auth's middleware checks it for pages.
    return bool(user and user.is_authenticated and user.is_active and user.is_staff
                and user_has_role(user, Role.MARKETER, Role.APPROVER)
                and session_meets_two_factor(user, session))


def _stats() -> dict:
    from apps.analytics import selectors
    from apps.core import clickhouse as ch

    try:
        return selectors.live_stats(seconds=60)
    except ch.ClickHouseError as exc:
        return {"error": f"ClickHouse unavailable ({type(exc).__name__})"}


class LiveStatsConsumer(AsyncJsonWebsocketConsumer):
    # Pushes come from its own loop, not from group messages: no channel layer subscription (saves a
    # blocking Redis read per connection and keeps the page alive when the layer's Redis is slow).
    channel_layer_alias = None

    async def connect(self) -> None:
        if not await sync_to_async(_allowed)(self.scope.get("user"), self.scope.get("session")):
            await self.close(code=4403)
            return
        await self.accept()
        self._pusher = asyncio.ensure_future(self._push())

    async def disconnect(self, code) -> None:
        pusher = getattr(self, "_pusher", None)
        if pusher is not None:
            pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pusher

    async def receive_json(self, content, **kwargs) -> None:
        """Clients only listen; anything they send is ignored."""

    async def _push(self) -> None:
        interval = settings.ANALYTICS_LIVE_INTERVAL_MS / 1000
        while True:
            # the ClickHouse driver is blocking: run it on a worker thread, never on the event loop
            data = await asyncio.to_thread(_stats)
            await self.send_json(data)
            await asyncio.sleep(interval)
