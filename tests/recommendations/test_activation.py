"""The activation cascade offers "the best item for this user" instead of a fixed offer."""
import pytest

from apps.omnichannel import services as omni
from apps.recommendations import selectors, services
from tests.factories import make_user, token_client

pytestmark = pytest.mark.django_db


def test_activate_with_recommend_sends_the_best_item_and_its_reason(shop):
    services.trending_refresh()
    services.recommendations_rebuild()
    item, scored = selectors.best_item_for_user(user_id="u9", strategy="frequently_bought_together")
    assert (item.item_id, scored.reason) == ("socks", "bought with Trail Shoes")
    client = token_client(make_user("Integration", is_staff=False))
    response = client.post("/v1/channels/activate", {"user_id": "u9", "recommend": "frequently_bought_together",
                                                     "channels": ["in_app"]}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["title"], body["body"]) == ("Running Socks", "Running Socks: bought with Trail Shoes")
    assert body["data"] == {"item_id": "socks", "item_reason": "bought with Trail Shoes",
                            "recommend_strategy": "frequently_bought_together"}
    auto = omni.activation_create(user_id="stranger", recommend="auto", channels=["in_app"])
    assert (auto.title, auto.data["item_id"]) == ("Trail Shoes", "shoes")  # cold start: the trending top


def test_recommend_refusals(shop):
    client = token_client(make_user("Integration", is_staff=False))
    response = client.post("/v1/channels/activate", {"user_id": "u9", "recommend": "magic"}, format="json")
    assert response.status_code == 400 and "recommend" in response.json()["fields"]
    response = client.post("/v1/channels/activate", {"user_id": "u9", "recommend": "auto", "offer_id": 1},
                           format="json")
    assert response.status_code == 400 and response.json()["field"] == "recommend"
    response = client.post("/v1/channels/activate", {"user_id": "nobody-knows", "recommend": "trending"},
                           format="json")  # nothing trending yet, no model: nothing to offer
    assert response.status_code == 422 and response.json()["field"] == "recommend"
    assert response.json()["detail"] == "nothing to recommend to nobody-knows with strategy 'trending'"


def test_in_app_and_web_surfaces_show_recommendations_when_asked(shop):
    services.trending_refresh()
    services.recommendations_rebuild()
    client = token_client(make_user("Integration", is_staff=False))
    plain = client.get("/v1/channels/in-app/u9")
    assert plain.status_code == 200 and plain.json() == {"messages": []}  # unchanged unless asked
    for surface in ("in-app", "web"):
        body = client.get(f"/v1/channels/{surface}/u9", {"recommendations": 2,
                                                         "strategy": "frequently_bought_together"}).json()
        assert body["messages"] == []
        assert [(r["item_id"], r["name"], r["price"], r["reason"]) for r in body["recommendations"]] == [
            ("socks", "Running Socks", "12.00", "bought with Trail Shoes"),
            ("bottle", "Water Bottle", "20.00", "bought with Trail Shoes")]
    assert client.get("/v1/channels/web/u9", {"recommendations": ["1", "2"]}).json()["field"] == "recommendations"
    assert client.get("/v1/channels/web/u9", {"recommendations": ""}).status_code == 400
    bad = client.get("/v1/channels/web/u9", {"recommendations": "lots"})
    assert bad.status_code == 400 and bad.json()["field"] == "recommendations"
    assert bad.json()["detail"] == "recommendations: must be a whole number from 1 to 100, got 'lots'"
