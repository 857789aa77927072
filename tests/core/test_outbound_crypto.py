"""apps.core.outbound.crypto and secrets_admin: Fernet round trip, key rotation, the field's storage,
a representation that hides values, and an admin form that never renders a stored secret."""
from __future__ import annotations

import json

import pytest
from cryptography.fernet import Fernet
from django import forms
from django.contrib import admin
from django.contrib.auth.models import User
from django.db import models
from django.test import RequestFactory

from apps.core.outbound import crypto
from apps.core.outbound.crypto import DecryptionFailed, EncryptedJSONField, SecretDict, SecretKeyMissing
from apps.core.outbound.secrets_admin import SecretFieldsMixin
from config import env

SECRET = "s3cr3t-Value-that-must-never-show"


class Vault(models.Model):
    """A model for these tests only: never migrated, only used for forms."""

    name = models.CharField(max_length=20)
    credentials = EncryptedJSONField(secret_keys=["api_token"])

    class Meta:
        app_label = "core"
        managed = False


@pytest.fixture
def keys(monkeypatch):
    """Set OUTBOUND_SECRET_KEYS (config.env's constant, as the tests of config do)."""
    def use(*items: bytes, production: bool = False):
        monkeypatch.setattr(env, "OUTBOUND_SECRET_KEYS", [k.decode() for k in items])
        monkeypatch.setattr(env, "IS_PRODUCTION", production)
    return use


def test_round_trip_and_fresh_tokens(keys):
    keys(Fernet.generate_key())
    token = crypto.encrypt(SECRET)
    assert SECRET not in token and crypto.decrypt(token) == SECRET
    assert crypto.encrypt(SECRET) != token  # random IV: equal secrets do not look equal at rest


def test_rotation_first_key_encrypts_all_decrypt(keys):
    old, new = Fernet.generate_key(), Fernet.generate_key()
    keys(old)
    under_old = crypto.encrypt(SECRET)
    keys(new, old)
    assert crypto.decrypt(under_old) == SECRET
    rotated = crypto.rotate(under_old)
    keys(new)
    assert crypto.decrypt(rotated) == SECRET
    with pytest.raises(DecryptionFailed, match="no configured OUTBOUND_SECRET_KEYS key"):
        crypto.decrypt(under_old)


def test_production_refuses_without_keys_and_development_derives_one(keys):
    keys()
    assert crypto.decrypt(crypto.encrypt("x")) == "x"
    keys(production=True)
    with pytest.raises(SecretKeyMissing, match="OUTBOUND_SECRET_KEYS must be set"):
        crypto.encrypt("x")
    assert crypto.keys_configured() is False


def test_a_malformed_key_is_named(monkeypatch):
    monkeypatch.setattr(env, "OUTBOUND_SECRET_KEYS", ["not-a-fernet-key"])
    with pytest.raises(SecretKeyMissing, match="item 1 is not a Fernet key"):
        crypto.encrypt("x")


def test_the_deploy_check_refuses_production_without_keys(keys):
    from apps.core.checks import outbound_secret_keys

    keys(production=True)
    assert [m.id for m in outbound_secret_keys(None)] == ["core.E001"]
    keys(Fernet.generate_key(), production=True)
    assert outbound_secret_keys(None) == []


def test_the_field_stores_one_token_and_reads_a_secret_dict(keys):
    keys(Fernet.generate_key())
    field = Vault._meta.get_field("credentials")
    stored = field.get_prep_value({"api_token": SECRET, "email": "a@example.com"})
    assert SECRET not in stored and "a@example.com" not in stored
    assert json.loads(crypto.decrypt(stored)) == {"api_token": SECRET, "email": "a@example.com"}
    value = field.from_db_value(stored, None, None)
    assert isinstance(value, SecretDict) and value == {"api_token": SECRET, "email": "a@example.com"}
    assert field.get_prep_value({}) == "" and field.from_db_value("", None, None) == {}


def test_a_secret_dict_hides_its_values_in_repr_str_and_formatting():
    value = SecretDict(api_token=SECRET, email="a@example.com")
    for text in (repr(value), str(value), f"{value}", "%s" % value, repr([value]), repr({"c": value})):
        assert SECRET not in text and "a@example.com" not in text
    assert "api_token" in repr(value)


def test_an_undecryptable_value_reads_empty_and_is_written_back_unchanged(keys):
    keys(Fernet.generate_key())
    stored = crypto.encrypt(json.dumps({"api_token": SECRET}))
    keys(Fernet.generate_key())  # the old key was dropped too early
    field = Vault._meta.get_field("credentials")
    value = field.from_db_value(stored, None, None)
    assert value == {} and value.undecryptable_token == stored
    assert field.get_prep_value(value) == stored


def _admin_form(obj=None, data=None):
    class VaultAdmin(SecretFieldsMixin, admin.ModelAdmin):
        fields = ("name", "credentials")
        secret_fields = {"credentials": ["email"]}

    request = RequestFactory().get("/")
    request.user = User(is_superuser=True, is_active=True, is_staff=True)
    form_class = VaultAdmin(Vault, admin.AdminSite()).get_form(request, obj, change=obj is not None)
    return form_class(data=data, instance=obj)


def test_the_admin_form_says_set_or_not_set_and_never_renders_the_value(keys):
    keys(Fernet.generate_key())
    obj = Vault(name="acme", credentials=SecretDict(api_token=SECRET))
    html = str(_admin_form(obj))
    assert SECRET not in html
    assert crypto.encrypt(SECRET)[:10] not in html
    assert 'name="credentials__api_token"' in html and 'value=""' in html
    assert "not set" in html  # email, offered by the admin, has no value
    assert html.count(">set<") == 1  # api_token


def test_the_admin_form_keeps_blank_entries_sets_new_ones_and_clears_ticked_ones(keys):
    keys(Fernet.generate_key())
    obj = Vault(name="acme", credentials=SecretDict(api_token=SECRET, email="old@example.com"))
    form = _admin_form(obj, {"name": "acme", "credentials__api_token": "", "credentials__email": "new@example.com"})
    assert form.is_valid(), form.errors
    saved = form.save(commit=False)
    assert saved.credentials == {"api_token": SECRET, "email": "new@example.com"}

    form = _admin_form(saved, {"name": "acme", "credentials__api_token": "", "credentials__email__clear": "on"})
    assert form.is_valid(), form.errors
    assert form.save(commit=False).credentials == {"api_token": SECRET}


def test_a_form_shown_again_after_an_error_does_not_echo_what_was_typed(keys):
    keys(Fernet.generate_key())

    class Strict(forms.ModelForm):
        class Meta:
            model = Vault
            fields = ("name", "credentials")

        def clean_name(self):
            raise forms.ValidationError("bad name")

    form = Strict(data={"name": "x", "credentials__api_token": SECRET}, instance=Vault(name="x"))
    assert not form.is_valid()
    assert SECRET not in str(form)
