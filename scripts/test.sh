#!/usr/bin/env bash
# Run the whole suite against the real services. Tests use their own Redis databases and ClickHouse
# database, so a platform started with `make run` on the same machine keeps its data.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/10}
export CACHE_URL=${CACHE_URL:-redis://127.0.0.1:6379/11}
export CELERY_BROKER_URL=${CELERY_BROKER_URL:-redis://127.0.0.1:6379/12}
export CHANNEL_LAYER_URL=${CHANNEL_LAYER_URL:-redis://127.0.0.1:6379/13}
export CLICKHOUSE_URL=${CLICKHOUSE_URL:-clickhouse://default@127.0.0.1:9000/campaign_express_test}
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/campaign_express}
export OPENBLAS_NUM_THREADS=1
# Tests call the API far faster than any client should; the rate-limit tests set their own low rates.
export API_RATE_LIMIT_USER=${API_RATE_LIMIT_USER:-1000000/m}
export API_RATE_LIMIT_ANON=${API_RATE_LIMIT_ANON:-1000000/m}
export API_RATE_LIMIT_WEBHOOK=${API_RATE_LIMIT_WEBHOOK:-1000000/m}
set +e
# The slowest tests in every log; under CI=true a skip is a failure (tests/support/ci.py).
"$VENV/bin/python" -m pytest --durations=25 "$@"
rc=$?
set -e
if [ $rc -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi
exit $rc
