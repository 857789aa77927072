"""Omnichannel writes (docs/RULES.md §5): ingest, contacts, activations and their sends, stored messages,
provider callbacks. Other slices call these functions, never the models, and import them from here:
the package re-exports every public name of its modules.

Flow of an activation::

    activation_create ──(cascade picks a channel, consent + suppression checked)──▶ Activation queued
        └─ SendLedger row (unique per activation, user, channel) ─ on commit ─▶ send_activation task
    send_execute (worker): claim the ledger row → suppression + consent again → provider call
        ├─ answer 2xx  → sent (delivered later by webhook / status callback / app fetch)
        ├─ retryable   → back to queued, retried with exponential back-off (bounded)
        └─ permanent   → failed (a dead token or number is forgotten)

Modules, each importing only those listed before it:

* ``_common`` — analytics after commit, the task queue, suppression entries from provider answers;
* ``contacts`` — a user's addresses, tokens, consents and presence;
* ``sends`` — the send ledger and the activation status its send moves (imports the tasks it queues);
* ``activations`` — creating an activation through the cascade;
* ``ingest`` — ingest sources and events;
* ``inbox`` — in-app, web and in-store messages fetched by our own surfaces;
* ``webhooks`` — SendGrid events and Twilio status callbacks.
"""
from ._common import task_options
from .activations import ACTIVATIONS, activation_create
from .contacts import CONTACT_FIELDS, contact_forget_push_token, contact_upsert
from .inbox import inbox_fetch
from .ingest import (
    ALWAYS_TRIGGER,
    DEFAULT_INTERACTION_WEIGHT,
    DIGITAL_SOURCES,
    FRESH_TRIGGER,
    INGEST_EVENTS,
    INGEST_IDEMPOTENCY_SCOPE,
    INTERACTION_WEIGHT,
    LOYALTY_CHANNEL,
    LOYALTY_RELEVANT,
    PRESENCE_EVENTS,
    IngestOutcome,
    InvalidIngestEvent,
    ingest_caller,
    ingest_event_process,
    ingest_source_disabled_reason,
    ingest_source_set_enabled,
    ingest_transaction_id,
    omnichannel_purge_idempotency_records,
)
from .sends import (
    ALLOWED_TRANSITIONS,
    FINAL_SEND_STATUSES,
    SENDS,
    SendOutcome,
    send_enqueue,
    send_execute,
    send_mark_delivered,
    send_mark_failed,
    sends_requeue_stale,
)
from .webhooks import (
    SENDGRID_EVENTS,
    TWILIO_DELIVERED,
    TWILIO_FAILED,
    WebhookRejected,
    sendgrid_batch_enqueue,
    sendgrid_batch_process,
    sendgrid_batches_requeue_unprocessed,
    sendgrid_webhook_receive,
    twilio_status_record,
)

__all__ = [
    "ACTIVATIONS", "ALLOWED_TRANSITIONS", "ALWAYS_TRIGGER", "CONTACT_FIELDS", "DEFAULT_INTERACTION_WEIGHT",
    "DIGITAL_SOURCES", "FINAL_SEND_STATUSES", "FRESH_TRIGGER", "INGEST_EVENTS", "INGEST_IDEMPOTENCY_SCOPE",
    "INTERACTION_WEIGHT", "LOYALTY_CHANNEL", "LOYALTY_RELEVANT", "PRESENCE_EVENTS", "SENDGRID_EVENTS", "SENDS",
    "TWILIO_DELIVERED", "TWILIO_FAILED", "IngestOutcome", "InvalidIngestEvent", "SendOutcome", "WebhookRejected", "activation_create",
    "contact_forget_push_token", "contact_upsert", "inbox_fetch", "ingest_caller", "ingest_event_process",
    "ingest_source_disabled_reason", "ingest_source_set_enabled", "ingest_transaction_id",
    "omnichannel_purge_idempotency_records", "send_enqueue",
    "send_execute", "send_mark_delivered", "send_mark_failed", "sendgrid_batch_enqueue", "sendgrid_batch_process",
    "sendgrid_batches_requeue_unprocessed", "sendgrid_webhook_receive", "sends_requeue_stale", "task_options",
    "twilio_status_record",
]
