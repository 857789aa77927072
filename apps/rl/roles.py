"""Who may call the decision API: the services and surfaces that show offers (group Integration)
make decisions and report rewards; staff may read a decision. Admin may do everything."""
from apps.core.roles import Role, role_permission

CanDecide = role_permission(Role.INTEGRATION)
CanReadDecisions = role_permission(Role.INTEGRATION, Role.MARKETER, Role.APPROVER)
