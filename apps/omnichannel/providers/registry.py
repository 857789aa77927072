"""The one table of providers (CONVENTIONS §19): the cascade asks it how a channel reaches a user, the
send path asks it how to call a ledger row's provider. Adding a provider is a module with its
``SPEC`` and a line here."""
from __future__ import annotations

from ..models import Channel, Provider
from . import apns, fcm, inbox, sendgrid, twilio
from .spec import ChannelRoute, ProviderSpec

PAID_MEDIA_REASON = "paid media retargeting is run by the DSP integration, not sent by the activation dispatcher"

# Channel → the providers that carry it, first preferred (push: FCM before APNs).
CHANNELS: dict[str, ChannelRoute] = {
    Channel.IN_STORE: ChannelRoute((inbox.STORE_SCREENS,), no_address="user is not present in a store"),
    Channel.PUSH: ChannelRoute((fcm.SPEC, apns.SPEC), no_address="no push token",
                               not_configured="push provider for the user's token (FCM / APNs) is not configured"),
    Channel.IN_APP: ChannelRoute((inbox.USER_INBOX,), no_address="no user id"),
    Channel.SMS: ChannelRoute((twilio.SPEC,), no_address="no phone number",
                              not_configured="SMS provider (Twilio) is not configured"),
    Channel.EMAIL: ChannelRoute((sendgrid.SPEC,), no_address="no email address",
                                not_configured="email provider (SendGrid) is not configured"),
    Channel.WEB: ChannelRoute((inbox.USER_INBOX,), no_address="no user id"),
    # Paid media goes through the DSP slice (docs/RULES.md §6), never through a provider of ours.
    Channel.PAID_MEDIA: ChannelRoute((), no_address=PAID_MEDIA_REASON),
}

# Ledger provider → how to call it.
PROVIDERS: dict[str, ProviderSpec] = {
    Provider.SENDGRID: sendgrid.SPEC,
    Provider.TWILIO: twilio.SPEC,
    Provider.FCM: fcm.SPEC,
    Provider.APNS: apns.SPEC,
    Provider.INBOX: inbox.USER_INBOX,
}
