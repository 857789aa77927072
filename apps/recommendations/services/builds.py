"""Rebuilding the models from all interactions, and refreshing trending from the recent ones."""
from __future__ import annotations

import time
import uuid
from datetime import timedelta

import structlog
from django.conf import settings
from django.utils import timezone

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
REBUILD_LOCK_SECONDS = 3 * 3600  # longer than any rebuild; a dead worker's lock expires by itself


def recommendations_rebuild() -> ModelBuild | None:
    """Compute every model from all interactions and the catalogue, store it, and make it the served
    one in one swap. The ``ModelBuild`` row says how long it took and from how much. One rebuild at a
    time (a Redis lock): a second one asked meanwhile (the admin's button during the scheduled one)
    does nothing and returns None."""
    version = timezone.now().strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
    client = redis_client()
    if not client.set(REBUILD_LOCK, version, nx=True, ex=REBUILD_LOCK_SECONDS):
        log.info("recs_rebuild_skipped", reason="another rebuild is running")
        return None
    try:
        return _rebuild(version)
    finally:
        if client.get(REBUILD_LOCK) == version.encode():
            client.delete(REBUILD_LOCK)


def _rebuild(version: str) -> ModelBuild:
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
