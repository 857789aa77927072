"""Under ``CI=true`` a skip is a failure: a CI run must not pass while the browser, HAProxy or any
other test silently did not run. The reason of the skip is kept in the failure message."""
from __future__ import annotations

import os

import pytest


def ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def _reason(longrepr) -> str:
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # (path, line, "Skipped: why")
        path, line, message = longrepr
        return f"{message} ({path}:{line})"
    return str(longrepr)


def skip_as_failure(report) -> None:
    """Turn a skipped test or collection report into a failed one (xfail is left alone: the suite uses none)."""
    if report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which must run every test: {_reason(report.longrepr)}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    if ci():
        skip_as_failure(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    if ci():
        skip_as_failure(outcome.get_result())
