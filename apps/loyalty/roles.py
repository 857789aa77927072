"""Who may call the loyalty API.

Apps, POS terminals and partners call it with the token of a service user in the group
``Integration`` (created by this app's migration 0003). Admin may do everything; Marketers may read
balances and ledgers (support and campaign planning) but not move stars.
"""
from apps.core.roles import Role, role_permission

INTEGRATION = Role.INTEGRATION

CanWriteLoyalty = role_permission(INTEGRATION)  # Admin (and superusers) are always admitted too
CanReadLoyalty = role_permission(INTEGRATION, Role.MARKETER)
