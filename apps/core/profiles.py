"""The user profile the bid path reads: its Redis layout and the announcement of a change.

One Redis hash per user, ``profile:{user_id}`` (TTL ``PROFILE_TTL_SECONDS``), each field a JSON
value so writers from different slices update only their own fields without a read-modify-write:

=================  ===========================================================================
field              value
=================  ===========================================================================
``interests``      list of 64 floats (feature columns [0..64))
``segments``       list of ints (segment ids, one-hot at ``64 + id % 64``)
``loyalty_tier``   "green" | "gold" | "reserve"
``loyalty``        list of 8 floats, the docs/RULES.md §2.7 loyalty vector (columns [128..136))
``recency``        float, recency score (column [136])
``updated_at``     float, unix seconds of the last write
=================  ===========================================================================

Every write is announced on the pub/sub channel ``PROFILE_CHANNEL`` (of the database, see
``apps.core.redis.channel``) with the user id as message, so
every bid process drops its L1 copy (docs/RULES.md §1 step 2: write L2, then invalidate L1).
"""
from __future__ import annotations

import time
from typing import Any

import orjson

from apps.core import redis as redis_store

PROFILE_TTL_SECONDS = 3600
PROFILE_CHANNEL = "profiles:changed"
PROFILE_FIELDS = ("interests", "segments", "loyalty_tier", "loyalty", "recency", "updated_at")


def profile_key(user_id: str) -> str:
    return f"profile:{user_id}"


def profile_write(*, user_id: str, fields: dict[str, Any], client=None, announce: bool = True) -> None:
    """Write ``fields`` into the user's profile hash, refresh its TTL and announce the change.

    ``announce=False`` is for periodic refreshes that keep a profile alive without a change worth
    evicting every bidder's L1 copy for (L1 entries expire on their own, half as fast as L2)."""
    unknown = set(fields) - set(PROFILE_FIELDS)
    if unknown:
        raise ValueError(f"unknown profile fields: {sorted(unknown)}")
    payload = {name: orjson.dumps(value) for name, value in fields.items()}
    payload["updated_at"] = orjson.dumps(time.time())
    r = client or redis_store.client()
    key = profile_key(user_id)
    if redis_store.is_cluster(r):  # MULTI on the profile's slot; PUBLISH has no key: after it, on its own
        with r.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=payload)
            pipe.expire(key, PROFILE_TTL_SECONDS)
            pipe.execute()
        if announce:
            r.publish(redis_store.channel(PROFILE_CHANNEL, r), user_id)
        return
    with r.pipeline(transaction=True) as pipe:
        pipe.hset(key, mapping=payload)
        pipe.expire(key, PROFILE_TTL_SECONDS)
        if announce:
            pipe.publish(redis_store.channel(PROFILE_CHANNEL, r), user_id)
        pipe.execute()


def profile_decode(raw: dict[bytes, bytes]) -> dict[str, Any]:
    """Turn an ``HGETALL`` answer into a dict of Python values (unknown fields are ignored)."""
    out: dict[str, Any] = {}
    for name, value in raw.items():
        key = name.decode() if isinstance(name, bytes) else name
        if key in PROFILE_FIELDS:
            out[key] = orjson.loads(value)
    return out


def profile_read(*, user_id: str, client=None) -> dict[str, Any] | None:
    raw = (client or redis_store.client()).hgetall(profile_key(user_id))
    return profile_decode(raw) if raw else None
