"""Credentials at rest: Fernet (AES-128-CBC + HMAC-SHA256) with key rotation, and the model field
that stores a dict of credentials encrypted.

Keys come from ``OUTBOUND_SECRET_KEYS`` (``config.env``): the first encrypts, every key decrypts, so a
rotation is "put the new key first, run ``manage.py rotate_outbound_secrets``, drop the old key".
Without keys, development derives one from ``DJANGO_SECRET_KEY`` (every local process agrees without
setup); production refuses (:class:`SecretKeyMissing` here, and the ``core.E001`` deploy check).

The decrypted value of an :class:`EncryptedJSONField` is a :class:`SecretDict`: a plain ``dict`` to
the code that uses it, whose ``repr``/``str`` name the keys and never the values, so a log line or a
traceback that shows it leaks nothing. The admin never renders it back (``SecretFieldsMixin``).
"""
from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.db import models

from config import env

__all__ = [
    "DecryptionFailed", "EncryptedJSONField", "SecretDict", "SecretKeyMissing",
    "decrypt", "encrypt", "keys_configured", "rotate",
]


class SecretKeyMissing(env.ImproperlyConfiguredEnv):
    """Production without OUTBOUND_SECRET_KEYS, or a key that is not a Fernet key."""


class DecryptionFailed(ValueError):
    """A token none of the configured keys can open (a key was dropped too early, or it was tampered with)."""


def _dev_key() -> bytes:
    digest = hmac.new(env.SECRET_KEY.encode(), b"campaign-express outbound credentials", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest)


@functools.lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...], production: bool) -> MultiFernet:
    if not keys:
        if production:
            raise SecretKeyMissing("OUTBOUND_SECRET_KEYS must be set when CAMPAIGN_EXPRESS_ENV=production")
        return MultiFernet([Fernet(_dev_key())])
    fernets = []
    for index, key in enumerate(keys):
        try:
            fernets.append(Fernet(key.encode()))
        except ValueError:
            raise SecretKeyMissing(
                f"OUTBOUND_SECRET_KEYS item {index + 1} is not a Fernet key (urlsafe base64 of 32 bytes; "
                "make one with `python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`)"
            ) from None
    return MultiFernet(fernets)


def _current() -> MultiFernet:
    # Read at call time: tests (and a rotation) change config.env's constant, not the environment.
    return _fernet(tuple(env.OUTBOUND_SECRET_KEYS), env.IS_PRODUCTION)


def keys_configured() -> bool:
    """Whether usable keys are available (for the deploy check): never raises."""
    try:
        _current()
    except SecretKeyMissing:
        return False
    return True


def encrypt(plaintext: str) -> str:
    """A Fernet token (text) of ``plaintext`` under the first key."""
    return _current().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    """The plaintext of a token made under any configured key; :class:`DecryptionFailed` otherwise."""
    try:
        return _current().decrypt(token.encode()).decode()
    except InvalidToken:
        raise DecryptionFailed("no configured OUTBOUND_SECRET_KEYS key opens this value") from None


def rotate(token: str) -> str:
    """The same plaintext re-encrypted under the first key (a token already under it is re-made too)."""
    try:
        return _current().rotate(token.encode()).decode()
    except InvalidToken:
        raise DecryptionFailed("no configured OUTBOUND_SECRET_KEYS key opens this value") from None


class SecretDict(dict):
    """Decrypted credentials: a dict whose representation hides the values."""

    #: the stored token when it could not be decrypted: saved back unchanged rather than lost
    undecryptable_token: str | None = None

    def __repr__(self) -> str:
        if self.undecryptable_token is not None:
            return "<SecretDict: undecryptable>"
        return f"<SecretDict: {', '.join(sorted(map(str, self))) or 'empty'} (hidden)>"

    __str__ = __repr__

    def is_set(self, key: str) -> bool:
        value = self.get(key)
        return value not in (None, "")


class SecretPatch(dict):
    """What the admin's secret widget submits: ``{key: new value}`` to set, ``{key: None}`` to clear;
    keys left blank are absent (kept as they are). Applied to the stored dict, never replacing it."""


def apply_patch(current: dict | None, patch: SecretPatch) -> SecretDict:
    merged = SecretDict(current or {})
    if isinstance(current, SecretDict) and current.undecryptable_token is not None and patch:
        merged = SecretDict()  # new values replace an unreadable blob; nothing of it can be kept
    elif isinstance(current, SecretDict):
        merged.undecryptable_token = current.undecryptable_token
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


class EncryptedJSONField(models.TextField):
    """A dict of credentials (JSON) stored as one Fernet token; ``{}`` is stored as ``""``.

    Reads give a :class:`SecretDict`. A token no key opens reads as an empty ``SecretDict`` flagged
    ``undecryptable_token`` (the page still opens, "Test connection" says the credentials are
    unreadable) and is written back unchanged unless new values are given.
    ``secret_keys`` names the credential entries the admin widget offers by default."""

    # django-stubs: what the attribute holds once read, and what may be assigned to it
    _pyi_private_set_type: dict | SecretDict  # type: ignore[assignment]
    _pyi_private_get_type: SecretDict  # type: ignore[assignment]

    def __init__(self, *args: Any, secret_keys: tuple[str, ...] | list[str] = (), **kwargs: Any):
        self.secret_keys = tuple(secret_keys)
        kwargs.setdefault("blank", True)
        kwargs.setdefault("default", dict)
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        if self.secret_keys:
            kwargs["secret_keys"] = list(self.secret_keys)
        if kwargs.get("blank") is True:
            del kwargs["blank"]
        if kwargs.get("default") is dict:
            del kwargs["default"]
        return name, path, args, kwargs

    def from_db_value(self, value, expression, connection):
        return self.to_python(value)

    def to_python(self, value):
        if isinstance(value, SecretDict):
            return value
        if isinstance(value, dict):
            return SecretDict(value)
        if value in (None, ""):
            return SecretDict()
        try:
            data = json.loads(decrypt(value))
        except DecryptionFailed:
            unreadable = SecretDict()
            unreadable.undecryptable_token = value
            return unreadable
        return SecretDict(data if isinstance(data, dict) else {})

    def get_prep_value(self, value):
        if value is None:
            return None if self.null else ""
        if isinstance(value, SecretDict) and value.undecryptable_token is not None:
            return value.undecryptable_token
        if isinstance(value, str):
            return value  # already a token (a lookup, a fixture)
        if not isinstance(value, dict):
            raise TypeError(f"{self.name} takes a dict of credentials, got {type(value).__name__}")
        if not value:
            return ""
        return encrypt(json.dumps(dict(value), sort_keys=True, separators=(",", ":")))

    def value_to_string(self, obj):
        return self.get_prep_value(self.value_from_object(obj))

    def save_form_data(self, instance, data):
        if isinstance(data, SecretPatch):
            data = apply_patch(getattr(instance, self.attname, None), data)
        setattr(instance, self.attname, data)

    def formfield(self, **kwargs):
        from apps.core.outbound.secrets_admin import SecretDictFormField

        return SecretDictFormField(keys=self.secret_keys, required=False, label=self.verbose_name.capitalize(),
                                   help_text=self.help_text)
