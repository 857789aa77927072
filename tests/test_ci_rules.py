"""The suite's own rules (tests/support/ci.py): under CI=true a skip is a failure naming its reason."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

MODULE = '''
import pytest

def test_runs():
    pass

@pytest.mark.skipif(True, reason="haproxy is not installed")
def test_marked():
    pass

def test_skips_itself():
    pytest.skip("chromium is missing")
'''
ROOT = Path(__file__).resolve().parents[1]
INNER = ("-p", "no:django", "-p", "no:cacheprovider", "-rA")
CONFTEST = "from tests.support.ci import pytest_make_collect_report, pytest_runtest_makereport  # noqa: F401\n"


@pytest.fixture
def suite(pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the inner run imports tests.support.ci
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_sample=MODULE)
    pytester.makepyfile(test_module_skip="import pytest\npytest.skip('no SDK here', allow_module_level=True)\n")
    return pytester


def test_skips_fail_under_ci_with_their_reason(suite, monkeypatch):
    monkeypatch.setenv("CI", "true")
    result = suite.runpytest_subprocess(*INNER, "--continue-on-collection-errors")
    # a skip in the test is a failure; a skipif (setup) and a skipped module (collection) are errors
    result.assert_outcomes(passed=1, failed=1, errors=2, skipped=0)
    assert result.ret != 0
    text = result.stdout.str()
    for reason in ("haproxy is not installed", "chromium is missing", "no SDK here"):
        assert re.search(rf"skipped under CI=true, which must run every test: Skipped: {reason}", text), reason
    assert text.count("skipped under CI=true") >= 3


def test_skips_stay_skips_outside_ci(suite, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    result = suite.runpytest_subprocess(*INNER)
    result.assert_outcomes(passed=1, skipped=3)


def test_the_suite_uses_no_xfail():
    users = [p for p in (ROOT / "tests").rglob("*.py")
             if p.name != "test_ci_rules.py" and re.search(r"pytest\.(mark\.)?xfail", p.read_text())]
    assert users == []


def test_tests_wait_on_conditions_not_sleeps():
    """Only tests/support sleeps (wait_until's poll, pause for time-is-the-behaviour); tests wait on conditions."""
    sleepers = [f"{p.relative_to(ROOT)}:{n}" for p in (ROOT / "tests").rglob("*.py")
                if "support" not in p.relative_to(ROOT / "tests").parts and p.name != "test_ci_rules.py"
                for n, line in enumerate(p.read_text().splitlines(), 1)
                if re.search(r"\b(time|asyncio)\.sleep\(", line)]
    assert sleepers == []
