"""An ingest ``event_id`` is unique per (source, caller), no longer across everyone (issue 16, defect 4).

Events recorded before this migration do not say who sent them, so they get the caller ``legacy``,
a value no live caller has ("user:<id>" over HTTP, "nats:<subject>" over NATS). Their stored answers
stay; ``ingest_event_process`` still answers a resend of exactly the same body as a duplicate of such
an event, so a client retrying across the upgrade is not credited twice.

Adding the column with a default fills existing rows in the same statement; the default is not
kept, so every new row must name its caller. The old unique index on ``event_id`` becomes a plain
index (lookups by id in the admin), and the new constraint takes over.
"""
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("omnichannel", "0002_sources_triggers_roles"),
    ]

    operations = [
        migrations.AddField(
            model_name="ingestevent",
            name="caller",
            field=models.CharField(
                default="legacy",
                help_text='Who sent it: "user:<id>" (the API token\'s user), "nats:<subject>", or "legacy" for '
                          'events recorded before callers were kept',
                max_length=255,
            ),
            preserve_default=False,
        ),
        migrations.AlterField(
            model_name="ingestevent",
            name="event_id",
            field=models.CharField(db_index=True, help_text="The caller's id of the event", max_length=128),
        ),
        migrations.AddConstraint(
            model_name="ingestevent",
            constraint=models.UniqueConstraint(fields=("source", "caller", "event_id"),
                                               name="omni_ingest_event_once_per_caller"),
        ),
    ]
