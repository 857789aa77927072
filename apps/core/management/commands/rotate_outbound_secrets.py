"""Re-encrypt every stored credential under the first OUTBOUND_SECRET_KEYS key (after putting a new
key first); then the old key can be dropped. Rows no configured key opens are reported, not touched."""
from __future__ import annotations

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import transaction

from apps.core.outbound.crypto import DecryptionFailed, EncryptedJSONField, rotate


class Command(BaseCommand):
    help = "Re-encrypt stored vendor credentials under the first OUTBOUND_SECRET_KEYS key."

    def handle(self, *args, **options):
        rotated = unreadable = 0
        for model in apps.get_models():
            fields = [f for f in model._meta.concrete_fields if isinstance(f, EncryptedJSONField)]
            for field in fields:
                # the ORM would decrypt on read: take the ids here and each raw token under a row lock
                raw = model._base_manager.exclude(**{field.attname: ""}).values_list("pk", flat=True)
                for pk in raw.iterator():
                    with transaction.atomic():
                        token = _raw_token(model, field, pk)
                        try:
                            fresh = rotate(token)
                        except DecryptionFailed:
                            unreadable += 1
                            self.stderr.write(f"{model._meta.label} {pk}: {field.name} cannot be decrypted")
                            continue
                        model._base_manager.filter(pk=pk).update(**{field.attname: fresh})
                        rotated += 1
        self.stdout.write(f"rotated {rotated} credential value(s); {unreadable} unreadable")


def _raw_token(model, field, pk) -> str:
    from django.db import connection

    table = connection.ops.quote_name(model._meta.db_table)
    column = connection.ops.quote_name(field.column)
    pk_column = connection.ops.quote_name(model._meta.pk.column)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE {pk_column} = %s FOR UPDATE", [pk])  # noqa: S608
        return cursor.fetchone()[0]
