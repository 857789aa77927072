import pytest

from tests.factories import make_user


def _user(username: str, *roles: str, is_staff: bool = True):
    return make_user(*roles, username=username, is_staff=is_staff)


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


