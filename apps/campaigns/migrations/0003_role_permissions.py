"""Model permissions for the role groups, so marketers and approvers can use the admin as staff users.

Marketer: add/change/view campaigns and offers, view rules, votes and history.
Approver: view everything here (approving goes through the services, not a model permission).
Admin: every permission of this app.
The permission rows are normally created after migrate (post_migrate); they are created here first
so this migration works on a fresh database.
"""
from django.contrib.auth.management import create_permissions
from django.db import migrations

MODELS = ("campaign", "offer", "approvalrule", "approvalvote", "campaigntransition")
GRANTS = {
    "Marketer": ["add_campaign", "change_campaign", "view_campaign", "add_offer", "change_offer", "view_offer",
                 "view_approvalrule", "view_approvalvote", "view_campaigntransition"],
    "Approver": ["view_campaign", "view_offer", "view_approvalrule", "view_approvalvote", "view_campaigntransition"],
    "Admin": [f"{action}_{model}" for model in MODELS for action in ("add", "change", "delete", "view")],
}


def grant(apps, schema_editor):
    app_config = apps.get_app_config("campaigns")
    app_config.models_module = True
    create_permissions(app_config, verbosity=0)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for group_name, codenames in GRANTS.items():
        group, _ = Group.objects.get_or_create(name=group_name)
        perms = Permission.objects.filter(content_type__app_label="campaigns", codename__in=codenames)
        missing = set(codenames) - set(perms.values_list("codename", flat=True))
        if missing:
            raise RuntimeError(f"permissions missing for {group_name}: {sorted(missing)}")
        group.permissions.add(*perms)


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for group_name, codenames in GRANTS.items():
        group = Group.objects.filter(name=group_name).first()
        if group is not None:
            group.permissions.remove(*Permission.objects.filter(content_type__app_label="campaigns", codename__in=codenames))


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0002_seed_approval_rules"),
        ("core", "0001_roles"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(grant, revoke)]
