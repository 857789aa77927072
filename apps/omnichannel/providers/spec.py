"""The shape of the registry: what a provider is to the cascade and to the send path."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..models import Contact
    from .base import OutboundMessage


@dataclass(frozen=True)
class ProviderSpec:
    """One provider: where its address is in a contact, whether it is configured, and the call.

    ``address_of(contact, user_id, now)`` is the recipient on this provider, or "" when the user has
    none (``contact`` may be None: nothing is known of the user). ``send(recipient, message)`` returns
    the provider's message id or raises :class:`~.base.ProviderError`; it is None for our own inbox,
    whose messages the send path stores in the ledger's transaction instead of calling anyone.
    """

    name: str  # the ledger's ``provider`` (models.Provider)
    label: str  # for people: "SendGrid", "APNs"
    address_of: Callable[[Contact | None, str, datetime], str]
    is_configured: Callable[[], bool]
    send: Callable[[str, OutboundMessage], str] | None = None


@dataclass(frozen=True)
class ChannelRoute:
    """The providers that can carry one channel, in order of preference, and why none can."""

    providers: tuple[ProviderSpec, ...]
    no_address: str  # the user has no address on any of them
    not_configured: str = ""  # the user has one, but no provider for it is configured

    def address(self, *, contact: Contact | None, user_id: str, now: datetime) -> tuple[str, str] | str:
        """``(provider, recipient)`` of the first configured provider the user has an address on, or
        the reason the channel cannot reach the user."""
        addressed = [(spec, spec.address_of(contact, user_id, now)) for spec in self.providers]
        addressed = [(spec, recipient) for spec, recipient in addressed if recipient]
        if not addressed:
            return self.no_address
        for spec, recipient in addressed:
            if spec.is_configured():
                return spec.name, recipient
        return self.not_configured
