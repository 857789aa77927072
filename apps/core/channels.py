"""The one channel vocabulary (docs/RULES.md "Channels") and the subsets each slice accepts.

:class:`Channel` names every channel any slice stores, once, with one label. A slice never defines a
channel of its own: it picks its subset here, and its model fields, serializers, admin filters and
validation use that subset's ``choices`` / ``values``:

* :class:`CampaignChannel` — where a campaign runs (``Campaign.channels``, approval-rule channels).
* :class:`DeliveryChannel` — what omnichannel activates and sends, in the order of the cascade
  (docs/RULES.md §5).
* :class:`SuppressionChannel` — what a suppression entry covers (``all`` covers every channel).
* :class:`LoyaltyChannel` — a loyalty member's preferred purchase channel (docs/RULES.md §2).
* :data:`BIDDABLE_CHANNELS` — the campaign channels the bidder serves (OpenRTB impressions).

Every subset is itself a ``TextChoices`` whose members *are* the vocabulary's values (``"email"`` in
each), so a value moves between slices unchanged: ``DeliveryChannel.EMAIL == SuppressionChannel.EMAIL
== "email"``. Adding a channel to a subset is one line here (and a migration for the ``choices``).
"""
from __future__ import annotations

from django.db import models


class Channel(models.TextChoices):
    DISPLAY = "display", "Display (OpenRTB)"
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"
    WHATSAPP = "whatsapp", "WhatsApp"
    PUSH = "push", "Push"
    IN_APP = "in_app", "In-app"
    WEB = "web", "Web"
    IN_STORE = "in_store", "In-store"
    PAID_MEDIA = "paid_media", "Paid media"
    APP = "app", "Mobile app"
    DRIVE_THROUGH = "drive_through", "Drive-through"
    ALL = "all", "All channels"


def _subset(name: str, *members: Channel) -> type[models.TextChoices]:
    """A ``TextChoices`` of ``members`` (same names, values and labels as in :class:`Channel`), in
    the order given."""
    return models.TextChoices(name, [(m.name, (m.value, m.label)) for m in members], module=__name__)


CampaignChannel = _subset(
    "CampaignChannel",
    Channel.DISPLAY, Channel.EMAIL, Channel.SMS, Channel.WHATSAPP, Channel.PUSH, Channel.IN_APP, Channel.WEB,
    Channel.IN_STORE, Channel.PAID_MEDIA,
)
DeliveryChannel = _subset(
    "DeliveryChannel",
    Channel.IN_STORE, Channel.PUSH, Channel.IN_APP, Channel.SMS, Channel.EMAIL, Channel.WEB, Channel.PAID_MEDIA,
)
SuppressionChannel = _subset(
    "SuppressionChannel", Channel.EMAIL, Channel.SMS, Channel.PUSH, Channel.IN_APP, Channel.ALL,
)
LoyaltyChannel = _subset(
    "LoyaltyChannel", Channel.IN_STORE, Channel.APP, Channel.WEB, Channel.DRIVE_THROUGH,
)

#: Campaign channels the bidder answers bid requests for (a campaign needs one of them to bid).
BIDDABLE_CHANNELS: frozenset[str] = frozenset({Channel.DISPLAY.value})

