"""Bodies Postgres cannot store, or Python cannot walk, are 400s — not 500s (issue 16)."""
from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from apps.core.roles import Role
from apps.omnichannel.models import IngestEvent
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def _client(*roles: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=make_user(*roles)).key}")
    return client


def _ingest(body: str):
    return _client(Role.INTEGRATION).post("/v1/channels/ingest", data=body, content_type="application/json")


EVENT = '"event_id": "e-1", "source": "pos", "event_type": "wishlist_add", "user_id": "u-1"'


@pytest.mark.parametrize("extra, detail", [
    ('"note": "a\\u0000b"', "NUL"),
    ('"a\\u0000": 1', "NUL"),                       # in a key, as the fuzzer found
    ('"note": "\\ud800"', "unpaired surrogates"),    # a lone high surrogate
    ('"props": {"x": ["\\udc00"]}', "unpaired surrogates"),
    ('"deep": ' + "[" * 100 + "]" * 100, "nested deeper"),
    ('"deeper": ' + "[" * 5000 + "]" * 5000, "nested deeper"),  # past Python's recursion limit
])
def test_unstorable_or_too_deep_json_is_a_400_and_nothing_is_stored(extra, detail):
    response = _ingest("{" + EVENT + ", " + extra + "}")
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "parse_error"
    assert detail in response.json()["detail"]
    assert not IngestEvent.objects.exists()


def test_a_surrogate_pair_is_one_character_and_is_accepted():
    response = _ingest("{" + EVENT + ', "note": "\\ud83d\\ude00 ok"}')
    assert response.status_code == 201, response.content
    assert IngestEvent.objects.count() == 1
