"""``manage.py report_user_ids`` — list stored user ids that break the one rule (apps.core.identifiers).

Read-only: the same report as migration core 0003, on the current models. Exits 1 when something breaks
the rule, so a deploy check can run it.
"""
from django.apps import apps
from django.core.management.base import BaseCommand, CommandError

from apps.core.migration_helpers import user_id_report


class Command(BaseCommand):
    help = "Report stored user ids that break the rule (1-128 characters, no whitespace or control characters)."

    def handle(self, *args, **options):
        reports = user_id_report(apps, examples=5)
        for report in reports:
            self.stdout.write(f"{report['model']}.{report['column']}: {report['rows']} rows, "
                              f"{report['values']} distinct values")
            for value, problem in report["examples"]:
                self.stdout.write(f"  {value!r} {problem}")
        if reports:
            rows = sum(report["rows"] for report in reports)
            raise CommandError(f"{rows} rows in {len(reports)} columns hold user ids that break the rule")
        self.stdout.write("All stored user ids follow the rule.")
