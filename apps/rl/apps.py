from django.apps import AppConfig


class RlConfig(AppConfig):
    name = "apps.rl"
    label = "rl"
    verbose_name = "Decisions (RL connector)"
    default_auto_field = "django.db.models.BigAutoField"
