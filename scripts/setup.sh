#!/usr/bin/env bash
# Everything `make run` and `make test` share: services, virtualenv, pinned requirements, databases.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$SECONDS
bash scripts/services.sh
VENV=${VENV:-.venv}
REQS=${REQS:-requirements/test.txt}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
stamp="$VENV/.installed-$(cat requirements/*.txt | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  echo "[setup] installing $REQS into $VENV"
  "$VENV/bin/pip" install -q --upgrade pip 2>&1 | grep -v 'is ignored' || true
  "$VENV/bin/pip" install -q -r "$REQS" 2>&1 | grep -v 'is ignored' || true
  "$VENV/bin/python" -c "import django, django_fsm, rest_framework, grpc, numpy, nats, clickhouse_driver" \
    || { echo "[setup] requirements did not install"; exit 1; }
  rm -f "$VENV"/.installed-*; touch "$stamp"
fi
# The compiled kernels of the bid path (scripts/build_ext.py: Cython from the requirements, a C compiler,
# the Python headers of the virtualenv's interpreter and OpenSSL's; Debian: build-essential, python3-dev,
# libssl-dev)
PYINC=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
if ! command -v gcc >/dev/null || [ ! -f "$PYINC/Python.h" ] || [ ! -f /usr/include/openssl/sha.h ]; then
  echo "[setup] apt-get install build-essential python3-dev libssl-dev"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || true
  apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 build-essential python3-dev libssl-dev \
    >/dev/null
fi
"$VENV/bin/python" scripts/build_ext.py >/dev/null || { echo "[setup] scripts/build_ext.py failed"; exit 1; }
"$VENV/bin/python" -c "import apps.inference._colanet, apps.bidding._tokens" \
  && "$VENV/bin/python" -c "import apps.analytics._rows as r; assert r.__file__.endswith('.so'), r.__file__" \
  || { echo "[setup] the compiled kernels do not import"; exit 1; }
DB=${POSTGRES_DB:-campaign_express}
psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='$DB'" | grep -q 1 \
  || createdb -h 127.0.0.1 -U postgres "$DB"
echo "[setup] ready in $((SECONDS - t0))s"
