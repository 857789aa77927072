"""The approval rules of docs/RULES.md §3. Editable in the admin afterwards; re-running never overwrites
an edited rule (get_or_create by name)."""
from decimal import Decimal

from django.db import migrations

RULES = [
    {"name": "Standard", "min_approvals": 1, "budget_threshold": None, "channels": []},
    {"name": "High Budget", "min_approvals": 2, "budget_threshold": Decimal("10000.00"), "channels": []},
    {"name": "Regulated Channel", "min_approvals": 2, "budget_threshold": None, "channels": ["sms", "whatsapp"]},
]


def seed_rules(apps, schema_editor):
    ApprovalRule = apps.get_model("campaigns", "ApprovalRule")
    for rule in RULES:
        ApprovalRule.objects.get_or_create(name=rule["name"], defaults={k: v for k, v in rule.items() if k != "name"})


def remove_rules(apps, schema_editor):
    apps.get_model("campaigns", "ApprovalRule").objects.filter(name__in=[r["name"] for r in RULES]).delete()


class Migration(migrations.Migration):
    dependencies = [("campaigns", "0001_initial")]
    operations = [migrations.RunPython(seed_rules, remove_rules)]
