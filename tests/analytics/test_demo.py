"""manage.py seed_demo's analytics part: history for live campaigns, idempotent."""
import datetime as dt

import pytest

from apps.analytics import demo, selectors
from apps.core import clickhouse as ch

pytestmark = pytest.mark.usefixtures("clickhouse_db")


def test_demo_history_is_written_once(campaign_tag):
    try:
        written = demo.seed_campaign(campaign_tag)
        assert written > 1000
        assert demo.seed_campaign(campaign_tag) == 0
        count = "SELECT count() FROM analytics_events WHERE campaign_id = %(c)s"
        stored = ch.execute(count, {"c": campaign_tag})[0][0]
        assert demo.seed_campaign(campaign_tag) == 0 and ch.execute(count, {"c": campaign_tag})[0][0] == stored
        now = dt.datetime.now(dt.timezone.utc)
        report = selectors.campaign_report(campaign_id=campaign_tag, start=now - dt.timedelta(hours=49), end=now, granularity="hour")
        totals = report["totals"]
        assert totals["bids"] > 0 and totals["wins"] > 0 and totals["spend"] > 0 and totals["requests"] > totals["bids"]
    finally:
        ch.execute("ALTER TABLE analytics_events DELETE WHERE campaign_id = %(c)s", {"c": campaign_tag})
        # its no_bid rows carry no campaign: remove the recent demo no-bids of this test database too
        ch.execute("ALTER TABLE analytics_events DELETE WHERE event_type = 'no_bid' AND extra = %(m)s", {"m": demo.DEMO_MARKER})


@pytest.mark.django_db
def test_seed_covers_live_campaigns_and_survives_clickhouse_down(settings):
    from apps.bidding import demo as bidding_demo  # a live campaign, built through the services
    from apps.campaigns import selectors as campaign_selectors

    bidding_demo.seed()
    (campaign,) = campaign_selectors.campaign_list(status="live")
    demo.seed()
    assert ch.execute(
        "SELECT count() FROM analytics_events WHERE campaign_id = %(c)s AND extra = %(m)s",
        {"c": str(campaign.pk), "m": demo.DEMO_MARKER},
    )[0][0] > 0
    settings.CLICKHOUSE_URL = "clickhouse://default@127.0.0.1:1/nowhere"
    demo.seed()  # logged, not raised: seed_demo goes on with the other apps
