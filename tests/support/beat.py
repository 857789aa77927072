"""Reading beat schedules in tests: the shortest time between two runs of an entry."""
from __future__ import annotations

from celery.schedules import crontab


def min_period_seconds(schedule) -> float:
    """Seconds between two runs: the interval of a number, the shortest gap of a daily crontab."""
    if not isinstance(schedule, crontab):
        return float(schedule)
    assert len(schedule.day_of_week) == 7 and len(schedule.day_of_month) == 31 and len(schedule.month_of_year) == 12, \
        "only daily patterns are measured here"
    times = sorted(h * 60 + m for h in schedule.hour for m in schedule.minute)
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)] + [times[0] + 24 * 60 - times[-1]]
    return min(gaps) * 60.0
