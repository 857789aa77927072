"""Celery. The beat schedule is declared in code: each app contributes ``BEAT_SCHEDULE`` in its
``schedules.py`` and ``config.celery`` merges them, so a periodic job lives next to its task."""
from kombu import Queue

from config import env

CELERY_BROKER_URL = env.CELERY_BROKER_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 600}
# One queue per kind of work, so each can have workers of its own (docker/k8s/: a worker Deployment per
# queue, sized for it). A worker started without -Q (the Procfile, docker/compose.yaml) consumes them all.
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_QUEUE_NAMES = ("celery", "analytics", "bidding", "messaging", "training")
CELERY_TASK_QUEUES = tuple(Queue(name) for name in CELERY_QUEUE_NAMES)
CELERY_TASK_ROUTES = {
    "analytics.*": {"queue": "analytics"},    # the stream consumer, every second; retention
    "rl.consume_feedback": {"queue": "analytics"},
    "bidding.*": {"queue": "bidding"},        # snapshot refresh, spend flush: budgets depend on them
    "omnichannel.*": {"queue": "messaging"},  # provider I/O (sends, webhook batches)
    "training.*": {"queue": "training"},      # CPU and memory heavy, minutes long
}
CELERY_TASK_ALWAYS_EAGER = env.env_bool("CELERY_TASK_ALWAYS_EAGER", False)
# Our LOGGING (structlog, readable key=value lines) applies in the worker and beat too.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Each worker serves its own /metrics (apps.analytics.worker_metrics); a port <= 0 turns it off.
CELERY_METRICS_PORT = env.env_int("CELERY_METRICS_PORT", 9808)
CELERY_METRICS_ADDR = env.env_str("CELERY_METRICS_ADDR", "127.0.0.1")
