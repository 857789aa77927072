"""Report stored user ids that break the one rule (apps.core.identifiers.clean_user_id); alter nothing.

Loyalty allowed spaces inside a user id until the rule was shared; such rows are logged (a warning per
column: rows, distinct values, a few examples) for a person to decide on, never rewritten silently.
On an empty database it does nothing. ``manage.py report_user_ids`` runs the same report any time.
"""
from django.db import migrations

from apps.core.migration_helpers import log_user_id_report


def report(apps, schema_editor):
    log_user_id_report(apps, schema_editor)


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0003_auth_audit"),
        ("loyalty", "0003_integration_role"),
        ("omnichannel", "0003_ingest_event_caller"),
    ]

    operations = [migrations.RunPython(report, migrations.RunPython.noop, elidable=True)]
