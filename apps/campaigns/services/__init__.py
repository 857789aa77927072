"""Writes of the campaigns slice: the lifecycle of docs/RULES.md §3, approvals, offers and spend.

Every function here is the only way its change happens — the admin buttons and the REST API both
call these, so role checks, self-approval checks and state rules cannot be skipped by a crafted
request. Each transition runs in one transaction holding the campaign's row lock
(``select_for_update``) and writes its ``CampaignTransition`` audit row in that transaction. A refused
action raises ``ServiceError`` (or ``Conflict`` / ``Forbidden`` / ``NotFound``) and changes
nothing. Anything that changes what the bidder may serve announces itself after commit through
``apps.bidding.services.offer_snapshot_refresh()``.

The package re-exports every public name, so callers import ``apps.campaigns.services`` as before:
``lifecycle`` (transitions, votes, beat sweeps), ``campaigns`` (create, edit, spend), ``offers``, and
``common`` (the lock, checks and audit they share). The input rules are in ``apps.campaigns.validation``.
"""
from apps.campaigns.validation import (
    CAMPAIGN_FIELDS,
    OFFER_FIELDS,
    OFFER_OPERATIONAL_FIELDS,
    OFFER_SET_EDITABLE_STATES,
    OPERATIONAL_FIELDS,
    campaign_editable_fields,
    campaign_validate_changes,
    campaign_validate_new,
    offer_editable_fields,
    offer_validate_changes,
)

from .campaigns import (
    CREATE_SCOPE,
    IDEMPOTENCY_RETENTION,
    SPEND_QUANTUM,
    campaign_add_spend,
    campaign_create,
    campaign_create_once,
    campaign_purge_idempotency_records,
    campaign_update,
)
from .cockpit import (
    BULK_ACTIONS,
    BulkRefused,
    campaign_bulk_transition,
    campaign_clone,
    saved_view_delete,
    saved_view_save,
)
from .collaboration import (
    campaign_comment_add,
    notification_emails_recover_stale,
    notification_mark_read,
    notification_mark_read_for_campaign,
    notification_message_id,
    notification_send_email,
    notification_send_pending_emails,
    notify_awaiting_decision,
    notify_decided,
)
from .common import ACTION_LABELS, TRANSITIONS, VOTES, VOTES_VOIDED
from .creatives import DAM_SOURCES, offer_creative_import, offer_creative_validity_set
from .lifecycle import (
    campaign_approve,
    campaign_archive,
    campaign_complete,
    campaign_complete_due,
    campaign_go_live,
    campaign_go_live_due,
    campaign_pause,
    campaign_reject,
    campaign_request_changes,
    campaign_resume,
    campaign_revise,
    campaign_schedule,
    campaign_submit,
)
from .offers import offer_create, offer_delete, offer_update

__all__ = [
    "ACTION_LABELS", "CAMPAIGN_FIELDS", "DAM_SOURCES", "offer_creative_import",
    "offer_creative_validity_set", "CREATE_SCOPE", "IDEMPOTENCY_RETENTION", "OFFER_FIELDS",
    "OFFER_OPERATIONAL_FIELDS", "OFFER_SET_EDITABLE_STATES", "OPERATIONAL_FIELDS", "SPEND_QUANTUM", "TRANSITIONS",
    "VOTES", "VOTES_VOIDED", "campaign_add_spend", "campaign_approve", "campaign_archive",
    "campaign_complete", "campaign_complete_due", "campaign_create", "campaign_create_once",
    "campaign_editable_fields", "campaign_go_live", "campaign_go_live_due", "campaign_pause",
    "campaign_purge_idempotency_records", "campaign_reject", "campaign_request_changes", "campaign_resume",
    "campaign_revise", "campaign_schedule", "campaign_submit", "campaign_update", "campaign_validate_changes",
    "campaign_validate_new", "offer_create", "offer_delete", "offer_editable_fields", "offer_update",
    "offer_validate_changes", "campaign_comment_add", "notification_mark_read", "notification_mark_read_for_campaign", "notification_emails_recover_stale", "notification_message_id",
    "notification_send_email", "notification_send_pending_emails",
    "notify_awaiting_decision", "notify_decided",
    "BULK_ACTIONS", "BulkRefused", "campaign_bulk_transition", "campaign_clone", "saved_view_delete", "saved_view_save",
]
