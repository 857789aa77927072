"""Users and API clients for every slice's tests."""
from __future__ import annotations

import itertools

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

_seq = itertools.count(1)


def make_user(*roles: str, username: str | None = None, password: str | None = None, is_staff: bool = True,
              superuser: bool = False, **extra):
    """A user holding ``roles`` (group names). No password unless given: hashing one costs ~0.2 s and
    token auth or ``force_login`` need none."""
    User = get_user_model()
    username = username or f"user{next(_seq)}"
    if superuser:
        return User.objects.create_superuser(username=username, password=password, email=f"{username}@example.com", **extra)
    user = User.objects.create_user(username=username, password=password, is_staff=is_staff, **extra)
    for role in roles:
        # get_or_create: a transactional test before this one flushed the groups the migrations made.
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user


def token_client(user) -> APIClient:
    """An API client authenticating as ``user`` with ``Authorization: Token <key>``."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    client.user = user
    return client
