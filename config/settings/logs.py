"""Logs a person can read: structlog key=value lines on a console, JSON lines in production."""
import logging

import structlog

from config import env

_renderer = (
    structlog.processors.JSONRenderer()
    if env.LOG_FORMAT == "json"
    else structlog.dev.ConsoleRenderer(colors=False, pad_event_to=0)
)
_shared = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]

structlog.configure(
    processors=[*_shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
    logger_factory=structlog.stdlib.LoggerFactory(),
    wrapper_class=structlog.stdlib.BoundLogger,
    cache_logger_on_first_use=True,
)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "structured": {
            "()": structlog.stdlib.ProcessorFormatter,
            "processors": [structlog.stdlib.ProcessorFormatter.remove_processors_meta, _renderer],
            "foreign_pre_chain": _shared,
        }
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structured"}},
    "root": {"handlers": ["console"], "level": env.LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "clickhouse_driver": {"level": "WARNING"},
        "asyncio": {"level": "WARNING"},
        # Beat fires some tasks every second: per-task "received / succeeded / sending due task"
        # lines would drown everything else. Tasks log their own events when they do something.
        "celery.app.trace": {"level": "WARNING"},
        "celery.worker.strategy": {"level": "WARNING"},
        "celery.beat": {"level": "WARNING"},
    },
}
logging.captureWarnings(True)
