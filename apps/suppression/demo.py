"""Demo suppression entries for ``manage.py seed_demo`` (idempotent: adding again changes nothing)."""
from datetime import timedelta

from django.utils import timezone

from .selectors import is_suppressed
from .services import suppression_add

DEMO_ENTRIES = [
    {"identifier": "unsubscribed@example.com", "channel": "email", "reason": "unsubscribe",
     "source": "sendgrid:unsubscribe"},
    {"identifier": "bounced@example.com", "channel": "email", "reason": "bounce", "source": "sendgrid:bounce"},
    {"identifier": "+1 (415) 555-0100", "channel": "sms", "reason": "unsubscribe", "source": "twilio:STOP"},
    {"identifier": "demo-user-42", "channel": "all", "reason": "regulatory", "source": "demo"},
]


def seed() -> None:
    """Add the demo entries (and one 30-day manual suppression) as system entries."""
    for entry in DEMO_ENTRIES:
        suppression_add(**entry)
    if not is_suppressed(identifier="paused@example.com", channel="all"):
        suppression_add(identifier="paused@example.com", channel="all", reason="manual", source="demo",
                        expires_at=timezone.now() + timedelta(days=30))
