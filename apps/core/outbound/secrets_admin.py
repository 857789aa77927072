"""The admin side of encrypted credentials: each entry shows "set" or "not set" and takes a new value;
a stored value is never rendered back (not in the input, not in the page, not in a hidden field).

``SecretFieldsMixin`` on a ``ModelAdmin`` chooses which entries each ``EncryptedJSONField`` offers
(``secret_fields = {"credentials": ["api_token"]}`` or ``get_secret_keys(request, obj, field)``, e.g.
by a connection's kind). Blank inputs keep what is stored; a ticked "clear" removes the entry.
"""
from __future__ import annotations

from collections.abc import Sequence

from django import forms
from django.utils.html import format_html, format_html_join

from apps.core.outbound.crypto import SecretDict, SecretPatch

__all__ = ["SecretDictFormField", "SecretDictWidget", "SecretFieldsMixin"]


def _is_set(value, key: str) -> bool:
    return isinstance(value, dict) and value.get(key) not in (None, "")


class SecretDictWidget(forms.Widget):
    """One password input per entry (always empty), its status, and a "clear" box when it is set."""

    def __init__(self, keys: Sequence[str] = (), attrs=None):
        super().__init__(attrs)
        self.keys = tuple(keys)

    def _keys_for(self, value) -> list[str]:
        keys = list(self.keys)
        if isinstance(value, dict):
            keys += sorted(k for k in value if k not in keys)
        return keys

    def render(self, name, value, attrs=None, renderer=None):
        if isinstance(value, SecretDict) and value.undecryptable_token is not None:
            note = format_html('<p class="errornote">The stored credentials cannot be decrypted with the '
                               "configured OUTBOUND_SECRET_KEYS; enter them again.</p>")
        else:
            note = ""
        rows = format_html_join(
            "", '<div class="secret-entry" style="margin-bottom:4px"><label for="id_{0}__{1}" style="display:inline-block;'
            'min-width:10em">{1}</label> <input type="password" name="{0}__{1}" id="id_{0}__{1}" value="" '
            'autocomplete="new-password" placeholder="{2}"> <strong>{3}</strong>{4}</div>',
            ((name, key, "leave blank to keep" if _is_set(value, key) else "",
              "set" if _is_set(value, key) else "not set",
              format_html(' <label><input type="checkbox" name="{0}__{1}__clear"> clear</label>', name, key)
              if _is_set(value, key) else "")
             for key in self._keys_for(value)),
        )
        return format_html("{}{}", note, rows)

    def value_from_datadict(self, data, files, name) -> SecretPatch:
        patch = SecretPatch()
        prefix = f"{name}__"
        for field_name in data:
            if not field_name.startswith(prefix) or field_name.endswith("__clear"):
                continue
            key = field_name[len(prefix):]
            value = data.get(field_name)
            if value:
                patch[key] = value
        for field_name in data:
            if field_name.startswith(prefix) and field_name.endswith("__clear") and data.get(field_name):
                key = field_name[len(prefix):-len("__clear")]
                patch.setdefault(key, None)
        return patch

    def value_omitted_from_data(self, data, files, name) -> bool:
        return False


class SecretDictFormField(forms.Field):
    """Cleans to a :class:`SecretPatch`; ``EncryptedJSONField.save_form_data`` merges it into what is stored."""

    widget = SecretDictWidget

    def __init__(self, *, keys: Sequence[str] = (), **kwargs):
        kwargs.setdefault("widget", SecretDictWidget(keys=keys))
        super().__init__(**kwargs)

    def set_keys(self, keys: Sequence[str]) -> None:
        self.widget.keys = tuple(keys)

    def to_python(self, value) -> SecretPatch:
        return value if isinstance(value, SecretPatch) else SecretPatch()

    def validate(self, value) -> None:
        for key, item in value.items():
            if item is not None and len(item) > 10_000:
                raise forms.ValidationError(f"{key} is longer than 10000 characters")

    def has_changed(self, initial, data) -> bool:
        return bool(data)

    def bound_data(self, data, initial):
        return initial  # a re-displayed form (after an error elsewhere) shows the status, never what was typed

    def prepare_value(self, value):
        return value


class SecretFieldsMixin:
    """For a ``ModelAdmin`` with ``EncryptedJSONField`` s: which entries each field offers.

    ``secret_fields`` maps a field name to its entries; override ``get_secret_keys`` to choose by the
    object (a connection's kind). The fields stay out of ``list_display``/``readonly_fields`` by design:
    their only rendering is the status widget."""

    secret_fields: dict[str, Sequence[str]] = {}

    def get_secret_keys(self, request, obj, field_name: str) -> Sequence[str]:
        return self.secret_fields.get(field_name, ())

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        for name, field in form.base_fields.items():
            if isinstance(field, SecretDictFormField):
                keys = list(self.get_secret_keys(request, obj, name))
                model_field = self.model._meta.get_field(name)
                keys += [k for k in getattr(model_field, "secret_keys", ()) if k not in keys]
                field.set_keys(keys)
        return form
