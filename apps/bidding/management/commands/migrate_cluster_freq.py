"""Fold a Redis Cluster's legacy ``freq:<user>`` sets into ``{profile:<user>}:freq`` (the profile's slot)."""
from django.core.management.base import BaseCommand

from apps.bidding.services import migrate_legacy_freq
from apps.core import redis as redis_store


class Command(BaseCommand):
    help = ("On a Redis Cluster, move every user's frequency set from its legacy name freq:<user> to "
            "{profile:<user>}:freq, beside the profile. Idempotent; nothing to do on a single Redis. Run it once "
            "the bid app and the win handlers all run the version that reads the new name.")

    def handle(self, *args, **options):
        client = redis_store.client()
        if not redis_store.is_cluster(client):
            self.stdout.write("REDIS_URL is a single Redis: frequency sets keep freq:<user>, nothing to migrate")
            return
        self.stdout.write(f"frequency sets folded into the profile's slot: {migrate_legacy_freq(client)}")
