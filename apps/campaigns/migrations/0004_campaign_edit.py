"""CampaignEdit: the audit row of every campaign and offer edit (old and new values), readable by every role."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from apps.core.migration_helpers import grant_role_permissions, revoke_role_permissions

# Read-only for everyone: rows are written by the services, never through the admin.
GRANTS = {role: ["view_campaignedit"] for role in ("Marketer", "Approver", "Admin")}


def grant(apps, schema_editor):
    grant_role_permissions(apps, "campaigns", GRANTS)


def revoke(apps, schema_editor):
    revoke_role_permissions(apps, "campaigns", GRANTS)


class Migration(migrations.Migration):

    dependencies = [
        ('campaigns', '0003_role_permissions'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='CampaignEdit',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('action', models.CharField(choices=[('campaign_update', 'Campaign changed'), ('offer_create', 'Offer added'), ('offer_update', 'Offer changed'), ('offer_delete', 'Offer removed')], max_length=20)),
                ('source', models.CharField(choices=[('api', 'API'), ('admin', 'Admin'), ('task', 'Task or script')], max_length=10)),
                ('changes', models.JSONField(help_text='{field: {"old": value, "new": value}}')),
                ('created_at', models.DateTimeField(auto_now_add=True, db_index=True)),
                ('actor', models.ForeignKey(blank=True, help_text='Empty for a task or script', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('campaign', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='edits', to='campaigns.campaign')),
                ('offer', models.ForeignKey(blank=True, db_constraint=False, help_text='Empty for an edit of the campaign itself', null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='campaigns.offer')),
            ],
            options={
                'ordering': ['-created_at', '-id'],
                'indexes': [models.Index(fields=['campaign', '-created_at'], name='campaign_edit_by_campaign')],
            },
        ),
        migrations.RunPython(grant, revoke),
    ]
