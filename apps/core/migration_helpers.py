"""Helpers for data migrations that give the role groups their model permissions.

Permission rows are normally created after ``migrate`` (post_migrate); these helpers create them first
so a slice's permission migration works on a fresh database. Keep the signatures stable: migrations
import them.
"""
from __future__ import annotations

from django.contrib.auth.management import create_permissions


def all_model_permissions(models: tuple[str, ...]) -> list[str]:
    return [f"{action}_{model}" for model in models for action in ("add", "change", "delete", "view")]


def grant_role_permissions(apps, app_label: str, grants: dict[str, list[str]]) -> None:
    """Give each group in ``grants`` (created if missing) those permission codenames of ``app_label``."""
    app_config = apps.get_app_config(app_label)
    app_config.models_module = True
    create_permissions(app_config, verbosity=0)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for group_name, codenames in grants.items():
        group, _ = Group.objects.get_or_create(name=group_name)
        perms = Permission.objects.filter(content_type__app_label=app_label, codename__in=codenames)
        missing = set(codenames) - set(perms.values_list("codename", flat=True))
        if missing:
            raise RuntimeError(f"permissions missing for {group_name}: {sorted(missing)}")
        group.permissions.add(*perms)


def revoke_role_permissions(apps, app_label: str, grants: dict[str, list[str]]) -> None:
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for group_name, codenames in grants.items():
        group = Group.objects.filter(name=group_name).first()
        if group is not None:
            group.permissions.remove(
                *Permission.objects.filter(content_type__app_label=app_label, codename__in=codenames))


# --- user ids that break the one rule (apps.core.identifiers) -------------------------------------

# Every column that holds a user id, with the rows that hold something else. Loyalty ledger rows carry
# no user id of their own (they belong to an account); suppression identifiers mix user ids with
# device tokens longer than 128 characters and have their own rule (docs/RULES.md §4).
USER_ID_COLUMNS: tuple[tuple[str, str, str, dict], ...] = (
    ("loyalty", "LoyaltyAccount", "user_id", {}),
    ("loyalty", "RewardSignal", "user_id", {}),
    ("omnichannel", "Contact", "user_id", {}),
    ("omnichannel", "IngestEvent", "user_id", {"user_id": ""}),  # a device-only event
    ("omnichannel", "Interaction", "user_id", {"user_id__startswith": "device:"}),  # an anonymous device
    ("omnichannel", "Activation", "user_id", {}),
    ("omnichannel", "SendLedger", "user_id", {}),
    ("omnichannel", "InboxMessage", "user_id", {}),
)


def user_id_report(apps, *, columns=USER_ID_COLUMNS, examples: int = 3, batch: int = 500) -> list[dict]:
    """The user-id columns holding values that break the rule, read-only, through ``apps``' models (the
    historical ones in a migration): ``[{"model", "table", "column", "rows", "values", "examples"}]``,
    ``examples`` being ``(value, problem)`` pairs. Columns whose values all pass are left out; so are
    models of apps that are not installed."""
    from apps.core.identifiers import user_id_problem

    reports = []
    for app_label, model_name, column, excluded in columns:
        try:
            model = apps.get_model(app_label, model_name)
        except LookupError:
            continue
        rows = model._default_manager.order_by()
        if excluded:
            rows = rows.exclude(**excluded)
        values = rows.values_list(column, flat=True).distinct()
        bad = [(value, problem) for value in values.iterator(chunk_size=2000)
               if (problem := user_id_problem(value))]
        if not bad:
            continue
        count = sum(
            rows.filter(**{f"{column}__in": [value for value, _ in bad[start:start + batch]]}).count()
            for start in range(0, len(bad), batch)
        )
        bad.sort(key=lambda item: item[0])
        reports.append({
            "model": f"{app_label}.{model_name}", "table": model._meta.db_table, "column": column,
            "rows": count, "values": len(bad),
            "examples": [(value[:60], problem) for value, problem in bad[:examples]],
        })
    return reports


def log_user_id_report(apps, schema_editor=None) -> list[dict]:
    """``RunPython`` body: log a warning per column whose user ids break the rule; changes nothing."""
    import structlog

    log = structlog.get_logger("apps.core.identifiers")
    reports = user_id_report(apps)
    for report in reports:
        log.warning("user_ids_break_the_rule", **report,
                    hint="docs/RULES.md: 1-128 characters, no whitespace or control characters; fix by hand")
    return reports
