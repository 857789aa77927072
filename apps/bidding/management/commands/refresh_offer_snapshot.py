"""Rebuild the bidders' live-offer snapshot now (normally done on every campaign change and by beat)."""
from django.core.management.base import BaseCommand

from apps.bidding.services import offer_snapshot_refresh
from apps.bidding.snapshot import SNAPSHOT_KEY
from apps.core import redis as redis_store


class Command(BaseCommand):
    help = "Build the snapshot of live offers from Postgres, store it in Redis and announce it to every bidder."

    def handle(self, *args, **options):
        published = offer_snapshot_refresh()
        version = redis_store.client().hget(SNAPSHOT_KEY, "version")
        self.stdout.write(f"offer snapshot {'published' if published else 'not published (see log)'}; "
                          f"current version {version.decode() if version else 'none'}")
