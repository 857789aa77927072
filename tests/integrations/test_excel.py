"""Excel: the streaming writer (formats, frozen header, native charts, constant memory) and the
campaign report workbook, whose numbers equal the report API's."""
from __future__ import annotations

import datetime as dt
import io
import random
import uuid
from decimal import Decimal

import openpyxl
import pytest

from apps.core.xlsx import Chart, Column, Sheet, write_xlsx

UTC = dt.UTC


def test_the_writer_makes_a_workbook_openpyxl_reads_with_formats_frozen_header_and_a_chart():
    rows = [(dt.datetime(2026, 3, 1, tzinfo=UTC) + dt.timedelta(hours=h), 1000 + h, h, Decimal("1.25") * h, 0.125, f"<{h}&>") for h in range(48)]
    buffer = io.BytesIO()
    counts = write_xlsx(buffer, [
        Sheet("Summary", [Column("Metric"), Column("Value", "float")], [("Spend", 12.5), ("Nothing", None)],
              charts=[Chart("Wins and clicks", data_sheet="Hourly", categories=0, values=[1, 2], kind="bar")]),
        Sheet("Hourly", [Column("Hour", "datetime"), Column("Wins", "int"), Column("Clicks", "int"),
                         Column("Spend", "money"), Column("CTR", "percent"), Column("Note")], rows),
    ])
    assert counts == {"Summary": 2, "Hourly": 48}
    book = openpyxl.load_workbook(io.BytesIO(buffer.getvalue()))
    hourly = book["Hourly"]
    assert hourly.freeze_panes == "A2" and hourly["A1"].value == "Hour" and hourly["A1"].font.b
    assert hourly.max_row == 49
    assert hourly["A3"].value == dt.datetime(2026, 3, 1, 1) and hourly["A3"].number_format == "yyyy-mm-dd hh:mm"
    assert (hourly["B3"].value, hourly["B3"].number_format) == (1001, "#,##0")
    assert (hourly["D3"].value, hourly["D3"].number_format) == (1.25, "#,##0.00")
    assert (hourly["E3"].value, hourly["E3"].number_format) == (0.125, "0.00%")
    assert hourly["F3"].value == "<1&>"
    assert book["Summary"]["B3"].value is None
    [chart] = book["Summary"]._charts
    assert type(chart).__name__ == "BarChart"
    assert [s.val.numRef.f for s in chart.series] == ["'Hourly'!$B$2:$B$49", "'Hourly'!$C$2:$C$49"]


def test_the_writer_refuses_bad_sheets_and_reports_progress():
    with pytest.raises(ValueError, match="unique"):
        write_xlsx(io.BytesIO(), [Sheet("a", [Column("x")], []), Sheet("a", [Column("x")], [])])
    with pytest.raises(ValueError, match="unknown sheet"):
        write_xlsx(io.BytesIO(), [Sheet("a", [Column("x")], [], charts=[Chart("c", "b", 0, [0])])])
    seen: list[int] = []
    write_xlsx(io.BytesIO(), [Sheet("big", [Column("n", "int")], ((i,) for i in range(25_000)))],
               progress=seen.append, progress_every=10_000)
    assert seen[-1] == 25_000 and 10_000 in seen and 20_000 in seen


# --- the campaign report workbook against the report API ------------------------------------------

@pytest.fixture
def clickhouse_db():
    from apps.analytics import testing

    return testing.clickhouse_schema()


@pytest.fixture
def window(clickhouse_db):
    from apps.core import clickhouse as ch

    rng = random.Random()
    start = dt.datetime(rng.randrange(1975, 2100), rng.randrange(1, 13), rng.randrange(1, 26), tzinfo=UTC)
    yield start, start + dt.timedelta(days=2)
    ch.execute(f"ALTER TABLE analytics_events DROP PARTITION {start:%Y%m}", kind="ddl")


def _row(event_type: str, ts: dt.datetime, **fields) -> tuple:
    from apps.analytics import events

    us = int(ts.timestamp()) * 1_000_000 + ts.microsecond
    return events.row_to_insert(events.to_row(event_type, uuid.uuid4().hex, us, fields))


@pytest.mark.django_db
def test_the_report_workbook_numbers_equal_the_report_api(api_client, window, draft_campaign, marketer):
    from rest_framework.authtoken.models import Token

    from apps.analytics import events
    from apps.core import clickhouse as ch

    start, end = window
    rng = random.Random(3)
    rows = []
    for n in range(600):
        ts = start + dt.timedelta(seconds=rng.randrange(0, 2 * 86400))
        rows.append(_row("bid_response", ts, request_id=f"r{n}", campaign_id=str(draft_campaign.pk), price=2.0,
                         latency_us=rng.randrange(100, 5000)))
        if rng.random() < 0.5:
            rows.append(_row("win", ts, request_id=f"r{n}", campaign_id=str(draft_campaign.pk),
                             win_price=round(rng.uniform(0.5, 2.0), 4)))
            if rng.random() < 0.2:
                rows.append(_row("click", ts, request_id=f"r{n}", campaign_id=str(draft_campaign.pk)))
    ch.insert("analytics_events", events.COLUMNS, rows)
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=marketer).key}")
    params = {"from": start.isoformat(), "to": end.isoformat(), "granularity": "hour"}
    report = api_client.get(f"/v1/reports/campaigns/{draft_campaign.pk}", params).json()
    answer = api_client.get(f"/v1/reports/campaigns/{draft_campaign.pk}.xlsx", params)
    assert answer.status_code == 200, answer.content[:500]
    assert answer["Content-Type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert f"campaign-{draft_campaign.pk}-" in answer["Content-Disposition"]
    book = openpyxl.load_workbook(io.BytesIO(answer.content))
    hourly = list(book["Hourly"].iter_rows(min_row=2, values_only=True))
    assert len(hourly) == len(report["buckets"]) == 48
    for row, bucket in zip(hourly, report["buckets"], strict=True):
        assert row[0] == dt.datetime.fromisoformat(bucket["bucket"].replace("Z", "+00:00")).replace(tzinfo=None)
        assert row[1:6] == (bucket["requests"], bucket["bids"], bucket["wins"], bucket["clicks"], bucket["spend"])
        assert row[6] == bucket["ctr"] and row[7] == bucket["win_rate"]
        assert row[8:] == (bucket["latency_p50_us"], bucket["latency_p95_us"], bucket["latency_p99_us"])
    summary = {metric: value for metric, value in book["Summary"].iter_rows(min_row=2, values_only=True)}
    totals = report["totals"]
    assert summary["Campaign"] == "Spring Sale"
    assert (summary["Wins (impressions)"], summary["Clicks"], summary["Spend (USD)"]) == (
        totals["wins"], totals["clicks"], totals["spend"])
    assert summary["Bids"] == totals["bids"] == 600
    assert book["Summary"]._charts


@pytest.mark.django_db
def test_the_xlsx_report_needs_a_marketer_and_names_bad_parameters(api_client, draft_campaign):
    from rest_framework.authtoken.models import Token

    from apps.core.roles import Role

    from .conftest import make_user

    assert api_client.get(f"/v1/reports/campaigns/{draft_campaign.pk}.xlsx").status_code == 401
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=make_user(Role.APPROVER)).key}")
    assert api_client.get(f"/v1/reports/campaigns/{draft_campaign.pk}.xlsx").status_code == 403
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=make_user(Role.MARKETER)).key}")
    bad = api_client.get(f"/v1/reports/campaigns/{draft_campaign.pk}.xlsx", {"granularity": "week"})
    assert bad.status_code == 400 and bad.json()["field"] == "granularity"
    assert api_client.get("/v1/reports/campaigns/999999.xlsx").status_code == 404
