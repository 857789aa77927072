"""``manage.py import_suppressions file.csv`` — the admin CSV import from a shell, with a progress bar."""
import time
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from apps.core.exceptions import ServiceError
from apps.core.file_imports import ImportStatus
from apps.suppression import services


class Command(BaseCommand):
    help = (
        "Import suppression entries from a UTF-8 CSV with header identifier,channel,reason[,expires_at][,source]. "
        "Bad rows are skipped and reported; ends with a one-line summary."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="path to the CSV file")
        parser.add_argument("--user", help="username recorded as the creator (needs the Marketer or Admin role)")
        parser.add_argument("--source", default="", help='recorded on every entry (default "csv:<file name>")')
        parser.add_argument("--no-progress", action="store_true", help="no progress bar (e.g. in cron logs)")

    def handle(self, *args, **options):
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        user = None
        if options["user"]:
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"no user named {options['user']!r}")
        started = time.monotonic()
        try:
            imp = services.suppression_import_create(filename=path.name, data=path.read_bytes(), created_by=user,
                                                     source=options["source"])
        except ServiceError as exc:
            raise CommandError(f"{path}: {exc.message}") from None
        with tqdm(total=imp.total_rows, unit="row", desc=path.name, disable=options["no_progress"],
                  file=self.stderr._out) as bar:
            imp = services.suppression_import_run(import_id=imp.pk, progress=bar.update)
        if imp.status != ImportStatus.DONE:
            raise CommandError(f"{path}: import #{imp.pk} {imp.status}: {imp.error}")
        if options["verbosity"] >= 1:
            # The first 20 skipped rows (all that the import keeps with -v 2); the admin page lists them too.
            shown = imp.skipped_rows if options["verbosity"] >= 2 else imp.skipped_rows[:20]
            for line, why in shown:
                self.stderr.write(f"line {line}: {why}")
            hidden = imp.skipped - len(shown)
            if hidden > 0:
                self.stderr.write(f"… and {hidden} more skipped rows (-v 2 lists up to "
                                  f"{imp.SKIP_DETAIL_LIMIT}; the admin import page shows them too)")
        elapsed = time.monotonic() - started
        self.stdout.write(
            f"{path.name}: {imp.added} added, {imp.updated} extended, {imp.skipped} skipped "
            f"of {imp.total_rows} rows in {elapsed:.1f}s (import #{imp.pk})"
        )
