from django.apps import AppConfig


class RlConfig(AppConfig):
    name = "apps.rl"
    label = "rl"
    verbose_name = "Decisions (RL connector)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_migrate, post_save

        from apps.rl import candidates

        # The default candidates are cached per channel (apps.rl.candidates): any saved or deleted
        # campaign or offer starts a new generation after its commit. Lazy senders: no import of
        # another slice's models.
        for sender in ("campaigns.Campaign", "campaigns.Offer"):
            for signal in (post_save, post_delete):
                signal.connect(candidates.invalidate, sender=sender, weak=False,
                               dispatch_uid=f"rl-candidates-{signal is post_save}-{sender}")
        post_migrate.connect(candidates.clear, weak=False, dispatch_uid="rl-candidates-flush")
