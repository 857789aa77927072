"""Rebuilding the models from all interactions, and refreshing trending from the recent ones."""
from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta

import structlog
from django.conf import settings
from django.utils import timezone
from redis import exceptions as redis_errors

from apps.core.redis import client as redis_client
from apps.omnichannel import selectors as omni

from .. import auto, engine
from ..models import CatalogItem, ModelBuild
from ..store import get_store

log = structlog.get_logger(__name__)


def catalog_rows() -> list[engine.CatalogRow]:
    rows = CatalogItem.objects.order_by("id").values_list(
        "item_id", "name", "category", "tags", "attributes", "price", "available")
    return [engine.CatalogRow(item_id=i, name=n, category=c, tags=tuple(t or ()), attributes=a or {},
                              price=float(p) if p is not None else None, available=av)
            for i, n, c, t, a, p, av in rows.iterator(chunk_size=5000)]


def build_params() -> engine.BuildParams:
    return engine.BuildParams(max_dense_items=settings.RECS_EASE_MAX_ITEMS, ease_lambda=settings.RECS_EASE_LAMBDA,
                              neighbours=settings.RECS_NEIGHBOURS, basket_neighbours=settings.RECS_NEIGHBOURS)


REBUILD_LOCK = "recs:rebuild:lock"

# The lock is a lease: held for RECS_REBUILD_LEASE_SECONDS and renewed by a heartbeat thread every
# third of that while the build runs. A build whose process dies (a worker's SIGKILL, an OOM kill)
# stops renewing, its lease expires within the lease time, a new build can start, and the reaper
# marks the dead build's row failed with the reason.
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


class LeaseLost(RuntimeError):
    """The rebuild lease expired or was taken while the build ran: the build must not publish."""


class RebuildLease:
    """The rebuild lock as a renewed lease, owned by one build's version string."""

    def __init__(self, client, version: str, *, seconds: float):
        self.client, self.version, self.ms = client, version, max(int(seconds * 1000), 1000)
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> bool:
        return bool(self.client.set(REBUILD_LOCK, self.version, nx=True, px=self.ms))

    def renew(self) -> bool:
        """Push the expiry out again if the lease is still ours; False (and ``lost`` set) when it is not."""
        try:
            ok = bool(self.client.eval(_RENEW, 1, REBUILD_LOCK, self.version, self.ms))
        except redis_errors.RedisError as exc:
            log.warning("recs_rebuild_lease_renew_failed", version=self.version, error=repr(exc))
            return True  # Redis hiccup: the lease may still hold; the next beat tries again
        if not ok:
            self.lost.set()
        return ok

    def _beat(self) -> None:
        while not self._stop.wait(self.ms / 3000):
            if not self.renew():
                log.error("recs_rebuild_lease_lost", version=self.version)
                return

    def start_heartbeat(self) -> None:
        self._thread = threading.Thread(target=self._beat, name=f"recs-lease-{self.version}", daemon=True)
        self._thread.start()

    def check(self) -> None:
        """Raise :class:`LeaseLost` unless the lease is still ours (checked before publishing)."""
        if self.lost.is_set() or not self.renew():
            raise LeaseLost(f"the rebuild lease {REBUILD_LOCK} expired or was taken while building")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.client.eval(_RELEASE, 1, REBUILD_LOCK, self.version)


def recommendations_rebuild() -> ModelBuild | None:
    """Compute every model from all interactions and the catalogue, store it, and make it the served
    one in one swap. The ``ModelBuild`` row says how long it took and from how much. One rebuild at a
    time (a Redis lease, :class:`RebuildLease`): a second one asked meanwhile (the admin's button
    during the scheduled one) does nothing and returns None. Builds left "running" by a dead process
    are marked failed first (:func:`recommendations_builds_reap`)."""
    version = timezone.now().strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
    lease = RebuildLease(redis_client(), version, seconds=settings.RECS_REBUILD_LEASE_SECONDS)
    if not lease.acquire():
        log.info("recs_rebuild_skipped", reason="another rebuild is running")
        return None
    lease.start_heartbeat()
    try:
        recommendations_builds_reap()
        return _rebuild(version, lease)
    finally:
        lease.release()


ABANDONED = "abandoned: "


def recommendations_builds_reap() -> int:
    """Mark failed every build still "running" whose lease is gone (its process died without finishing:
    nothing renews the lease, so it expired within RECS_REBUILD_LEASE_SECONDS); returns how many.
    The beat runs this every minute, and every rebuild runs it once it holds the lease."""
    running = list(ModelBuild.objects.filter(status=ModelBuild.Status.RUNNING).values_list("pk", "version"))
    if not running:
        return 0
    raw = redis_client().get(REBUILD_LOCK)
    holder = raw.decode() if isinstance(raw, bytes) else raw
    reaped = 0
    for pk, version in running:
        if holder == version:
            continue  # alive: its heartbeat keeps the lease
        reason = (f"{ABANDONED}the build stopped renewing its lease (the process running it died or was killed) "
                  f"and it expired after {settings.RECS_REBUILD_LEASE_SECONDS:g} s")
        reaped += ModelBuild.objects.filter(pk=pk, status=ModelBuild.Status.RUNNING).update(
            status=ModelBuild.Status.FAILED, error=reason, finished_at=timezone.now())
        log.warning("recs_rebuild_abandoned", version=version)
    return reaped


def _rebuild(version: str, lease: RebuildLease) -> ModelBuild:
    started = time.perf_counter()
    build = ModelBuild.objects.create(version=version)
    try:
        rows = [(r.user_id, r.item_id, r.basket_id if r.event_type == "purchase" else "", r.weight,
                 r.occurred_at.timestamp()) for r in omni.interaction_rows()]
        catalog = catalog_rows()
        params = build_params()
        weight, table = auto.tune_weight(rows, catalog, params=params,
                                         half_life_hours=settings.RECS_TRENDING_HALF_LIFE_HOURS,
                                         window_hours=settings.RECS_TRENDING_WINDOW_HOURS)
        model = engine.build_model(version=version, built_at=time.time(), interactions=[r[:4] for r in rows],
                                   catalog=catalog, params=params)
        model.stats["auto_weight"] = auto.DEFAULT_WEIGHT if weight is None else weight
        model.stats["auto_tuning"] = {str(w): round(r, 6) for w, r in table.items()}
        lease.check()  # a build whose lease lapsed may have been declared dead: it must not swap in
        size = get_store().publish(model)
    except Exception as exc:
        ModelBuild.objects.filter(pk=build.pk).update(status=ModelBuild.Status.FAILED, error=repr(exc)[:2000],
                                                      finished_at=timezone.now(),
                                                      duration_seconds=time.perf_counter() - started)
        log.exception("recs_rebuild_failed", version=version)
        raise
    stats = model.stats
    ModelBuild.objects.filter(pk=build.pk).update(
        status=ModelBuild.Status.SERVED, finished_at=timezone.now(), duration_seconds=time.perf_counter() - started,
        interactions=stats["interactions"], users=stats["users"], items=stats["items"], cf_method=model.cf_method,
        size_bytes=size, auto_weight=stats["auto_weight"], auto_tuning=stats["auto_tuning"])
    ModelBuild.objects.filter(status=ModelBuild.Status.SERVED).exclude(pk=build.pk).update(
        status=ModelBuild.Status.REPLACED)
    build.refresh_from_db()
    log.info("recs_rebuilt", version=version, seconds=build.duration_seconds, **stats)
    return build


def trending_refresh() -> engine.Trending:
    """Decayed interaction counts over the trending window, stored for every serving process."""
    now = timezone.now()
    window = settings.RECS_TRENDING_WINDOW_HOURS
    rows = ((r.item_id, r.weight, r.occurred_at.timestamp())
            for r in omni.interaction_rows(since=now - timedelta(hours=window)))
    trending = engine.compute_trending(rows, now=now.timestamp(), half_life_hours=settings.RECS_TRENDING_HALF_LIFE_HOURS,
                                       window_hours=window, keep=settings.RECS_TRENDING_KEEP)
    get_store().publish_trending(trending)
    return trending
