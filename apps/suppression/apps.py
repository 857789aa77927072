from django.apps import AppConfig


class SuppressionConfig(AppConfig):
    name = "apps.suppression"
    label = "suppression"
