"""Roles are Django groups (created by a migration). Permission checks live in services, so the
admin and the API share them; the DRF permission classes below only gate whole endpoints."""
from django.contrib.auth.models import AbstractBaseUser
from rest_framework.permissions import BasePermission


class Role:
    MARKETER = "Marketer"
    APPROVER = "Approver"
    ADMIN = "Admin"
    # Service users (apps, POS terminals, partners) calling loyalty, ingest and activation.
    INTEGRATION = "Integration"
    ALL = (MARKETER, APPROVER, ADMIN, INTEGRATION)


def user_has_role(user: AbstractBaseUser | None, *roles: str) -> bool:
    """True for superusers, members of the Admin group and members of any of ``roles``."""
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser:
        return True
    names = set(user.groups.values_list("name", flat=True))
    return Role.ADMIN in names or bool(names.intersection(roles))


def role_permission(*roles: str) -> type[BasePermission]:
    """A DRF permission class that admits users holding any of ``roles`` (or Admin)."""

    class HasRole(BasePermission):
        message = f"This action requires one of the roles: {', '.join(roles or (Role.ADMIN,))}."

        def has_permission(self, request, view) -> bool:
            return user_has_role(request.user, *roles)

    HasRole.__name__ = "HasRole_" + "_".join(roles or ("Admin",))
    return HasRole


IsMarketer = role_permission(Role.MARKETER)
IsApprover = role_permission(Role.APPROVER)
IsStaffRole = role_permission(Role.MARKETER, Role.APPROVER)
IsAdminRole = role_permission()
