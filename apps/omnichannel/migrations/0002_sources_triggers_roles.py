"""Seed data and roles for the omnichannel slice.

* One IngestSource row per source, enabled (the admin switches them; INGEST_DISABLED_SOURCES also can).
* One TriggerRule per triggering event type (docs/RULES.md §5) with a plain default message, editable in
  the admin: without a rule an ingest trigger has nothing to say.
* The "Integration" group (service users of apps / POS / partners) — the loyalty slice creates it
  too; get_or_create keeps both migrations independent of their order.
* Model permissions: Marketers view activations, sends and email analytics and edit trigger rules;
  Admin gets every permission of this app. Permission rows are created here first so this works on
  a fresh database.
"""
from django.db import migrations

from apps.core.migration_helpers import all_model_permissions, grant_role_permissions, revoke_role_permissions

SOURCES = ("mobile_app", "pos", "kiosk", "web", "call_center", "partner_api", "iot")
TRIGGER_RULES = {
    "cart_abandon": ("Still thinking it over?", "The items in your cart are waiting for you.", 240),
    "purchase": ("Thanks for your order", "Here is something that goes well with it.", 60),
    "store_visit": ("Welcome in!", "Show this at the counter for today's in-store offer.", 120),
    "loyalty_swipe": ("Your stars at work", "Members get today's offer — ask at the counter.", 120),
    "check_in": ("You're checked in", "Here is an offer for your visit today.", 120),
    "product_view": ("Still interested?", "The item you looked at is ready when you are.", 720),
    "wishlist_add": ("Saved to your wishlist", "We'll keep it for you — here is an offer to go with it.", 720),
}
MODELS = ("ingestsource", "ingestevent", "interaction", "contact", "triggerrule", "activation",
          "activationtransition", "sendledger", "inboxmessage", "sendgridbatch", "emailevent", "emailstats",
          "emailrecipient")
GRANTS = {
    "Marketer": ["view_activation", "view_activationtransition", "view_sendledger", "view_emailstats",
                 "view_emailevent", "view_ingestsource", "view_triggerrule", "change_triggerrule"],
    "Admin": all_model_permissions(MODELS),
}
INTEGRATION = "Integration"


def seed(apps, schema_editor):
    IngestSource = apps.get_model("omnichannel", "IngestSource")
    TriggerRule = apps.get_model("omnichannel", "TriggerRule")
    for source in SOURCES:
        IngestSource.objects.get_or_create(source=source)
    for event_type, (title, body, cooldown) in TRIGGER_RULES.items():
        TriggerRule.objects.get_or_create(event_type=event_type,
                                          defaults={"title": title, "body": body, "cooldown_minutes": cooldown})

    apps.get_model("auth", "Group").objects.get_or_create(name=INTEGRATION)
    grant_role_permissions(apps, "omnichannel", GRANTS)


def unseed(apps, schema_editor):
    revoke_role_permissions(apps, "omnichannel", GRANTS)
    # The Integration group is shared with other slices: it stays.
    apps.get_model("omnichannel", "TriggerRule").objects.filter(event_type__in=TRIGGER_RULES).delete()
    apps.get_model("omnichannel", "IngestSource").objects.filter(source__in=SOURCES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("omnichannel", "0001_initial"),
        ("core", "0001_roles"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(seed, unseed)]
