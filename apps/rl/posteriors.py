"""The Beta posteriors: durable in Postgres, copied into Redis for the decision path.

Postgres is the truth. A closed decision adds one success or one failure with one atomic upsert
(``INSERT … ON CONFLICT DO UPDATE SET successes = rl_posterior.successes + 1``), so 50 concurrent
rewards on one arm add exactly 50. The upsert returns the new counts, and after commit they are
written to the segment's Redis hash (``rl:posteriors:{segment}``, field = offer id, value =
``"successes:failures"``) by a Lua script that keeps whichever copy has more trials: trials only
grow, so two writers finishing out of order can never put an older posterior over a newer one. A
Redis outage is logged and counted; reads then fall back to Postgres.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import structlog
from django.conf import settings
from django.db import connection, transaction
from prometheus_client import Counter

from apps.core import redis as redis_store

log = structlog.get_logger(__name__)

CACHE_MISSES = Counter("rl_posterior_cache_misses_total", "Posteriors read from Postgres (not in Redis)")
CACHE_ERRORS = Counter("rl_posterior_cache_errors_total", "Redis errors reading or writing posteriors")

KEY_PREFIX = "rl:posteriors:"

# KEYS[1] = hash; ARGV = ttl, then (field, successes, failures) triples. A field is replaced only by
# a value with more trials (or when absent).
_KEEP_NEWER = """
local ttl = tonumber(ARGV[1])
for i = 2, #ARGV, 3 do
  local field, s, f = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  local old = redis.call('HGET', KEYS[1], field)
  local replace = true
  if old then
    local sep = string.find(old, ':', 1, true)
    local trials = tonumber(string.sub(old, 1, sep - 1)) + tonumber(string.sub(old, sep + 1))
    replace = trials < s + f
  end
  if replace then redis.call('HSET', KEYS[1], field, s .. ':' .. f) end
end
redis.call('EXPIRE', KEYS[1], ttl)
return 1
"""

_UPSERT = """
INSERT INTO rl_posterior (offer_id, segment, campaign_id, successes, failures, updated_at)
VALUES (%s, %s, %s, %s, %s, now())
ON CONFLICT (offer_id, segment) DO UPDATE
   SET successes = rl_posterior.successes + EXCLUDED.successes,
       failures = rl_posterior.failures + EXCLUDED.failures,
       campaign_id = CASE WHEN EXCLUDED.campaign_id <> '' THEN EXCLUDED.campaign_id ELSE rl_posterior.campaign_id END,
       updated_at = now()
RETURNING successes, failures
"""


def segment_of(*, channel: str, tier: str) -> str:
    return f"{channel}:{tier}"


def _key(segment: str) -> str:
    return KEY_PREFIX + segment


def _script():
    client = redis_store.client()
    return client.register_script(_KEEP_NEWER)


def _cache_write(segment: str, values: dict[str, tuple[int, int]]) -> None:
    if not values:
        return
    argv: list = [settings.RL_POSTERIOR_CACHE_SECONDS]
    for offer_id, (s, f) in values.items():
        argv.extend((offer_id, int(s), int(f)))
    try:
        _script()(keys=[_key(segment)], args=argv)
    except Exception as exc:  # noqa: BLE001 - the cache is a copy; Postgres has the counts
        CACHE_ERRORS.inc()
        log.warning("rl_posterior_cache_write_failed", segment=segment, error=f"{type(exc).__name__}: {exc}")


def posterior_add(*, offer_id: str, segment: str, successes: int = 0, failures: int = 0,
                  campaign_id: str = "") -> tuple[int, int]:
    """Add closed trials to an arm (inside the caller's transaction); returns the new
    ``(successes, failures)``. The Redis copy is refreshed after commit."""
    with connection.cursor() as cursor:
        cursor.execute(_UPSERT, [offer_id, segment, campaign_id or "", int(successes), int(failures)])
        new_s, new_f = cursor.fetchone()
    transaction.on_commit(lambda: _cache_write(segment, {offer_id: (new_s, new_f)}))
    return int(new_s), int(new_f)


def _db_counts(segment: str, offer_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
    from apps.rl.models import Posterior

    rows = Posterior.objects.filter(segment=segment, offer_id__in=list(offer_ids)).values_list(
        "offer_id", "successes", "failures")
    return {o: (int(s), int(f)) for o, s, f in rows}


def posterior_counts(*, segment: str, offer_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Successes and failures of ``offer_ids`` in ``segment`` (0, 0 for an arm never closed), from
    Redis, with the misses read from Postgres and written back."""
    successes, failures, _ = posterior_read(segment=segment, offer_ids=offer_ids)
    return successes, failures


def posterior_read(*, segment: str, offer_ids: Sequence[str], also_get: str | None = None
                   ) -> tuple[np.ndarray, np.ndarray, bytes | None]:
    """:func:`posterior_counts`, and the value of the Redis key ``also_get`` read in the same round
    trip (one pipeline: ``HMGET`` + ``GET``; None when absent or Redis did not answer)."""
    offer_ids = list(offer_ids)
    raw: list = [None] * len(offer_ids)
    extra: bytes | None = None
    try:
        client = redis_store.client()
        if also_get is None:
            raw = client.hmget(_key(segment), offer_ids)
        else:
            pipe = client.pipeline(transaction=False)
            pipe.hmget(_key(segment), offer_ids)
            pipe.get(also_get)
            raw, extra = pipe.execute()
    except Exception as exc:  # noqa: BLE001 - fall back to Postgres
        CACHE_ERRORS.inc()
        log.warning("rl_posterior_cache_read_failed", segment=segment, error=f"{type(exc).__name__}: {exc}")
        raw = [None] * len(offer_ids)
    successes = np.zeros(len(offer_ids), dtype=np.float64)
    failures = np.zeros(len(offer_ids), dtype=np.float64)
    missing: list[int] = []
    for i, value in enumerate(raw):
        if value is None:
            missing.append(i)
            continue
        s, _, f = value.partition(b":")
        successes[i], failures[i] = int(s), int(f)
    if missing:
        CACHE_MISSES.inc(len(missing))
        found = _db_counts(segment, [offer_ids[i] for i in missing])
        fill: dict[str, tuple[int, int]] = {}
        for i in missing:
            s, f = found.get(offer_ids[i], (0, 0))
            successes[i], failures[i] = s, f
            fill[offer_ids[i]] = (s, f)
        _cache_write(segment, fill)
    return successes, failures, extra
