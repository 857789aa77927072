"""The platform snapshot and the Redis keys of the DSP slice (Django-free: the bid workers read it).

Writers (``apps.dsp.services``, after a platform edit commits, and beat as a safety net) store
``{"version", "platforms": [...]}`` in the hash ``dsp:platforms`` when the version is newer, and
publish the version on ``dsp:platforms@<db>``. Every bid worker (``apps.dsp.exchange``) hears it and
reloads; it also polls every ``DSP_SNAPSHOT_POLL_SECONDS`` (0.5 s), so an edit reaches the workers
within a second even when an announcement is lost.

Budgets work without reads on the hot path: the win script (``apps.dsp.spend``) sets
``dsp:{p:<platform_id>}:over:<hour>`` when a platform's hourly spend reaches its budget and publishes the
platform on ``dsp:budget@<db>``; workers keep the set of platforms over budget this hour.
"""
from __future__ import annotations

import dataclasses

import orjson

from apps.core import redis as redis_store
from apps.core.outbound import crypto
from apps.dsp.adapters.base import PlatformConf

PLATFORMS_KEY = "dsp:platforms"
PLATFORMS_SEQ_KEY = "dsp:platforms:seq"
PLATFORMS_CHANNEL = "dsp:platforms"
BUDGET_CHANNEL = "dsp:budget"
SPEND_DIRTY_KEY = "dsp:spend:dirty"


def hour_of(ts: float) -> int:
    """Hours since the epoch (UTC): the spend and budget bucket of a moment."""
    return int(ts // 3600)


# A platform's win markers, hour counters and over-budget flags share its hash tag ``{p:<id>}``: one
# Redis Cluster slot, so the win script stays atomic there (issue 20).
def over_key(platform_id: int, hour: int) -> str:
    return f"dsp:{{p:{platform_id}}}:over:{hour}"


def spend_key(platform_id: int, hour: int) -> str:
    return f"dsp:{{p:{platform_id}}}:spend:{hour}"


def win_key(platform_id: int, bid_id: str) -> str:
    return f"dsp:{{p:{platform_id}}}:win:{bid_id}"


# The names before issue 20, read on a single Redis only while what an old version wrote lives on.
def legacy_over_key(platform_id: int, hour: int) -> str:
    return f"dsp:over:{platform_id}:{hour}"


def legacy_spend_key(platform_id: int, hour: int) -> str:
    return f"dsp:spend:{platform_id}:{hour}"


def legacy_win_key(platform_id: int, bid_id: str) -> str:
    return f"dsp:win:{platform_id}:{bid_id}"


def auction_key(auction_id: str) -> str:
    return f"dsp:auction:{auction_id}"


_PUBLISH_LUA = """
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '-1')
if tonumber(ARGV[1]) <= current then return 0 end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'blob', ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[1])
return 1
"""


def _sealed(platform: PlatformConf) -> dict:
    """A platform as stored in Redis: its credentials stay encrypted there (``apps.core.outbound.crypto``)."""
    out = dataclasses.asdict(platform)
    out["credentials"] = crypto.encrypt(orjson.dumps(dict(platform.credentials)).decode()) if platform.credentials else ""
    return out


def _opened(data: dict) -> PlatformConf:
    token = data.pop("credentials", "")
    credentials = orjson.loads(crypto.decrypt(token)) if token else {}
    return PlatformConf(**data, credentials=credentials)


def encode(version: int, platforms: list[PlatformConf]) -> bytes:
    return orjson.dumps({"version": version, "platforms": [_sealed(p) for p in platforms]})


def decode(raw: bytes) -> tuple[int, tuple[PlatformConf, ...]]:
    """The snapshot with credentials decrypted (in the worker's memory only)."""
    data = orjson.loads(raw)
    return int(data["version"]), tuple(_opened(p) for p in data["platforms"])


def publish(client, platforms: list[PlatformConf]) -> int:
    """Store a new snapshot (sync client) and announce it; returns its version."""
    version = int(client.incr(PLATFORMS_SEQ_KEY))
    client.eval(_PUBLISH_LUA, 1, PLATFORMS_KEY, version, encode(version, platforms),
                redis_store.channel(PLATFORMS_CHANNEL, client))
    return version


async def fetch(aclient, *, newer_than: int = -1) -> tuple[int, tuple[PlatformConf, ...]] | None:
    """The stored snapshot if newer than ``newer_than`` (asyncio client), else None."""
    version = await aclient.hget(PLATFORMS_KEY, "version")
    if version is None or int(version) <= newer_than:
        return None
    raw = await aclient.hget(PLATFORMS_KEY, "blob")
    if raw is None:
        return None
    return decode(raw)


async def over_budget(aclient, platforms, hour: int) -> frozenset[int]:
    """Ids of the platforms whose spend reached their hourly budget in ``hour``."""
    capped = [p for p in platforms if p.hourly_budget > 0]
    if not capped:
        return frozenset()
    if redis_store.is_cluster(aclient):
        values = await aclient.mget_nonatomic([over_key(p.id, hour) for p in capped])
        return frozenset(p.id for p, v in zip(capped, values, strict=False) if v is not None)
    values = await aclient.mget([over_key(p.id, hour) for p in capped] + [legacy_over_key(p.id, hour) for p in capped])
    n = len(capped)
    return frozenset(p.id for i, p in enumerate(capped) if values[i] is not None or values[n + i] is not None)
