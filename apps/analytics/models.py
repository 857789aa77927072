"""The analytics slice keeps its data in ClickHouse, not Postgres. ``Dashboard`` is an unmanaged
model without a table: it only gives the admin an "Analytics › Dashboard" entry (with its own
permission check) whose pages are drawn from ClickHouse aggregates."""
from django.db import models


class Dashboard(models.Model):
    class Meta:
        managed = False
        default_permissions = ()
        verbose_name = "dashboard"
        verbose_name_plural = "dashboard"
