"""config.env: the one reader of the environment refuses values it cannot read instead of guessing."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from config import env

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("raw, expected", [
    ("1", True), ("true", True), ("TRUE", True), (" yes ", True), ("on", True),
    ("0", False), ("false", False), ("No", False), ("off", False),
])
def test_env_bool_reads_the_usual_words(monkeypatch, raw, expected):
    monkeypatch.setenv("CE_TEST_FLAG", raw)
    assert env.env_bool("CE_TEST_FLAG", default=not expected) is expected


@pytest.mark.parametrize("raw", [None, "", "  "])
def test_env_bool_unset_or_empty_is_the_default(monkeypatch, raw):
    if raw is None:
        monkeypatch.delenv("CE_TEST_FLAG", raising=False)
    else:
        monkeypatch.setenv("CE_TEST_FLAG", raw)
    assert env.env_bool("CE_TEST_FLAG", default=True) is True
    assert env.env_bool("CE_TEST_FLAG", default=False) is False


@pytest.mark.parametrize("raw", ["ture", "yess", "2", "enabled", "y e s"])
def test_env_bool_with_a_typo_refuses_naming_the_variable(monkeypatch, raw):
    monkeypatch.setenv("CE_TEST_FLAG", raw)
    with pytest.raises(env.ImproperlyConfiguredEnv, match=r"CE_TEST_FLAG must be one of .* got"):
        env.env_bool("CE_TEST_FLAG")


def test_settings_refuse_to_load_with_a_mistyped_boolean():
    environ = {**os.environ, "CELERY_TASK_ALWAYS_EAGER": "ture", "DJANGO_SETTINGS_MODULE": "config.settings"}
    done = subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "CELERY_TASK_ALWAYS_EAGER must be one of" in done.stderr
