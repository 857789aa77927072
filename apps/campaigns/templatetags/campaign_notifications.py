"""``{% unread_notifications %}``: the signed-in user's unread notification count for the admin header."""
from django import template

from apps.campaigns import selectors

register = template.Library()


@register.simple_tag(takes_context=True)
def unread_notifications(context) -> int:
    request = context.get("request")
    user = getattr(request, "user", None)
    return selectors.notification_unread_count(user=user) if user is not None else 0
