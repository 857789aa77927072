"""config.env: the one reader of the environment refuses values it cannot read instead of guessing, and
is the only one: every variable it reads is in the README's Environment table, and apps/ reads none."""
import ast
import os
import re
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


# --- typed readers: each returns its declared type or refuses, naming the variable ---------------

@pytest.mark.parametrize("raw, expected", [("5", 5), (" 7 ", 7), ("-1", -1), ("100_000", 100_000), ("", 3)])
def test_env_int_reads_integers(monkeypatch, raw, expected):
    monkeypatch.setenv("CE_TEST_INT", raw)
    value = env.env_int("CE_TEST_INT", 3)
    assert value == expected and type(value) is int


@pytest.mark.parametrize("raw", ["5.0", "five", "5s", "0x10", "1e3"])
def test_env_int_refuses_what_is_not_an_integer(monkeypatch, raw):
    monkeypatch.setenv("CE_TEST_INT", raw)
    with pytest.raises(env.ImproperlyConfiguredEnv, match=rf"CE_TEST_INT must be an integer, got {raw!r}"):
        env.env_int("CE_TEST_INT", 3)


def test_env_int_and_float_refuse_values_out_of_range(monkeypatch):
    monkeypatch.setenv("CE_TEST_NUM", "0")
    with pytest.raises(env.ImproperlyConfiguredEnv, match="CE_TEST_NUM must be at least 1, got 0"):
        env.env_int("CE_TEST_NUM", 5, minimum=1)
    monkeypatch.setenv("CE_TEST_NUM", "1.5")
    with pytest.raises(env.ImproperlyConfiguredEnv, match="CE_TEST_NUM must be at most 1, got 1.5"):
        env.env_float("CE_TEST_NUM", 0.5, minimum=0, maximum=1)
    monkeypatch.setenv("CE_TEST_NUM", "1")
    assert env.env_int("CE_TEST_NUM", 5, minimum=1) == 1 and env.env_float("CE_TEST_NUM", 0.5, maximum=1) == 1.0


@pytest.mark.parametrize("raw, expected", [("0.5", 0.5), (" 30 ", 30.0), ("1e-3", 0.001), ("", 2.0)])
def test_env_float_reads_numbers(monkeypatch, raw, expected):
    monkeypatch.setenv("CE_TEST_FLOAT", raw)
    value = env.env_float("CE_TEST_FLOAT", 2)
    assert value == expected and type(value) is float


@pytest.mark.parametrize("raw, problem", [
    ("half", "a number"), ("0,5", "a number"), ("30s", "a number"),
    ("nan", "a finite number"), ("inf", "a finite number"), ("-Infinity", "a finite number"),
])
def test_env_float_refuses_what_is_not_a_finite_number(monkeypatch, raw, problem):
    monkeypatch.setenv("CE_TEST_FLOAT", raw)
    with pytest.raises(env.ImproperlyConfiguredEnv, match=rf"CE_TEST_FLOAT must be {problem}, got {raw!r}"):
        env.env_float("CE_TEST_FLOAT", 1.0)


@pytest.mark.parametrize("raw, expected", [
    ("a.example", ["a.example"]), (" a.example , b.example,, ", ["a.example", "b.example"]), ("", ["d"]), (" ", ["d"]),
])
def test_env_list_reads_comma_separated_items(monkeypatch, raw, expected):
    monkeypatch.setenv("CE_TEST_LIST", raw)
    value = env.env_list("CE_TEST_LIST", ["d"])
    assert value == expected and all(type(item) is str for item in value)


def test_env_list_refuses_items_separated_by_spaces(monkeypatch):
    monkeypatch.setenv("CE_TEST_LIST", "a.example b.example,c.example")
    with pytest.raises(env.ImproperlyConfiguredEnv,
                       match=r"CE_TEST_LIST is a comma-separated list and 'a.example b.example' contains whitespace"):
        env.env_list("CE_TEST_LIST")


@pytest.mark.parametrize("raw, expected, limit", [
    ("3000/m", "3000/m", (3000, 60)), (" 10 / minute ", "10 / minute", (10, 60)), ("5/s", "5/s", (5, 1)),
    ("2/hours", "2/hours", (2, 3600)), ("1/d", "1/d", (1, 86400)), ("off", "off", None), ("", "120/m", (120, 60)),
])
def test_env_rate_reads_rates(monkeypatch, raw, expected, limit):
    monkeypatch.setenv("CE_TEST_RATE", raw)
    value = env.env_rate("CE_TEST_RATE", "120/m")
    assert value == expected and env.parse_rate(value) == limit


@pytest.mark.parametrize("raw", ["3000", "3000/", "3000/x", "3000/week", "3000/mo", "0/m", "-5/m", "abc/m", "1.5/s",
                                 "٣/m"])
def test_env_rate_refuses_what_is_not_a_rate(monkeypatch, raw):
    monkeypatch.setenv("CE_TEST_RATE", raw)
    with pytest.raises(env.ImproperlyConfiguredEnv, match=r"CE_TEST_RATE: rate .* is not <requests>/<s\|m\|h\|d>"):
        env.env_rate("CE_TEST_RATE", "120/m")


def test_env_exchange_keys_maps_keys_to_exchanges(monkeypatch):
    monkeypatch.setenv("CE_TEST_KEYS", "adx:k1, magnite:k2,bare")
    assert env.env_exchange_keys("CE_TEST_KEYS") == {"k1": "adx", "k2": "magnite", "bare": "exchange"}
    monkeypatch.setenv("CE_TEST_KEYS", "adx:k1,magnite:")
    with pytest.raises(env.ImproperlyConfiguredEnv, match="CE_TEST_KEYS entry 'magnite:' has an empty key"):
        env.env_exchange_keys("CE_TEST_KEYS")


def _start(code: str, **variables: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (config.env reads the environment once, at import)."""
    environ = {**os.environ, **variables}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environ, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("variable, raw, message", [
    ("BID_BATCH_SIZE", "64.5", "BID_BATCH_SIZE must be an integer, got '64.5'"),
    ("BID_TMAX_CAP_MS", "0", "BID_TMAX_CAP_MS must be at least 1, got 0"),
    ("BID_MIN_BID_FRACTION", "half", "BID_MIN_BID_FRACTION must be a number, got 'half'"),
    ("BID_REQUEST_SAMPLE_RATE", "5", "BID_REQUEST_SAMPLE_RATE must be at most 1, got 5.0"),
    ("CAMPAIGN_EXPRESS__NPU__BATCHING", "ture", "CAMPAIGN_EXPRESS__NPU__BATCHING must be one of"),
    ("BID_EXCHANGE_KEYS", "adx:k1 magnite:k2", "BID_EXCHANGE_KEYS is a comma-separated list"),
    ("ANALYTICS_BUFFER_SIZE", "lots", "ANALYTICS_BUFFER_SIZE must be an integer, got 'lots'"),
])
def test_the_bid_path_refuses_to_start_with_a_malformed_value(variable, raw, message):
    """The bid workers load no Django settings: building their BidConfig is where they start."""
    done = _start("from apps.bidding.conf import BidConfig; BidConfig.from_env()", **{variable: raw})
    assert done.returncode != 0
    assert message in done.stderr


@pytest.mark.parametrize("variable, raw, message", [
    ("API_RATE_LIMIT_USER", "3000/week", "API_RATE_LIMIT_USER: rate '3000/week' is not"),
    ("DJANGO_ALLOWED_HOSTS", "a.example b.example", "DJANGO_ALLOWED_HOSTS is a comma-separated list"),
    ("ANALYTICS_RETENTION_DAYS", "90d", "ANALYTICS_RETENTION_DAYS must be an integer, got '90d'"),
    ("OMNICHANNEL_SEND_RETRY_BASE_SECONDS", "nan", "OMNICHANNEL_SEND_RETRY_BASE_SECONDS must be a finite number"),
])
def test_django_settings_refuse_to_load_with_a_malformed_value(variable, raw, message):
    done = _start("import config.settings", **{variable: raw})
    assert done.returncode != 0
    assert message in done.stderr


def test_the_configured_values_are_typed_and_normalised():
    code = ("from apps.bidding.conf import BidConfig; from config import env; c = BidConfig.from_env(); "
            "print(repr((env.NPU_PROVIDER, env.NPU_BATCHING, c.batch_size, c.min_bid_fraction, c.exchange_keys, "
            "c.public_base_url)))")
    done = _start(code, CAMPAIGN_EXPRESS__NPU__PROVIDER=" CPU ", CAMPAIGN_EXPRESS__NPU__BATCHING="on",
                  BID_BATCH_SIZE=" 32 ", BID_MIN_BID_FRACTION="1", BID_EXCHANGE_KEYS="adx:k1",
                  BID_PUBLIC_BASE_URL="https://bid.example/")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == repr(("cpu", True, 32, 1.0, {"k1": "adx"}, "https://bid.example"))


# --- one configuration path: every variable read in config/, listed in the README ----------------

READERS = frozenset(name for name in vars(env) if name.startswith("env_") and callable(getattr(env, name)))


def _python_files(folder: str) -> list[Path]:
    return sorted(path for path in (ROOT / folder).rglob("*.py") if ".venv" not in path.parts)


def _reader_name(call: ast.Call) -> str | None:
    func = call.func
    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
    return name if name in READERS else None


def _variables_read_in_config() -> dict[str, str]:
    """``{variable: where}`` for every reader call under config/ (each must name its variable literally)."""
    found: dict[str, str] = {}
    for path in _python_files("config"):
        tree = ast.parse(path.read_text(), str(path))
        # a reader built on another (env_exchange_keys on env_list) passes its own argument on
        inside_readers = {id(node) for function in ast.walk(tree)
                          if isinstance(function, ast.FunctionDef) and function.name in READERS
                          for node in ast.walk(function)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _reader_name(node) and id(node) not in inside_readers:
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                first = node.args[0] if node.args else None
                if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
                    raise AssertionError(f"{where}: {_reader_name(node)}() must name its variable as a string literal")
                found.setdefault(first.value, where)
    return found


def _readme_environment_names() -> set[str]:
    """Every `NAME` in the first column of the README's Environment table."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Environment\n", 1)[1]
    section = re.split(r"\n##+ ", section, maxsplit=1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("|"):
            names.update(re.findall(r"`([A-Z][A-Z0-9_]*)`", line.split("|")[1]))
    return names


def test_every_variable_config_reads_is_in_the_readme_environment_table():
    read = _variables_read_in_config()
    assert len(read) > 100  # the parse found the readers (BID_*, NPU_*, settings modules)
    assert {"BID_BATCH_SIZE", "CAMPAIGN_EXPRESS__NPU__SEED", "API_RATE_LIMIT_USER", "STAFF_2FA_REQUIRED"} <= set(read)
    missing = {name: where for name, where in read.items() if name not in _readme_environment_names()}
    assert missing == {}, f"add these to README.md's Environment table: {missing}"


def _environment_reads(tree: ast.AST) -> list[tuple[int, str]]:
    """Reads of os.environ / os.getenv. Allowed: writes (``os.environ[k] = v``, ``setdefault``) and
    ``{**os.environ, ...}`` (a child process's environment)."""
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    reads: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "getenv":
            reads.append((node.lineno, "os.getenv"))
        elif isinstance(node, ast.alias) and node.name in {"environ", "getenv"}:
            reads.append((node.lineno, f"from os import {node.name}"))
        elif isinstance(node, ast.Attribute) and node.attr == "environ":
            parent = parents.get(node)
            if isinstance(parent, ast.Subscript) and isinstance(parent.ctx, ast.Store):
                continue
            if isinstance(parent, ast.Attribute) and parent.attr == "setdefault":
                continue
            if isinstance(parent, ast.Dict) and node in parent.values and parent.keys[parent.values.index(node)] is None:
                continue
            reads.append((node.lineno, "os.environ"))
    return reads


def test_apps_read_settings_not_the_environment():
    offenders: list[str] = []
    for path in _python_files("apps"):
        tree = ast.parse(path.read_text(), str(path))
        where = path.relative_to(ROOT)
        offenders += [f"{where}:{line}: {what}" for line, what in _environment_reads(tree)]
        offenders += [f"{where}:{node.lineno}: {_reader_name(node)}()" for node in ast.walk(tree)
                      if isinstance(node, ast.Call) and _reader_name(node)]
        offenders += [f"{where}:{node.lineno}: from config.env import {alias.name}" for node in ast.walk(tree)
                      if isinstance(node, ast.ImportFrom) and node.module == "config.env"
                      for alias in node.names if alias.name in READERS]
    assert offenders == [], "read configuration in config/ and use django.conf.settings (or config.env's constants)"


def test_config_reads_the_environment_only_through_its_readers():
    offenders: list[str] = []
    for path in _python_files("config"):
        tree = ast.parse(path.read_text(), str(path))
        allowed: set[int] = set()
        if path == ROOT / "config" / "env.py":
            (raw,) = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "_raw"]
            allowed = {node.lineno for node in ast.walk(raw) if hasattr(node, "lineno")}
        offenders += [f"{path.relative_to(ROOT)}:{line}: {what}" for line, what in _environment_reads(tree)
                      if line not in allowed]
    assert offenders == []


def test_the_read_checks_can_fail():
    """The checks above see the reads they are there to forbid."""
    bad = ast.parse('import os\nfrom config import env\nA = os.environ.get("A")\nB = os.getenv("B")\n'
                    'C = os.environ["C"]\nD = "D" in os.environ\nos.environ["E"] = "1"\n'
                    'os.environ.setdefault("F", "1")\nG = {**os.environ, "G": "1"}\n')
    assert sorted(line for line, _ in _environment_reads(bad)) == [3, 4, 5, 6]
    call = ast.parse('env.env_int("X", 1)').body[0].value
    assert _reader_name(call) == "env_int"
