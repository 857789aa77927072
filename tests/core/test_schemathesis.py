"""The API contract, proven by a fuzzer: Schemathesis over every operation of our own OpenAPI schema,
against the real web process (uvicorn serving config.asgi on a free port, on the test database).

All phases run (examples, coverage, fuzzing, stateful — links between operations are inferred from
the schema), with a bounded number of examples per operation, and the run fails on any of these
checks: no 5xx, only documented status codes and content types, bodies matching their schema,
schema-violating input refused, auth never ignored, and a deleted resource staying gone. The
positive-data check is left out on purpose: legitimate business-rule 4xx answers (a self-approval,
a campaign in the wrong state) would trip it.

The stateful phase follows the links Schemathesis infers from the schema (dependency analysis: a
campaign created by POST /v1/campaigns/ feeds {id} of its reads, edits and transitions, an offer feeds
its sub-resource) and from Location headers; it gets its own, larger budget of scenarios, and the run
fails unless it covered at least MIN_LINKS_COVERED links, so a schema change that loses the links
cannot pass silently. The fuzzer calls as Admin, which every role check admits, so operations reach
their logic instead of stopping at 401/403 (ignored_auth sends the same requests without the token).

Knobs: SCHEMATHESIS_MAX_EXAMPLES (default 6 per operation), SCHEMATHESIS_STATEFUL_EXAMPLES (default 60
scenarios), SCHEMATHESIS_SEED (random by default, a fixed one under CI=true;
the seed is printed so a failure can be replayed).
"""
from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from rest_framework.authtoken.models import Token

from apps.core.roles import Role
from tests.factories import make_user
from tests.support.ports import free_port
from tests.support.processes import start_process

ROOT = Path(__file__).resolve().parents[2]
CHECKS = ",".join([
    "not_a_server_error", "status_code_conformance", "content_type_conformance", "response_schema_conformance",
    "negative_data_rejection", "ignored_auth", "use_after_free",
])

MIN_LINKS_COVERED = 6  # the explicit links reach 8-68 depending on the draw; below 6 the creations stopped succeeding

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.timeout(600)]


@pytest.fixture
def web_server(tmp_path):
    db = settings.DATABASES["default"]
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        # The fuzzer sends thousands of requests a minute with one token: no rate limit here (the
        # limit itself is tested in test_api_errors.py).
        "API_RATE_LIMIT_USER": "off", "API_RATE_LIMIT_ANON": "off", "API_RATE_LIMIT_WEBHOOK": "off",
        "LOG_LEVEL": "WARNING",
    }
    log_path = tmp_path / "uvicorn.log"
    base = f"http://127.0.0.1:{port}"
    with start_process([sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1",
                        "--port", str(port), "--no-access-log"], env=env, ready=f"{base}/live", log_path=log_path,
                       name="uvicorn"):
        yield base, log_path


def _seed() -> str:
    """A user for each role (the fuzzer calls as Admin, which every role check admits) and the demo data."""
    from django.core.management import call_command

    for role in (Role.MARKETER, Role.APPROVER, Role.INTEGRATION):
        Token.objects.get_or_create(user=make_user(role))
    call_command("seed_demo", verbosity=0)
    # The recommendation models as the scheduled rebuild leaves them: without them GET
    # /v1/recommendations/{user_id} answers its documented 503 ("not built yet"), which the
    # not_a_server_error check counts as a failure, on some draws only.
    from apps.recommendations.services import recommendations_rebuild

    assert recommendations_rebuild() is not None
    admin = make_user(Role.ADMIN, username="fuzz-admin")
    return Token.objects.get_or_create(user=admin)[0].key


def test_api_conforms_to_its_openapi_schema(web_server, tmp_path):
    base, server_log = web_server
    token = _seed()
    # CI replays one known seed so a landing is not decided by a new draw; every local run draws anew.
    ci_seed = "3031480078" if os.environ.get("CI") == "true" else None
    seed = os.environ.get("SCHEMATHESIS_SEED") or ci_seed or str(random.randrange(2**32))
    junit = tmp_path / "schemathesis.xml"
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        f"[generation]\nmax-examples = {int(os.environ.get('SCHEMATHESIS_MAX_EXAMPLES', '6'))}\n\n"
        "[phases.stateful]\nmax-steps = 8\n\n"
        f"[phases.stateful.generation]\nmax-examples = {int(os.environ.get('SCHEMATHESIS_STATEFUL_EXAMPLES', '60'))}\n"
    )
    command = [
        sys.executable, str(Path(__file__).with_name("schemathesis_cli.py")), "--config-file", str(config), "run", f"{base}/v1/schema/?format=json",
        "--url", base,
        "-H", f"Authorization: Token {token}",
        "--checks", CHECKS,
        "--phases", "examples,coverage,fuzzing,stateful",
        "--workers", "2", "--seed", seed, "--generation-database", "none", "--no-color",
        "--request-timeout", "30", "--report", "junit", "--report-junit-path", str(junit),
    ]
    started = time.monotonic()
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=540)
    elapsed = time.monotonic() - started
    output = result.stdout + result.stderr
    print(output)
    print(f"schemathesis: {elapsed:.0f} s, seed {seed}")
    assert result.returncode == 0, (
        f"Schemathesis found failures (seed {seed}, {elapsed:.0f} s; replay with SCHEMATHESIS_SEED={seed}):\n"
        + output[output.find("FAILURES"):] if "FAILURES" in output else output[-20000:]
    ) + "\n--- server log (tail) ---\n" + server_log.read_text()[-5000:]
    links = re.search(r"API Links:\s+(\d+) covered", output)
    assert links, "the stateful phase did not run (no 'API Links' line in the report)"
    assert int(links.group(1)) >= MIN_LINKS_COVERED, (
        f"the stateful phase covered only {links.group(1)} links (at least {MIN_LINKS_COVERED} expected): "
        "POST /v1/campaigns/ must succeed often enough for its links to be followed")
