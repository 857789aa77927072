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

Every subset is itself a ``TextChoices`` whose members *are* the vocabulary's values and labels (``"email"`` in
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


# Each subset names its members explicitly (a type checker sees them) and takes value and label from
# Channel, so the vocabulary keeps one owner.
class CampaignChannel(models.TextChoices):
    """Where a campaign runs."""

    DISPLAY = Channel.DISPLAY.value, Channel.DISPLAY.label
    EMAIL = Channel.EMAIL.value, Channel.EMAIL.label
    SMS = Channel.SMS.value, Channel.SMS.label
    WHATSAPP = Channel.WHATSAPP.value, Channel.WHATSAPP.label
    PUSH = Channel.PUSH.value, Channel.PUSH.label
    IN_APP = Channel.IN_APP.value, Channel.IN_APP.label
    WEB = Channel.WEB.value, Channel.WEB.label
    IN_STORE = Channel.IN_STORE.value, Channel.IN_STORE.label
    PAID_MEDIA = Channel.PAID_MEDIA.value, Channel.PAID_MEDIA.label


class DeliveryChannel(models.TextChoices):
    """What omnichannel activates and sends, in the order of the cascade."""

    IN_STORE = Channel.IN_STORE.value, Channel.IN_STORE.label
    PUSH = Channel.PUSH.value, Channel.PUSH.label
    IN_APP = Channel.IN_APP.value, Channel.IN_APP.label
    SMS = Channel.SMS.value, Channel.SMS.label
    EMAIL = Channel.EMAIL.value, Channel.EMAIL.label
    WEB = Channel.WEB.value, Channel.WEB.label
    PAID_MEDIA = Channel.PAID_MEDIA.value, Channel.PAID_MEDIA.label


class SuppressionChannel(models.TextChoices):
    """What a suppression entry covers (``all``: every channel)."""

    EMAIL = Channel.EMAIL.value, Channel.EMAIL.label
    SMS = Channel.SMS.value, Channel.SMS.label
    PUSH = Channel.PUSH.value, Channel.PUSH.label
    IN_APP = Channel.IN_APP.value, Channel.IN_APP.label
    ALL = Channel.ALL.value, Channel.ALL.label


class LoyaltyChannel(models.TextChoices):
    """A loyalty member's preferred purchase channel."""

    IN_STORE = Channel.IN_STORE.value, Channel.IN_STORE.label
    APP = Channel.APP.value, Channel.APP.label
    WEB = Channel.WEB.value, Channel.WEB.label
    DRIVE_THROUGH = Channel.DRIVE_THROUGH.value, Channel.DRIVE_THROUGH.label


#: Campaign channels the bidder answers bid requests for (a campaign needs one of them to bid).
BIDDABLE_CHANNELS: frozenset[str] = frozenset({Channel.DISPLAY.value})

