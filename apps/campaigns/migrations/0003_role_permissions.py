"""Model permissions for the role groups, so marketers and approvers can use the admin as staff users.

Marketer: add/change/view campaigns and offers, view rules, votes and history.
Approver: view everything here (approving goes through the services, not a model permission).
Admin: every permission of this app.
The permission rows are normally created after migrate (post_migrate); they are created here first
so this migration works on a fresh database.
"""
from django.db import migrations

from apps.core.migration_helpers import all_model_permissions, grant_role_permissions, revoke_role_permissions

MODELS = ("campaign", "offer", "approvalrule", "approvalvote", "campaigntransition")
GRANTS = {
    "Marketer": ["add_campaign", "change_campaign", "view_campaign", "add_offer", "change_offer", "view_offer",
                 "view_approvalrule", "view_approvalvote", "view_campaigntransition"],
    "Approver": ["view_campaign", "view_offer", "view_approvalrule", "view_approvalvote", "view_campaigntransition"],
    "Admin": all_model_permissions(MODELS),
}


def grant(apps, schema_editor):
    grant_role_permissions(apps, "campaigns", GRANTS)


def revoke(apps, schema_editor):
    revoke_role_permissions(apps, "campaigns", GRANTS)


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0002_seed_approval_rules"),
        ("core", "0001_roles"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(grant, revoke)]
