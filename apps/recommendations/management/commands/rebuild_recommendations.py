"""``manage.py rebuild_recommendations``: rebuild the models now (what the scheduled job does) and
refresh trending, then print the build's figures."""
from django.core.management.base import BaseCommand

from apps.recommendations import services


class Command(BaseCommand):
    help = "Rebuild the recommendation models from all interactions and swap them in; refresh trending."

    def handle(self, *args, **options):
        self.stdout.write("rebuilding the recommendation models from all interactions…")
        build = services.recommendations_rebuild()
        trending = services.trending_refresh()
        if build is None:
            self.stdout.write(self.style.WARNING(f"another rebuild is running; trending: {len(trending.items)} items"))
            return
        self.stdout.write(self.style.SUCCESS(
            f"model {build.version} served: {build.interactions} interactions, {build.users} users, "
            f"{build.items} items, cf={build.cf_method}, {build.size_bytes / 1e6:.1f} MB, "
            f"{build.duration_seconds:.1f} s; trending: {len(trending.items)} items"))
