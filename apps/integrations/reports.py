"""The campaign report as a real Excel workbook: a Summary sheet (campaign, period, totals and a
native chart of wins and clicks per bucket) and an Hourly (or Daily) sheet with every bucket of the
report API, number formats per column and a frozen header. Same figures as
``GET /v1/reports/campaigns/{id}`` (the one selector computes both)."""
from __future__ import annotations

import datetime as dt
from typing import IO, Any

from apps.core.xlsx import Chart, Column, Sheet, write_xlsx

XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

#: (report key, column title, kind)
BUCKET_COLUMNS = [
    ("bucket", "Bucket (UTC)", "datetime"), ("requests", "Requests", "int"), ("bids", "Bids", "int"),
    ("wins", "Wins (impressions)", "int"), ("clicks", "Clicks", "int"), ("spend", "Spend (USD)", "money"),
    ("ctr", "CTR", "percent"), ("win_rate", "Win rate", "percent"), ("latency_p50_us", "Latency p50 (µs)", "int"),
    ("latency_p95_us", "Latency p95 (µs)", "int"), ("latency_p99_us", "Latency p99 (µs)", "int"),
]


def _moment(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def campaign_report_sheets(report: dict[str, Any]) -> list[Sheet]:
    granularity = report["granularity"]
    data_name = "Hourly" if granularity == "hour" else "Daily"
    totals = report["totals"]
    summary_rows = [
        ("Campaign", report.get("campaign_name", "")), ("Campaign id", report["campaign_id"]),
        ("From (UTC)", _moment(report["from"])), ("To (UTC, exclusive)", _moment(report["to"])),
        ("Granularity", granularity), ("Requests", totals["requests"]), ("Bids", totals["bids"]),
        ("Wins (impressions)", totals["wins"]), ("Clicks", totals["clicks"]), ("Spend (USD)", totals["spend"]),
        ("CTR", totals["ctr"]), ("Win rate", totals["win_rate"]),
    ]
    buckets = ([_moment(b["bucket"]) if key == "bucket" else b.get(key) for key, _, _ in BUCKET_COLUMNS]
               for b in report["buckets"])
    return [
        Sheet("Summary", [Column("Metric", "text", 22), Column("Value", "text", 24)], summary_rows,
              charts=[Chart("Wins and clicks", data_sheet=data_name, categories=0, values=[3, 4], anchor="D2")]),
        Sheet(data_name, [Column(title, kind, 18 if kind == "datetime" else 14) for _, title, kind in BUCKET_COLUMNS],
              buckets),
    ]


def campaign_report_xlsx(report: dict[str, Any], target: str | IO[bytes]) -> dict[str, int]:
    """Write the workbook of ``report`` (the report API's dict) to ``target``."""
    return write_xlsx(target, campaign_report_sheets(report))


def report_filename(report: dict[str, Any]) -> str:
    return f"campaign-{report['campaign_id']}-{report['from'][:10]}-{report['to'][:10]}-{report['granularity']}.xlsx"
