"""Our own surfaces: in-app and web messages the user's app or browser fetches, and in-store messages
for the screens of the store the user is in. Always configured; nothing is called: the send path
stores the message (``send`` is None)."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from ..models import Provider
from .spec import ProviderSpec

if TYPE_CHECKING:
    from ..models import Contact


def _present_store(contact: Contact | None, user_id: str, now: datetime) -> str:
    """The store a recent store visit or check-in places the user in, or ""."""
    if not contact or not contact.present_store_id or not contact.present_until or contact.present_until <= now:
        return ""
    return contact.present_store_id


USER_INBOX = ProviderSpec(name=Provider.INBOX, label="inbox", address_of=lambda contact, user_id, now: user_id,
                          is_configured=lambda: True)
STORE_SCREENS = ProviderSpec(name=Provider.INBOX, label="in-store screens", address_of=_present_store,
                             is_configured=lambda: True)
