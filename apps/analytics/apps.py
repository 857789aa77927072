from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    name = "apps.analytics"
    label = "analytics"
    verbose_name = "Analytics"

    def ready(self) -> None:
        # Celery worker signals: /metrics server, task metrics, emitter flush when a child exits.
        from apps.analytics import worker_metrics  # noqa: F401
