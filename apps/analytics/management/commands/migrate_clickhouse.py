"""``manage.py migrate_clickhouse``: create the ClickHouse database named in CLICKHOUSE_URL and apply
the analytics migrations (idempotent; run by ``make migrate`` / ``make run``)."""
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.analytics import clickhouse_cluster, clickhouse_schema
from apps.core import clickhouse as ch


class Command(BaseCommand):
    help = "Apply the versioned ClickHouse migrations (apps/analytics/clickhouse_migrations)."

    def add_arguments(self, parser):
        parser.add_argument("--list", action="store_true", help="show migrations and whether each is applied")

    def handle(self, *args, **options):
        try:
            newly = clickhouse_schema.migrate()
            done = clickhouse_schema.applied()
        except ch.ClickHouseError as exc:
            raise CommandError(f"ClickHouse at {ch.url()} is not reachable or refused a statement: {exc}") from exc
        except (LookupError, clickhouse_cluster.UnsupportedStatement) as exc:
            raise CommandError(f"ClickHouse cluster {ch.cluster()!r}: {exc}") from exc
        if options["list"]:
            for name, _ in clickhouse_schema.available():
                self.stdout.write(f"[{'X' if name in done else ' '}] {name}")
        if newly:
            for name in newly:
                self.stdout.write(self.style.SUCCESS(f"Applied {name}"))
        else:
            self.stdout.write(f"ClickHouse database {ch.database()}: no migrations to apply.")
        if ch.cluster():
            self.stdout.write(f"Cluster {ch.cluster()} ({settings.CLICKHOUSE_CLUSTER_DDL}): {len(ch.hosts())} hosts")
