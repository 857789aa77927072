import pytest
from django.contrib.auth.models import Group, User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient


def _user(username: str, *roles: str, is_staff: bool = True) -> User:
    # No password: hashing one costs ~0.3 s per user; tests log in with tokens or force_login.
    user = User.objects.create_user(username=username, password=None, is_staff=is_staff)
    for role in roles:
        # get_or_create: a transactional test before this one flushed the groups the migration made.
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user


@pytest.fixture
def marketer(db):
    return _user("marketer", "Marketer")


@pytest.fixture
def approver(db):
    return _user("approver", "Approver")


@pytest.fixture
def admin_user(db):
    return _user("admin", "Admin")


@pytest.fixture
def nobody(db):
    """Authenticated, staff, but no role."""
    return _user("nobody")


def token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client
