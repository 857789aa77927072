"""Performance across campaigns and the campaign calendar (issue 19), pages of the campaign admin.

* ``/admin/campaigns/campaign/overview/`` — every campaign's figures for a period against the
  previous period of the same length: spend, impressions (wins), clicks, CTR, bids, win rate and the
  messages its activations sent; a leaderboard; each row drills down to the campaign dashboard for
  the same period (which links back). Figures come from ``apps.analytics.selectors.
  campaigns_overview`` — the report API's definitions, so the numbers are the API's.
* ``/admin/campaigns/campaign/calendar/`` — campaigns by flight dates on a month or week timeline,
  coloured by status, filtered like the list (same query string); a click opens the campaign.
"""
from __future__ import annotations

import datetime as dt

from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse

from apps.core import clickhouse as ch
from apps.core.exceptions import ServiceError

from .cockpit import fmt_date, fmt_pct, pacing
from .models import Campaign, CampaignStatus

UTC = dt.timezone.utc
PERIODS = {"7d": 7, "30d": 30, "90d": 90}
SORTS = {"spend": "Spend", "wins": "Impressions", "clicks": "Clicks", "ctr": "CTR"}
CALENDAR_PARAMS = ("month", "week", "scale")


def _day(raw: str, field: str) -> dt.datetime:
    try:
        day = dt.date.fromisoformat(raw.strip())
    except ValueError:
        raise ServiceError(f"'{field}' must be a date like 2027-03-01, got {raw!r}.", field=field) from None
    return dt.datetime(day.year, day.month, day.day, tzinfo=UTC)


def overview_period(params, *, now: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime, str]:
    """``[start, end)`` from ``from``/``to`` dates (``to`` inclusive) or ``period`` (7d, 30d, 90d up to
    the end of today, UTC). ServiceError names a bad parameter."""
    now = now or dt.datetime.now(UTC)
    if params.get("from") or params.get("to"):
        if not (params.get("from") and params.get("to")):
            raise ServiceError("Give both 'from' and 'to', or a period.", field="from")
        start, end = _day(params["from"], "from"), _day(params["to"], "to") + dt.timedelta(days=1)
        if start >= end:
            raise ServiceError("'from' must not be after 'to'.", field="from")
        if (end - start).days > 366:
            raise ServiceError("The period may be at most a year long.", field="to")
        return start, end, "custom"
    period = params.get("period") or "7d"
    if period not in PERIODS:
        raise ServiceError(f"'period' must be one of {', '.join(PERIODS)}, got {period!r}.", field="period")
    end = now.replace(hour=0, minute=0, second=0, microsecond=0) + dt.timedelta(days=1)
    return end - dt.timedelta(days=PERIODS[period]), end, period


def _change(current: float | None, previous: float | None) -> float | None:
    if current is None or not previous:
        return None
    return (current - previous) / previous


def _sum(figures: dict, key: str) -> float:
    return sum(item[key] for item in figures.values())


def _totals(figures: dict) -> dict:
    wins, clicks, bids = _sum(figures, "wins"), _sum(figures, "clicks"), _sum(figures, "bids")
    messages: dict[str, dict[str, int]] = {}
    for item in figures.values():
        for channel, counts in item["messages"].items():
            for kind, n in counts.items():
                messages.setdefault(channel, {}).setdefault(kind, 0)
                messages[channel][kind] += n
    return {"spend": round(_sum(figures, "spend"), 6), "wins": wins, "clicks": clicks, "bids": bids,
            "ctr": clicks / wins if wins else None, "win_rate": wins / bids if bids else None, "messages": messages}


def overview_view(model_admin, request):
    from apps.analytics import overview as analytics

    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    context = {**model_admin.admin_site.each_context(request), "opts": model_admin.opts,
               "title": "Campaign overview", "periods": list(PERIODS), "sorts": SORTS, "error": None}
    try:
        start, end, period = overview_period(request.GET)
        sort = request.GET.get("sort") or "spend"
        if sort not in SORTS:
            raise ServiceError(f"'sort' must be one of {', '.join(SORTS)}.", field="sort")
        previous_start = start - (end - start)
        current = analytics.campaigns_overview(start=start, end=end)
        previous = analytics.campaigns_overview(start=previous_start, end=start)
    except ServiceError as exc:
        context["error"] = exc.message
        return TemplateResponse(request, "admin/campaigns/campaign/overview.html", context, status=400)
    except ch.ClickHouseError as exc:
        context["error"] = f"ClickHouse is not reachable right now ({type(exc).__name__}); try again shortly."
        return TemplateResponse(request, "admin/campaigns/campaign/overview.html", context, status=503)
    ids = [int(cid) for cid in current if cid.isdigit()]
    campaigns = {c.pk: c for c in Campaign.objects.filter(pk__in=ids)}
    now = dt.datetime.now(UTC)
    rows, flags = [], {"over": 0, "under": 0}
    for cid, item in current.items():
        campaign = campaigns.get(int(cid)) if cid.isdigit() else None
        before = previous.get(cid)
        pace = None
        if campaign is not None and campaign.status in (CampaignStatus.LIVE, CampaignStatus.PAUSED):
            pace = pacing(budget=campaign.budget, spent=campaign.spent, start_at=campaign.start_at,
                          end_at=campaign.end_at, now=now)
            if pace.flag:
                flags[pace.flag] += 1
        rows.append({"id": cid, "campaign": campaign, **item,
                     "ctr_pct": fmt_pct(item["ctr"], 2), "pacing": pace,
                     "spend_change": _change(item["spend"], before["spend"] if before else None)})
    rows.sort(key=lambda r: (r[sort] is None, -(r[sort] or 0)))
    totals, totals_before = _totals(current), _totals(previous)
    context.update(
        period=period, start=start, end=end, previous_start=previous_start, sort=sort, rows=rows,
        from_value=fmt_date(start), to_value=fmt_date(end - dt.timedelta(days=1)),
        previous_label=f"{fmt_date(previous_start)} – {fmt_date(start - dt.timedelta(days=1))}",
        report_from=start.strftime("%Y-%m-%dT%H:%M"), report_to=end.strftime("%Y-%m-%dT%H:%M"),
        tiles=[
            {"key": key, "label": label, "value": value(totals), "previous": value(totals_before),
             "change": fmt_pct(_change(raw(totals), raw(totals_before))) if _change(raw(totals), raw(totals_before))
             is not None else "—"}
            for key, label, value, raw in (
                ("spend", "Spend (USD)", lambda t: f"{t['spend']:,.2f}", lambda t: t["spend"]),
                ("wins", "Impressions", lambda t: f"{t['wins']:,}", lambda t: t["wins"]),
                ("clicks", "Clicks", lambda t: f"{t['clicks']:,}", lambda t: t["clicks"]),
                ("ctr", "CTR", lambda t: fmt_pct(t["ctr"], 2), lambda t: t["ctr"]),
                ("bids", "Bids", lambda t: f"{t['bids']:,}", lambda t: t["bids"]),
                ("win_rate", "Win rate", lambda t: fmt_pct(t["win_rate"]), lambda t: t["win_rate"]),
            )
        ],
        messages_rows=sorted(totals["messages"].items()),
        flags=flags,
    )
    return TemplateResponse(request, "admin/campaigns/campaign/overview.html", context)


# --- calendar --------------------------------------------------------------------------------------

def calendar_period(params, *, now: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime, str]:
    """A month (``month=2027-03``, default this month) or a week (``scale=week``, ``week=`` any day of
    it, default this week; weeks start on Monday), as ``[start, end)`` in UTC."""
    now = now or dt.datetime.now(UTC)
    if (params.get("scale") or "month") == "week":
        day = _day(params["week"], "week") if params.get("week") else now.replace(hour=0, minute=0, second=0,
                                                                                  microsecond=0)
        start = day - dt.timedelta(days=day.weekday())
        return start, start + dt.timedelta(days=7), "week"
    raw = params.get("month") or now.strftime("%Y-%m")
    start = _day(f"{raw}-01", "month") if len(raw) == 7 else _day(raw, "month").replace(day=1)
    return start, (start + dt.timedelta(days=32)).replace(day=1), "month"


def calendar_bars(campaigns, *, start: dt.datetime, end: dt.datetime) -> list[dict]:
    """Each campaign's bar: where it starts and how wide it is, in percent of ``[start, end)``."""
    span = (end - start).total_seconds()
    bars = []
    for c in campaigns:
        left = max(c.start_at, start)
        right = min(c.end_at, end)
        if right <= left:
            continue
        bars.append({"campaign": c, "left": round(100 * (left - start).total_seconds() / span, 3),
                     "width": round(100 * (right - left).total_seconds() / span, 3),
                     "starts_before": c.start_at < start, "ends_after": c.end_at > end,
                     "dates": f"{fmt_date(c.start_at)} → {fmt_date(c.end_at)}"})
    return bars


def calendar_view(model_admin, request):
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    context = {**model_admin.admin_site.each_context(request), "opts": model_admin.opts, "title": "Campaign calendar"}
    try:
        start, end, scale = calendar_period(request.GET)
    except ServiceError as exc:
        context["error"] = exc.message
        return TemplateResponse(request, "admin/campaigns/campaign/calendar.html", context, status=400)
    # Filter like the list: the changelist's own filters and search read the rest of the query string.
    original = request.GET
    request.GET = original.copy()
    for key in CALENDAR_PARAMS:
        request.GET.pop(key, None)
    filters = request.GET.urlencode()
    try:
        cl = model_admin.get_changelist_instance(request)
        queryset = cl.queryset
    finally:
        request.GET = original
    campaigns = queryset.filter(start_at__lt=end, end_at__gt=start).order_by("start_at", "pk")
    days = []
    day = start
    while day < end:
        days.append({"label": day.strftime("%d") if scale == "month" else day.strftime("%a %d"),
                     "left": round(100 * (day - start).total_seconds() / (end - start).total_seconds(), 3),
                     "weekend": day.weekday() >= 5})
        day += dt.timedelta(days=1)
    step_back = start - dt.timedelta(days=1)
    base = f"scale={scale}" + (f"&{filters}" if filters else "")
    if scale == "week":
        prev_q, next_q = f"{base}&week={fmt_date(start - dt.timedelta(days=7))}", f"{base}&week={fmt_date(end)}"
        label = f"Week of {fmt_date(start)}"
    else:
        prev_q, next_q = f"{base}&month={step_back:%Y-%m}", f"{base}&month={end:%Y-%m}"
        label = start.strftime("%B %Y")
    context.update(scale=scale, start=start, end=end, label=label, days=days, prev_q=prev_q, next_q=next_q,
                   filters=filters, bars=calendar_bars(campaigns, start=start, end=end),
                   statuses=CampaignStatus.choices, month_q=f"scale=month&month={start:%Y-%m}"
                   + (f"&{filters}" if filters else ""),
                   week_q=f"scale=week&week={fmt_date(start)}" + (f"&{filters}" if filters else ""))
    return TemplateResponse(request, "admin/campaigns/campaign/calendar.html", context)

