"""Roles for the loyalty slice.

* "Integration" (new): service users — apps, POS, partners — whose tokens call the loyalty API.
* Marketer: run promotions and channel bonuses in the admin; view accounts, the ledger and signals.
* Admin: every loyalty permission (adjusting stars is Admin-only, checked in the service).

Permission rows are created here first (normally post_migrate does it) so this works on a fresh database.
"""
from django.db import migrations

from apps.core.migration_helpers import all_model_permissions, grant_role_permissions, revoke_role_permissions

INTEGRATION = "Integration"
MODELS = ("loyaltyaccount", "ledgerentry", "promotion", "channelbonus", "rewardsignal")
GRANTS = {
    "Marketer": ["add_promotion", "change_promotion", "view_promotion",
                 "add_channelbonus", "change_channelbonus", "view_channelbonus",
                 "view_loyaltyaccount", "view_ledgerentry", "view_rewardsignal"],
    "Admin": all_model_permissions(MODELS),
}


def grant(apps, schema_editor):
    apps.get_model("auth", "Group").objects.get_or_create(name=INTEGRATION)
    grant_role_permissions(apps, "loyalty", GRANTS)


def revoke(apps, schema_editor):
    revoke_role_permissions(apps, "loyalty", GRANTS)
    apps.get_model("auth", "Group").objects.filter(name=INTEGRATION).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("loyalty", "0002_ledger_append_only"),
        ("core", "0001_roles"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(grant, revoke)]
