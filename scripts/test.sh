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
# The Redis Cluster pass (issue 20): the hot path's modules again, against a local cluster of 3 masters
# that tests/support/redis_cluster.py starts (ports 7001-7003 + (REDIS_PORT-6390)*10) and stops.
# Runs after a full run (no arguments) unless REDIS_CLUSTER_TESTS=0; REDIS_CLUSTER_TESTS=1 forces it.
CLUSTER_TEST_MODULES=(
  tests/bidding/test_cluster_wins.py   # wins, spend flush, exhausted set: crash and interleaving proofs
  tests/bidding/test_cluster_l2.py     # the L2 read routed by slot
  tests/bidding/test_http.py           # bid and win notices through the bid app, win idempotency
  tests/bidding/test_services.py       # snapshot publish, spend flush to Postgres, budgets
  tests/bidding/test_cache.py          # frequency caps, profiles, L1/L2, announcements
  tests/loyalty/test_profile.py        # profile writes
  tests/analytics/test_pipeline.py     # the analytics stream: consumer group, ack, claim, lock
  tests/analytics/test_emitter.py      # the analytics stream: the emitter
  tests/dsp/test_wins.py               # DSP wins and hourly spend per platform
  tests/core/test_cache_cluster.py     # the Django cache and the API rate limiter (CACHE_URL on a cluster)
)
set +e
# The slowest tests in every log; under CI=true a skip is a failure (tests/support/ci.py).
"$VENV/bin/python" -m pytest --durations=25 "$@"
rc=$?
if [ $rc -eq 0 ] && { [ "${REDIS_CLUSTER_TESTS:-}" = 1 ] || { [ $# -eq 0 ] && [ "${REDIS_CLUSTER_TESTS:-}" != 0 ]; }; }; then
  echo "== Redis Cluster pass: ${CLUSTER_TEST_MODULES[*]}"
  "$VENV/bin/python" -m tests.support.redis_cluster -- \
    "$VENV/bin/python" -m pytest --durations=10 -m "not single_redis" "${CLUSTER_TEST_MODULES[@]}"
  rc=$?
fi
set -e
if [ $rc -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi
exit $rc
