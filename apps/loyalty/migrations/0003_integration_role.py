"""Roles for the loyalty slice.

* "Integration" (new): service users — apps, POS, partners — whose tokens call the loyalty API.
* Marketer: run promotions and channel bonuses in the admin; view accounts, the ledger and signals.
* Admin: every loyalty permission (adjusting stars is Admin-only, checked in the service).

Permission rows are created here first (normally post_migrate does it) so this works on a fresh database.
"""
from django.contrib.auth.management import create_permissions
from django.db import migrations

INTEGRATION = "Integration"
MODELS = ("loyaltyaccount", "ledgerentry", "promotion", "channelbonus", "rewardsignal")
GRANTS = {
    "Marketer": ["add_promotion", "change_promotion", "view_promotion",
                 "add_channelbonus", "change_channelbonus", "view_channelbonus",
                 "view_loyaltyaccount", "view_ledgerentry", "view_rewardsignal"],
    "Admin": [f"{action}_{model}" for model in MODELS for action in ("add", "change", "delete", "view")],
}


def grant(apps, schema_editor):
    app_config = apps.get_app_config("loyalty")
    app_config.models_module = True
    create_permissions(app_config, verbosity=0)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    Group.objects.get_or_create(name=INTEGRATION)
    for group_name, codenames in GRANTS.items():
        group, _ = Group.objects.get_or_create(name=group_name)
        perms = Permission.objects.filter(content_type__app_label="loyalty", codename__in=codenames)
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
            group.permissions.remove(*Permission.objects.filter(content_type__app_label="loyalty", codename__in=codenames))
    Group.objects.filter(name=INTEGRATION).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("loyalty", "0002_ledger_append_only"),
        ("core", "0001_roles"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(grant, revoke)]
