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
