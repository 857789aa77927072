"""Which channel reaches a user (docs/RULES.md §5 cascade), and whether a send may still go out.

Order: in-store (kiosk / signage) while the user is present in a store → the user's preferred
channel → push if a token exists → in-app → SMS if a phone → email if an email → web
personalisation → paid media. A channel is usable only when the user consented to it, neither the
address nor the user id is suppressed on it, and its provider is configured. Paid media (retargeting)
belongs to the DSP slice: the cascade records why it stops there instead of pretending to send.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import structlog

from apps.core.exceptions import ServiceError

from . import providers
from .models import Channel, Contact
from .providers import PAID_MEDIA_REASON

CASCADE_ORDER: tuple[str, ...] = (
    Channel.IN_STORE, Channel.PUSH, Channel.IN_APP, Channel.SMS, Channel.EMAIL, Channel.WEB, Channel.PAID_MEDIA,
)

# Suppression list channel for each activation channel. First-party surfaces without an address of
# their own (web, in-store screens) obey only "all" entries for the user.
SUPPRESSION_CHANNEL = {
    Channel.EMAIL: "email",
    Channel.SMS: "sms",
    Channel.PUSH: "push",
    Channel.IN_APP: "in_app",
    Channel.WEB: "all",
    Channel.IN_STORE: "all",
}

log = structlog.get_logger(__name__)

@dataclass(frozen=True)
class ChannelChoice:
    channel: str
    provider: str
    recipient: str


@dataclass(frozen=True)
class CascadeResult:
    choice: ChannelChoice | None
    trail: list[dict]

    @property
    def reason(self) -> str:
        """One line saying why nothing was chosen (empty when a channel was)."""
        if self.choice:
            return ""
        return "; ".join(f"{step['channel']}: {step['reason']}" for step in self.trail)


def _suppressed_identifier(identifiers: list[str], suppression_channel: str) -> str | None:
    from apps.suppression.selectors import is_suppressed

    for identifier in identifiers:
        if not identifier:
            continue
        try:
            if is_suppressed(identifier=identifier, channel=suppression_channel):
                return identifier
        except ServiceError:
            # Not a storable identifier, so no entry can exist for it.
            continue
    return None


def send_blocked_reason(*, channel: str, user_id: str, recipient: str, contact: Contact | None) -> str | None:
    """Why a message on ``channel`` to ``recipient`` must not go out now (consent or suppression), or None.
    Checked when the cascade picks the channel and again by the worker right before sending."""
    if channel == Channel.PAID_MEDIA:
        return PAID_MEDIA_REASON
    consents = contact.consents_to(channel) if contact else Contact(user_id=user_id).consents_to(channel)
    if not consents:
        return f"no consent for {channel}"
    identifiers = [recipient, user_id] if recipient != user_id else [user_id]
    hit = _suppressed_identifier(identifiers, SUPPRESSION_CHANNEL[channel])
    if hit:
        return f"suppressed on {SUPPRESSION_CHANNEL[channel]} ({hit})"
    return None


def channel_evaluate(*, channel: str, user_id: str, contact: Contact | None, now: datetime) -> ChannelChoice | str:
    """A usable :class:`ChannelChoice`, or the reason ``channel`` cannot reach the user.

    How the channel addresses the user and whether its provider is configured come from the provider
    registry (``providers.CHANNELS``), the same table the send path calls the provider through."""
    address = providers.CHANNELS[channel].address(contact=contact, user_id=user_id, now=now)
    if isinstance(address, str):
        return address
    provider, recipient = address
    blocked = send_blocked_reason(channel=channel, user_id=user_id, recipient=recipient, contact=contact)
    if blocked:
        return blocked
    return ChannelChoice(channel=channel, provider=provider, recipient=recipient)


def cascade_choose(*, user_id: str, contact: Contact | None, now: datetime,
                   allowed: set[str] | None = None, allowed_reason: str = "") -> CascadeResult:
    """Walk the cascade and stop at the first usable channel; the trail says why each earlier one was not."""
    order = list(CASCADE_ORDER)
    preferred = contact.preferred_channel if contact else ""
    if preferred:
        # Step 2: the preferred channel comes right after in-store presence.
        order.remove(preferred)
        order.insert(1, preferred)
    trail: list[dict] = []
    for channel in order:
        if allowed is not None and channel not in allowed:
            trail.append({"channel": channel, "outcome": "skipped", "reason": allowed_reason or "not requested"})
            continue
        result = channel_evaluate(channel=channel, user_id=user_id, contact=contact, now=now)
        if isinstance(result, ChannelChoice):
            why = "preferred channel" if channel == preferred else "first usable channel of the cascade"
            trail.append({"channel": channel, "outcome": "chosen", "reason": why})
            return CascadeResult(choice=result, trail=trail)
        trail.append({"channel": channel, "outcome": "skipped", "reason": result})
        if channel == Channel.PAID_MEDIA:
            log.info("cascade_paid_media_skipped", user_id=user_id, reason=result)
    return CascadeResult(choice=None, trail=trail)
