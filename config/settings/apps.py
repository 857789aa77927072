"""Per-app settings. Each app that needs knobs adds a section here, read through ``config.env``."""
from config import env

# --- suppression ---------------------------------------------------------------------------------
# Region (ISO 3166 alpha-2, e.g. "US") assumed for phone numbers written without a country code;
# empty = such numbers are refused with a 400 asking for the +<country code> form.
SUPPRESSION_DEFAULT_PHONE_REGION = env.env_str("SUPPRESSION_DEFAULT_PHONE_REGION", "")
# Admin CSV imports up to this many rows run inside the upload request; larger ones run as a Celery
# task while the page polls its progress.
SUPPRESSION_IMPORT_INLINE_MAX_ROWS = env.env_int("SUPPRESSION_IMPORT_INLINE_MAX_ROWS", 2000)
SUPPRESSION_IMPORT_CHUNK_SIZE = env.env_int("SUPPRESSION_IMPORT_CHUNK_SIZE", 1000)
SUPPRESSION_IMPORT_MAX_BYTES = env.env_int("SUPPRESSION_IMPORT_MAX_BYTES", 20 * 1024 * 1024)

# --- omnichannel ---------------------------------------------------------------------------------
# Ingest (docs/RULES.md §5). Sources listed here are refused (400) on top of those disabled in the admin.
INGEST_DISABLED_SOURCES = env.env_list("INGEST_DISABLED_SOURCES", [])
# product_view / wishlist_add trigger an activation only while younger than this (by event time).
INGEST_ACTIVATION_WINDOW_MINUTES = env.env_int("INGEST_ACTIVATION_WINDOW_MINUTES", 30)
# First token of the NATS ingest subjects (<prefix>.{source}.>): lets environments share one NATS.
INGEST_NATS_SUBJECT_PREFIX = env.env_str("INGEST_NATS_SUBJECT_PREFIX", "ingest")
# Event timestamps further than this in the future are refused (a bad device clock).
INGEST_MAX_CLOCK_SKEW_SECONDS = env.env_int("INGEST_MAX_CLOCK_SKEW_SECONDS", 300)
# How long a store_visit / check_in keeps the user "present" in that store (in-store channel).
OMNICHANNEL_PRESENCE_MINUTES = env.env_int("OMNICHANNEL_PRESENCE_MINUTES", 60)
# In-app, web and in-store messages stay fetchable this long.
OMNICHANNEL_INBOX_TTL_HOURS = env.env_int("OMNICHANNEL_INBOX_TTL_HOURS", 72)
# Celery queue for send and webhook tasks; empty = Celery's default queue.
OMNICHANNEL_TASK_QUEUE = env.env_str("OMNICHANNEL_TASK_QUEUE", "")
# Send retries for retryable provider errors (5xx, 429, timeouts): exponential back-off from the base.
OMNICHANNEL_SEND_MAX_RETRIES = env.env_int("OMNICHANNEL_SEND_MAX_RETRIES", 5)
OMNICHANNEL_SEND_RETRY_BASE_SECONDS = env.env_float("OMNICHANNEL_SEND_RETRY_BASE_SECONDS", 30.0)
OMNICHANNEL_SEND_RETRY_MAX_SECONDS = env.env_float("OMNICHANNEL_SEND_RETRY_MAX_SECONDS", 900.0)
# Per-request timeout of every provider call (connect + read), seconds.
OMNICHANNEL_PROVIDER_TIMEOUT_SECONDS = env.env_float("OMNICHANNEL_PROVIDER_TIMEOUT_SECONDS", 10.0)
# A send claimed longer ago than this without an answer is treated as lost by a dead worker.
OMNICHANNEL_SEND_CLAIM_TIMEOUT_SECONDS = env.env_int("OMNICHANNEL_SEND_CLAIM_TIMEOUT_SECONDS", 300)

# SendGrid v3 mail/send and the signed Event Webhook. Off unless SENDGRID_API_KEY and the sender are set.
SENDGRID_API_URL = env.env_str("SENDGRID_API_URL", "https://api.sendgrid.com")
SENDGRID_API_KEY = env.env_str("SENDGRID_API_KEY", "")
SENDGRID_FROM_EMAIL = env.env_str("SENDGRID_FROM_EMAIL", "")
SENDGRID_FROM_NAME = env.env_str("SENDGRID_FROM_NAME", "Campaign Express")
# The base64 DER (SubjectPublicKeyInfo) ECDSA P-256 key from SendGrid's Mail Settings. Without it the
# Event Webhook answers 403 not_configured (production refuses to start without it when SendGrid is on);
# a key that is not such a key stops the process at start, naming this variable.
SENDGRID_WEBHOOK_VERIFICATION_KEY = env.env_str("SENDGRID_WEBHOOK_VERIFICATION_KEY", "")
# Development only: with no verification key, accept unsigned events (anyone could then plant
# suppressions and fake opens, clicks and bounces). Production refuses to start with it on.
SENDGRID_WEBHOOK_ALLOW_UNSIGNED = env.env_bool("SENDGRID_WEBHOOK_ALLOW_UNSIGNED", False)
SENDGRID_WEBHOOK_MAX_AGE_SECONDS = env.env_int("SENDGRID_WEBHOOK_MAX_AGE_SECONDS", 600)

# Twilio Messages API (SMS). Off unless the account SID, auth token and sender are set.
TWILIO_API_URL = env.env_str("TWILIO_API_URL", "https://api.twilio.com")
TWILIO_ACCOUNT_SID = env.env_str("TWILIO_ACCOUNT_SID", "")
TWILIO_AUTH_TOKEN = env.env_str("TWILIO_AUTH_TOKEN", "")
TWILIO_FROM = env.env_str("TWILIO_FROM", "")
# The public URL Twilio posts status callbacks to (also the URL its X-Twilio-Signature signs).
TWILIO_STATUS_CALLBACK_URL = env.env_str(
    "TWILIO_STATUS_CALLBACK_URL", env.PUBLIC_BASE_URL.rstrip("/") + "/v1/webhooks/twilio/status"
)

# FCM HTTP v1. FCM_ACCESS_TOKEN is a short-lived OAuth 2.0 token; production mints it from a service
# account (scope https://www.googleapis.com/auth/firebase.messaging) and rotates this variable.
FCM_API_URL = env.env_str("FCM_API_URL", "https://fcm.googleapis.com")
FCM_PROJECT_ID = env.env_str("FCM_PROJECT_ID", "")
FCM_ACCESS_TOKEN = env.env_str("FCM_ACCESS_TOKEN", "")

# APNs (HTTP/2, token-based auth). APNS_AUTH_TOKEN is the provider JWT (ES256, signed with the .p8 key,
# valid up to an hour); use https://api.sandbox.push.apple.com for development builds.
APNS_API_URL = env.env_str("APNS_API_URL", "https://api.push.apple.com")
APNS_TOPIC = env.env_str("APNS_TOPIC", "")
APNS_AUTH_TOKEN = env.env_str("APNS_AUTH_TOKEN", "")

if env.IS_PRODUCTION and SENDGRID_API_KEY and not SENDGRID_WEBHOOK_VERIFICATION_KEY:
    raise env.ImproperlyConfiguredEnv(
        "SENDGRID_WEBHOOK_VERIFICATION_KEY must be set when SendGrid is configured in production "
        "(unsigned event webhooks would let anyone forge unsubscribes and opens)"
    )
if SENDGRID_WEBHOOK_VERIFICATION_KEY:
    # A key that does not load would refuse every event with a 500; refuse to start instead. The
    # parser is the one the webhook uses (Django-free, so it may be imported while settings load).
    from apps.omnichannel.signatures import BadVerificationKey, sendgrid_public_key

    try:
        sendgrid_public_key(SENDGRID_WEBHOOK_VERIFICATION_KEY)
    except BadVerificationKey as exc:
        raise env.ImproperlyConfiguredEnv(str(exc)) from None
if env.IS_PRODUCTION and SENDGRID_WEBHOOK_ALLOW_UNSIGNED:
    raise env.ImproperlyConfiguredEnv(
        "SENDGRID_WEBHOOK_ALLOW_UNSIGNED=true is refused when CAMPAIGN_EXPRESS_ENV=production: unsigned "
        "SendGrid events would let anyone plant suppressions and fake opens, clicks and bounces; set "
        "SENDGRID_WEBHOOK_VERIFICATION_KEY instead"
    )
# Idempotency records of omnichannel writes (ingest events, activations) are kept this long; a replay
# of an older event is still answered from its stored IngestEvent (a duplicate, not a second credit).
OMNICHANNEL_IDEMPOTENCY_RETENTION_DAYS = env.env_int("OMNICHANNEL_IDEMPOTENCY_RETENTION_DAYS", 30, minimum=1)
# --- end omnichannel -----------------------------------------------------------------------------

# --- loyalty -------------------------------------------------------------------------------------
# An earn above this amount (cents) is refused as absurd (400 naming amount_cents): $100,000 by default.
LOYALTY_MAX_EARN_AMOUNT_CENTS = env.env_int("LOYALTY_MAX_EARN_AMOUNT_CENTS", 10_000_000)
# Idempotency-Key answers of loyalty writes (redeem, adjust, reward-signal) are kept this long.
LOYALTY_IDEMPOTENCY_RETENTION_DAYS = env.env_int("LOYALTY_IDEMPOTENCY_RETENTION_DAYS", 30)
# JetStream stream that captures loyalty.reward-signals (created on first publish when missing).
LOYALTY_NATS_STREAM = env.env_str("LOYALTY_NATS_STREAM", "LOYALTY")
# Connect / publish-ack timeout for reward-signal publishing; a failure leaves the signal for the beat retry.
LOYALTY_NATS_TIMEOUT_SECONDS = env.env_float("LOYALTY_NATS_TIMEOUT_SECONDS", 2.0)
# --- end loyalty ---------------------------------------------------------------------------------

# --- campaigns -----------------------------------------------------------------------------------
# Passwords of the demo users `manage.py seed_demo` creates; empty = the documented local defaults
# (admin-demo / marketer-demo / approver-demo), which seed_demo refuses to use in production.
DEMO_ADMIN_PASSWORD = env.env_str("DEMO_ADMIN_PASSWORD", "")
DEMO_MARKETER_PASSWORD = env.env_str("DEMO_MARKETER_PASSWORD", "")
DEMO_APPROVER_PASSWORD = env.env_str("DEMO_APPROVER_PASSWORD", "")
# --- end campaigns -------------------------------------------------------------------------------

# --- analytics (docs/RULES.md §10; apps/analytics/README.md) -------------------------------------
# The emitter runs in the bid workers too (no Django settings there): it reads config.env's constants,
# copied here so Django code sees one value. The rest is the consumer's (Celery) and the reports'.
ANALYTICS_REDIS_URL = env.ANALYTICS_REDIS_URL  # empty = REDIS_URL
ANALYTICS_STREAM = env.ANALYTICS_STREAM
ANALYTICS_STREAM_CHUNK = env.ANALYTICS_STREAM_CHUNK
# Events per ClickHouse insert (read as BATCH_EVENTS / STREAM_CHUNK stream entries).
ANALYTICS_BATCH_EVENTS = env.env_int("ANALYTICS_BATCH_EVENTS", 10_000, minimum=1)
# Pending stream entries idle this long are claimed from a crashed consumer.
ANALYTICS_CLAIM_IDLE_SECONDS = env.env_float("ANALYTICS_CLAIM_IDLE_SECONDS", 60.0, minimum=0)
# Time budget of one consume task run (it loops batch after batch).
ANALYTICS_CONSUME_SECONDS = env.env_float("ANALYTICS_CONSUME_SECONDS", 5.0, minimum=0)
# Monthly partitions entirely older than this are dropped (daily).
ANALYTICS_RETENTION_DAYS = env.env_int("ANALYTICS_RETENTION_DAYS", 90, minimum=1)
# Push period of the live dashboard's websocket.
ANALYTICS_LIVE_INTERVAL_MS = env.env_int("ANALYTICS_LIVE_INTERVAL_MS", 1000, minimum=1)
# --- end analytics -------------------------------------------------------------------------------

# --- campaign cockpit (apps.campaigns.cockpit) ---------------------------------------------------
# A campaign's pacing (% of budget spent against % of flight elapsed) is flagged when the two differ
# by more than this many percentage points.
CAMPAIGN_PACING_MARGIN_PCT = env.env_float("CAMPAIGN_PACING_MARGIN_PCT", 10.0, minimum=0, maximum=100)
# A staff notification email claimed ("sending") longer than this belongs to a worker that died during
# the SendGrid call: the minute sweep puts it back to pending (same Message-ID) or, after
# CAMPAIGN_NOTIFICATION_EMAIL_MAX_ATTEMPTS claims, fails it. Far above one provider call's timeout.
CAMPAIGN_NOTIFICATION_EMAIL_LEASE_SECONDS = env.env_int("CAMPAIGN_NOTIFICATION_EMAIL_LEASE_SECONDS", 300, minimum=30)
CAMPAIGN_NOTIFICATION_EMAIL_MAX_ATTEMPTS = env.env_int("CAMPAIGN_NOTIFICATION_EMAIL_MAX_ATTEMPTS", 3, minimum=1)
# --- end campaign cockpit ------------------------------------------------------------------------

# --- bidding -------------------------------------------------------------------------------------
# The bid path's own knobs are config.env's BID_* constants (apps.bidding.conf.BidConfig); only the
# management commands' process plumbing is read here. Empty = var/prometheus/bid-<port>.
BID_METRICS_DIR = env.env_str("BID_METRICS_DIR", "")
# --- end bidding ---------------------------------------------------------------------------------

# --- training ------------------------------------------------------------------------------------
# The bid model's trainer (apps.training, `manage.py train_model`): how long after a bid its win,
# click and reward signals count as its labels, the fewest won impressions worth training on, and how
# many bid_inputs rows are read from ClickHouse at a time.
TRAINING_LABEL_WINDOW_SECONDS = env.env_int("TRAINING_LABEL_WINDOW_SECONDS", 86_400, minimum=1)
TRAINING_MIN_IMPRESSIONS = env.env_int("TRAINING_MIN_IMPRESSIONS", 1000, minimum=1)
TRAINING_CHUNK_ROWS = env.env_int("TRAINING_CHUNK_ROWS", 100_000, minimum=1)
# --- end training --------------------------------------------------------------------------------

# --- rl (decisions) ------------------------------------------------------------------------------
# A decision with no reward within this many seconds closes as a failure (Personalizer's
# rewardWaitTime + defaultReward 0); a reward arriving later changes nothing.
RL_REWARD_WAIT_SECONDS = env.env_int("RL_REWARD_WAIT_SECONDS", 86_400, minimum=1)
# Joint Beta draws per decision: row 0 chooses, their argmax shares estimate the logged propensity.
RL_PROPENSITY_DRAWS = env.env_int("RL_PROPENSITY_DRAWS", 256, minimum=1)
# Beta prior of every (offer, segment) arm.
RL_PRIOR_ALPHA = env.env_float("RL_PRIOR_ALPHA", 1.0, minimum=0.001)
RL_PRIOR_BETA = env.env_float("RL_PRIOR_BETA", 1.0, minimum=0.001)
# Redis copy of the posteriors: how long a segment's hash lives after its last write.
RL_POSTERIOR_CACHE_SECONDS = env.env_int("RL_POSTERIOR_CACHE_SECONDS", 3600, minimum=1)
# Default candidates (the live offers of a channel) kept per process this long at most; a saved or
# deleted campaign or offer drops them at once (apps.rl.candidates). 0: read them on every decision.
RL_CANDIDATE_CACHE_SECONDS = env.env_int("RL_CANDIDATE_CACHE_SECONDS", 10, minimum=0)
# Feedback (loyalty reward signals, email clicks) is re-read this far back on every poll, so events
# that reached ClickHouse late are not missed (each closes at most one decision).
RL_FEEDBACK_OVERLAP_SECONDS = env.env_int("RL_FEEDBACK_OVERLAP_SECONDS", 600, minimum=0)
# OfferFit-style rank/reward API (Personalizer v1.0 shape). Off unless the URL and key are set.
OFFERFIT_API_URL = env.env_str("OFFERFIT_API_URL", "")
OFFERFIT_API_KEY = env.env_str("OFFERFIT_API_KEY", "")
# Budget of one rank call; slower answers are dropped and Thompson answers.
OFFERFIT_TIMEOUT_MS = env.env_int("OFFERFIT_TIMEOUT_MS", 50, minimum=1)
# Circuit breaker: this many failures in a row open it for the reset period.
OFFERFIT_BREAKER_FAILURES = env.env_int("OFFERFIT_BREAKER_FAILURES", 5, minimum=1)
OFFERFIT_BREAKER_RESET_SECONDS = env.env_int("OFFERFIT_BREAKER_RESET_SECONDS", 30, minimum=1)
# `evaluate_policy --policy offerfit-on` asks OfferFit to rank the rounds it did not serve: a batch
# job's timeout per attempt (2 retries), this many calls at once, and the largest share of the
# range's rounds it may fail to rank before the run is refused rather than estimated without them.
OFFERFIT_EVAL_TIMEOUT_MS = env.env_int("OFFERFIT_EVAL_TIMEOUT_MS", 2000, minimum=1)
OFFERFIT_EVAL_CONCURRENCY = env.env_int("OFFERFIT_EVAL_CONCURRENCY", 8, minimum=1)
OFFERFIT_EVAL_MAX_UNRANKED_SHARE = env.env_float("OFFERFIT_EVAL_MAX_UNRANKED_SHARE", 0.01, minimum=0.0, maximum=1.0)
# --- end rl --------------------------------------------------------------------------------------
# --- DSP exchange (apps.dsp; the fan-out's own knobs are DspConfig, read from config.env) ---------
DSP_NOTICE_MAX_RETRIES = env.DSP_NOTICE_MAX_RETRIES
DSP_NOTICE_TIMEOUT_SECONDS = env.DSP_NOTICE_TIMEOUT_SECONDS
DSP_AUCTION_TTL_SECONDS = env.DSP_AUCTION_TTL_SECONDS
DSP_QPS_WORKERS = env.DSP_QPS_WORKERS
DSP_BREAKER_FAILURES = env.DSP_BREAKER_FAILURES
DSP_BREAKER_RESET_SECONDS = env.DSP_BREAKER_RESET_SECONDS

# --- outbound HTTP to vendors (apps.core.outbound) -----------------------------------------------
# OUTBOUND_SECRET_KEYS itself is read by apps.core.outbound.crypto from config.env (the bid workers
# decrypt without Django settings).
OUTBOUND_CALL_LOG_RETENTION_DAYS = env.env_int("OUTBOUND_CALL_LOG_RETENTION_DAYS", 30, minimum=1)
# Retention purges (apps.core.retention) delete at most this many rows per statement, each batch its
# own short transaction, so a purge never holds a long lock on a busy table.
RETENTION_PURGE_BATCH_SIZE = env.env_int("RETENTION_PURGE_BATCH_SIZE", 5000, minimum=1)
# Back-office Excel exports (apps.core.exports): up to this many rows inside the request, beyond it a
# background job writing under EXPORT_DIR (relative: from the project root).
EXPORT_INLINE_MAX_ROWS = env.env_int("EXPORT_INLINE_MAX_ROWS", 100_000, minimum=0)
EXPORT_DIR = env.env_str("EXPORT_DIR", "var/exports")
# --- end outbound --------------------------------------------------------------------------------
# --- recommendations (docs/RULES.md §7) ----------------------------------------------------------
# Models are rebuilt from all interactions every this many minutes (a divisor of 60, or a multiple of
# 60 that divides 1440: the beat entry is a crontab).
RECS_REBUILD_EVERY_MINUTES = env.env_int("RECS_REBUILD_EVERY_MINUTES", 60, minimum=1, maximum=1440)
if not (60 % RECS_REBUILD_EVERY_MINUTES == 0 or (RECS_REBUILD_EVERY_MINUTES % 60 == 0
                                               and 1440 % RECS_REBUILD_EVERY_MINUTES == 0)):
    raise env.ImproperlyConfiguredEnv("RECS_REBUILD_EVERY_MINUTES must divide 60, or be a multiple of 60 "
                                      f"that divides 1440, got {RECS_REBUILD_EVERY_MINUTES}")
# One rebuild at a time: its Redis lease lasts this long and the build renews it every third of it; a
# build whose process died is given up (a new one may start) within this time, and shown failed by the
# reaper's next minute.
RECS_REBUILD_LEASE_SECONDS = env.env_float("RECS_REBUILD_LEASE_SECONDS", 30.0, minimum=1.0, maximum=600.0)
# Trending is recomputed from the recent interactions this often (under a minute: new interactions
# reach it within a minute), over this window with this half-life, keeping this many items.
RECS_TRENDING_REFRESH_SECONDS = env.env_int("RECS_TRENDING_REFRESH_SECONDS", 30, minimum=1, maximum=59)
RECS_TRENDING_WINDOW_HOURS = env.env_float("RECS_TRENDING_WINDOW_HOURS", 24.0, minimum=1.0)
RECS_TRENDING_HALF_LIFE_HOURS = env.env_float("RECS_TRENDING_HALF_LIFE_HOURS", 6.0, minimum=0.1)
RECS_TRENDING_KEEP = env.env_int("RECS_TRENDING_KEEP", 1000, minimum=10)
# cf is EASE (dense: items² memory, items³ time) up to this many items, RP3beta (sparse) beyond;
# EASE's L2 penalty; neighbours kept per item (cf and frequently-bought-together).
RECS_EASE_MAX_ITEMS = env.env_int("RECS_EASE_MAX_ITEMS", 5000, minimum=0, maximum=20_000)
RECS_EASE_LAMBDA = env.env_float("RECS_EASE_LAMBDA", 300.0, minimum=0.0)
RECS_NEIGHBOURS = env.env_int("RECS_NEIGHBOURS", 200, minimum=1, maximum=2000)
# How often a serving process checks Redis for a newer model (and trending).
RECS_MODEL_POLL_SECONDS = env.env_float("RECS_MODEL_POLL_SECONDS", 1.0, minimum=0.0)
RECS_DEFAULT_LIMIT = env.env_int("RECS_DEFAULT_LIMIT", 10, minimum=1)
RECS_MAX_LIMIT = env.env_int("RECS_MAX_LIMIT", 100, minimum=1)
# Catalogue imports up to this many rows run inside the upload request; larger ones as a Celery task.
RECS_IMPORT_INLINE_MAX_ROWS = env.env_int("RECS_IMPORT_INLINE_MAX_ROWS", 2000, minimum=0)
# --- end recommendations -------------------------------------------------------------------------
