"""First-party surfaces: the in-app, web and in-store messages our own apps and screens fetch."""
from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from ..models import Channel, InboxMessage
from .contacts import _clean_user_id
from .sends import send_mark_delivered


def inbox_fetch(*, channel: str, user_id: str | None = None, store_id: str | None = None,
                limit: int = 20) -> list[InboxMessage]:
    """Messages for the app (in_app), the web site (web) or a store's screens (in_store), newest first.
    The first fetch of a message is its delivery."""
    now = timezone.now()
    qs = InboxMessage.objects.filter(channel=channel, expires_at__gt=now)
    if channel == Channel.IN_STORE:
        qs = qs.filter(store_id=store_id)
    else:
        qs = qs.filter(user_id=_clean_user_id(user_id))
    messages = list(qs.select_related("send").order_by("-created_at", "-id")[:limit])
    fresh = [m for m in messages if m.fetched_at is None]
    if fresh:
        with transaction.atomic():
            InboxMessage.objects.filter(pk__in=[m.pk for m in fresh], fetched_at__isnull=True).update(fetched_at=now)
            for message in fresh:
                message.fetched_at = now
                send_mark_delivered(send=message.send, source=f"{channel} fetch")
    return messages
