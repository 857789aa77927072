#!/usr/bin/env bash
# `make lint`: ruff (pyflakes, import order, bugbear, blind except) and mypy with django-stubs, both
# configured in pyproject.toml. scripts/test.sh runs it first, so CI holds it.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
echo "[lint] ruff"
"$VENV/bin/ruff" check --no-cache .
echo "[lint] mypy"
"$VENV/bin/mypy" apps config
