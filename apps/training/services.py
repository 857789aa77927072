"""Writes of the training slice: train a bid model from what the bidders logged, and publish it
through the inference registry only when it beats the model in service (no ORM).

Champion / challenger (docs/DESIGN.md "Training the bid model"): the won impressions of the window,
oldest first, are split by time — the first ``1 − HOLDOUT_FRACTION`` train the challenger, the
newest ``HOLDOUT_FRACTION`` are the holdout. The champion is the model the bidders would load now
(``InferenceRuntime.load``: the newest valid published file, else the seeded initialisation). On
the holdout, the CTR head's log loss and AUC against the clicks, with a bootstrap (200 resamples,
seeded) 95 % interval of the challenger's log loss. The challenger is published only when its log
loss is lower than the champion's by more than that interval's half-width **and** its AUC is not
lower. Either way its file keeps the metrics, the data window, the decision and the feature-layout
version (``CoLaNetWeights.metadata`` / ``layout_version``).

Model versions (the admin's list, ``models.ModelVersion``): ``model_versions_sync`` mirrors the
registry directory into Postgres, reading what each file stores; ``model_rollback`` re-publishes an
earlier version through the registry (``model_publish``: it becomes the newest file, every bidder
hot-reloads it on the announcement) and audits who did it, when, from which version and why. Only the
Admin role rolls back.
"""
from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import structlog
from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from redis.exceptions import RedisError

from apps.core.exceptions import Conflict, Forbidden, NotFound, Unprocessable
from apps.core.roles import user_has_role
from apps.inference import registry
from apps.inference.features import FEATURE_LAYOUT_VERSION
from apps.inference.model import CoLaNetWeights, ModelFileError, validate_version
from apps.training import dataset
from apps.training.trainer import TrainConfig, TrainResult, auc, log_loss, predict_ctr, train

log = structlog.get_logger(__name__)

DEFAULT_MIN_IMPRESSIONS = 1000
DEFAULT_DAYS = 7
HOLDOUT_FRACTION = 0.2
BOOTSTRAP_SAMPLES = 200


class NotEnoughData(ValueError):
    """Fewer won impressions in the window than the trainer needs."""

    def __init__(self, found: int, needed: int):
        super().__init__(f"not enough training data: {found} impressions, need {needed}")
        self.found, self.needed = found, needed


def min_impressions() -> int:
    """``TRAINING_MIN_IMPRESSIONS`` (default 1000): fewer won impressions than this and nothing is trained."""
    return settings.TRAINING_MIN_IMPRESSIONS


@dataclass(frozen=True)
class Evaluation:
    """The CTR head on a holdout: log loss and AUC, each with its bootstrap 95 % interval's half-width."""

    version: str
    log_loss: float
    log_loss_half_width: float
    auc: float
    rows: int
    clicks: int
    auc_half_width: float = math.nan


@dataclass
class Selection:
    better: bool  # it beat the champion (published only with publish=True)
    published: bool
    reason: str
    challenger: Evaluation
    champion: Evaluation
    path: Path  # the challenger's file (in the output directory)
    published_path: Path | None = None


@dataclass
class TrainOutcome:
    result: TrainResult
    selection: Selection
    path: Path
    impressions: int  # won impressions in the window (train + holdout)
    bids: int  # bids served in the window
    clicks: int
    since: dt.datetime
    until: dt.datetime
    history: list = field(default_factory=list)


def model_evaluate(weights: CoLaNetWeights, X: np.ndarray, y: np.ndarray, *, seed: int = 0,
                   samples: int = BOOTSTRAP_SAMPLES) -> Evaluation:
    """Log loss and AUC of ``weights``' CTR head on ``(X, y)``; the log loss's bootstrap interval
    (``samples`` resamples of the rows, ``numpy.random.default_rng(seed)``, percentiles 2.5–97.5), and
    the AUC's over the same resamples."""
    y = np.asarray(y, dtype=np.float64)
    p = np.clip(predict_ctr(weights, X).astype(np.float64), 1e-6, 1 - 1e-6)
    per_row = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    rng = np.random.default_rng(seed)
    n = len(y)
    draws = [rng.integers(0, n, n) for _ in range(samples)] if n else []
    means = np.array([per_row[i].mean() for i in draws]) if n else np.array([np.nan])
    aucs = np.array([auc(y[i], p[i]) for i in draws]) if n else np.array([np.nan])
    lo, hi = np.percentile(means, [2.5, 97.5])
    # a resample with one class only has no AUC; the interval is over the others (NaN if none)
    auc_lo, auc_hi = np.nanpercentile(aucs, [2.5, 97.5]) if np.isfinite(aucs).any() else (np.nan, np.nan)
    return Evaluation(version=weights.version, log_loss=log_loss(y, p), log_loss_half_width=float((hi - lo) / 2),
                      auc=auc(y, p), rows=n, clicks=int(y.sum()), auc_half_width=float((auc_hi - auc_lo) / 2))


def challenger_decide(*, challenger: Evaluation, champion: Evaluation) -> tuple[bool, str]:
    """Publish only when the challenger's log loss is lower by more than its bootstrap half-width and
    its AUC is not lower; returns (publish, why)."""
    if math.isnan(challenger.auc) or math.isnan(champion.auc):
        return False, f"the holdout ({challenger.rows} impressions, {challenger.clicks} clicks) needs clicks and non-clicks"
    gain = champion.log_loss - challenger.log_loss
    if gain <= challenger.log_loss_half_width:
        return False, (f"log loss {challenger.log_loss:.5f} vs the champion's {champion.log_loss:.5f}: lower by "
                       f"{gain:.5f}, not more than the bootstrap half-width {challenger.log_loss_half_width:.5f}")
    if challenger.auc < champion.auc:
        return False, f"AUC {challenger.auc:.4f} is lower than the champion's {champion.auc:.4f}"
    return True, (f"log loss {challenger.log_loss:.5f} < {champion.log_loss:.5f} by {gain:.5f} "
                  f"(> half-width {challenger.log_loss_half_width:.5f}), AUC {challenger.auc:.4f} >= {champion.auc:.4f}")


def serving_weights(model_dir: str | Path | None = None) -> CoLaNetWeights:
    """The model the bidders would score with now (``InferenceRuntime.load``'s choice)."""
    from apps.inference.runtime import InferenceRuntime

    runtime = InferenceRuntime.from_env()
    if model_dir is not None:
        runtime.model_dir = Path(model_dir)
    runtime.load()
    return runtime.provider.weights


def challenger_publish_if_better(*, challenger: CoLaNetWeights, X_holdout: np.ndarray, y_holdout: np.ndarray,
                                 out_dir: str | Path, model_dir: str | Path | None = None, publish: bool = True,
                                 metadata: dict | None = None, seed: int = 0, redis_client=None) -> Selection:
    """Compare ``challenger`` with the model in service on the holdout, write the challenger's file
    (with metrics, decision and ``metadata``) to ``out_dir`` and, when it wins and ``publish``,
    publish it through the inference registry (hot reload in every bidder)."""
    from apps.inference.services import model_publish

    champion = serving_weights(model_dir)
    ours = model_evaluate(challenger, X_holdout, y_holdout, seed=seed)
    theirs = model_evaluate(champion, X_holdout, y_holdout, seed=seed)
    better, reason = challenger_decide(challenger=ours, champion=theirs)
    meta = dict(metadata or {})
    meta.update({
        "feature_layout_version": FEATURE_LAYOUT_VERSION,
        "holdout": {"challenger": asdict(ours), "champion": asdict(theirs)},
        "decision": {"published": bool(better and publish), "better": better, "reason": reason},
    })
    weights = CoLaNetWeights(W1=challenger.W1, b1=challenger.b1, theta=challenger.theta, W2=challenger.W2,
                             b2=challenger.b2, version=challenger.version, metadata=_jsonable(meta))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"colanet-{weights.version}.npz"
    weights.to_npz(path)
    selection = Selection(better=better, published=False, reason=reason, challenger=ours, champion=theirs, path=path)
    if better and publish:
        published = model_publish(source=path, model_dir=model_dir, redis_client=redis_client)
        selection.published, selection.published_path = True, published.path
    log.info("training_challenger_decided", challenger=ours.version, champion=theirs.version, better=better,
             published=selection.published, reason=reason, challenger_log_loss=ours.log_loss,
             champion_log_loss=theirs.log_loss, half_width=ours.log_loss_half_width, challenger_auc=ours.auc,
             champion_auc=theirs.auc)
    return selection


def _jsonable(value):
    """NaN is not JSON: stored as null."""
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def model_train(*, since: dt.datetime | None = None, until: dt.datetime | None = None, out_dir: str | Path,
                version: str | None = None, config: TrainConfig | None = None, window_seconds: int | None = None,
                needed: int | None = None, publish: bool = False, model_dir: str | Path | None = None,
                progress: Callable[[dict], None] | None = None, redis_client=None) -> TrainOutcome:
    """Build the training set of ``[since, until)`` (default: the last 7 days), train a challenger on
    the older won impressions, judge it against the model in service on the newest ones (module
    docstring) and, with ``publish``, publish it when it wins. Raises NotEnoughData."""
    config = config or TrainConfig()
    until = until or dt.datetime.now(dt.timezone.utc)
    since = since or until - dt.timedelta(days=DEFAULT_DAYS)
    needed = max(2, min_impressions() if needed is None else needed)
    version = validate_version(version or f"trained-{until:%Y%m%dT%H%M%S}-s{config.seed}")
    won = dataset.training_set_build(since=since, until=until, window_seconds=window_seconds, won_only=True)
    if len(won) < needed:
        raise NotEnoughData(len(won), needed)
    order = np.argsort(won.served_at, kind="stable")
    cut = min(len(order) - 1, max(1, int(round(len(order) * (1 - HOLDOUT_FRACTION)))))
    fit, hold = order[:cut], order[cut:]
    result = train(won.X[fit], won.y_click[fit], won.reward[fit], version=version, config=config, progress=progress)
    metadata = {
        "trained_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        "data_window": {"since": since.isoformat(), "until": until.isoformat(),
                        "label_window_seconds": won.window_seconds,
                        "holdout_from": dt.datetime.fromtimestamp(float(won.served_at[hold[0]]), dt.timezone.utc).isoformat()},
        "impressions": {"train": int(len(fit)), "holdout": int(len(hold)), "bids_in_window": won.bids,
                        "clicks_train": int(won.y_click[fit].sum()), "skipped_other_layout": won.skipped_layout},
        "train": {"seed": config.seed, "epochs": config.epochs, "batch_size": config.batch_size,
                  "learning_rate": config.learning_rate, "surrogate_beta": config.surrogate_beta,
                  "score_weight": config.score_weight, "final_loss": result.history[-1]["loss"]},
    }
    selection = challenger_publish_if_better(challenger=result.weights, X_holdout=won.X[hold], y_holdout=won.y_click[hold],
                                             out_dir=out_dir, model_dir=model_dir, publish=publish, metadata=metadata,
                                             seed=config.seed, redis_client=redis_client)
    log.info("training_model_trained", version=version, path=str(selection.path), impressions=len(won), bids=won.bids,
             clicks=int(won.y_click.sum()), since=since.isoformat(), until=until.isoformat(),
             final_loss=result.history[-1]["loss"], skipped_layout=won.skipped_layout, published=selection.published)
    return TrainOutcome(result=result, selection=selection, path=selection.path, impressions=len(won), bids=won.bids,
                        clicks=int(won.y_click.sum()), since=since, until=until, history=result.history)


# --- model versions (admin list, roll-back) ---------------------------------------------------------
def _moment_or_none(value) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def _float_or_none(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _int_or_none(value) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _file_fields(path: Path) -> dict:
    """What the admin shows of one version file: loadable or why not, layout, and the trainer's metadata."""
    error = ""
    layout: int | None = None
    metadata: dict | None = None
    try:
        weights = CoLaNetWeights.from_npz(path)
        layout, metadata = weights.layout_version, weights.metadata
    except ModelFileError as exc:
        error = str(exc)
        try:  # a refused file (e.g. another layout) still says what it is, when it can be read
            with np.load(path, allow_pickle=False) as data:
                layout = int(data["layout_version"]) if "layout_version" in data.files else 1
                if "metadata" in data.files:
                    metadata = json.loads(str(data["metadata"][()]))
        except (OSError, ValueError, EOFError, TypeError, KeyError):
            pass
    meta = metadata if isinstance(metadata, dict) else {}
    window = meta.get("data_window") or {}
    holdout = meta.get("holdout") or {}
    ours, theirs = holdout.get("challenger") or {}, holdout.get("champion") or {}
    decided = meta.get("decision") or {}
    decision = ("" if not decided else "published" if decided.get("published") else
                "better" if decided.get("better") else "not better")
    return {
        "loadable": not error, "load_error": error, "layout_version": layout, "metadata": metadata,
        "trained_at": _moment_or_none(meta.get("trained_at")),
        "data_since": _moment_or_none(window.get("since")), "data_until": _moment_or_none(window.get("until")),
        "holdout_rows": _int_or_none(ours.get("rows")), "holdout_clicks": _int_or_none(ours.get("clicks")),
        "log_loss": _float_or_none(ours.get("log_loss")),
        "log_loss_half_width": _float_or_none(ours.get("log_loss_half_width")),
        "auc": _float_or_none(ours.get("auc")), "auc_half_width": _float_or_none(ours.get("auc_half_width")),
        "champion_version": str(theirs.get("version") or "")[:64],
        "champion_log_loss": _float_or_none(theirs.get("log_loss")), "champion_auc": _float_or_none(theirs.get("auc")),
        "decision": decision, "decision_reason": str(decided.get("reason") or ""),
    }


def model_versions_sync(*, model_dir: str | Path | None = None) -> list:
    """Mirror the registry directory into ``ModelVersion`` rows (a file not read before, or changed,
    is read again; a row whose file is gone stays, ``present=False``) and mark the version in service:
    the newest published file that loads, as every bidder picks it. Returns the rows in the directory,
    newest publication first."""
    from apps.training.models import ModelVersion

    directory = Path(model_dir) if model_dir is not None else registry.model_dir()
    files = registry.published_models(directory)
    known = {row.version: row for row in ModelVersion.objects.filter(version__in=[f.version for f in files])}
    rows = []
    with transaction.atomic():
        for f in files:
            row = known.get(f.version)
            published_at = dt.datetime.fromtimestamp(f.mtime_ns / 1e9, dt.timezone.utc)
            if row is None or (row.file_mtime_ns, row.file_size) != (f.mtime_ns, f.size) or not row.present:
                fields = _file_fields(f.path)
                row, _ = ModelVersion.objects.update_or_create(
                    version=f.version, defaults={**fields, "present": True, "published_at": published_at,
                                                 "file_mtime_ns": f.mtime_ns, "file_size": f.size})
            rows.append(row)
        serving = next((row.version for row in reversed(rows) if row.loadable), None)
        ModelVersion.objects.exclude(version__in=[f.version for f in files]).filter(present=True).update(
            present=False, in_service=False)
        ModelVersion.objects.filter(in_service=True).exclude(version=serving).update(in_service=False)
        if serving is not None:
            ModelVersion.objects.filter(version=serving, in_service=False).update(in_service=True)
    for row in rows:
        row.in_service = row.version == serving
    return rows[::-1]


def _announce(version: str, redis_client=None) -> None:
    from apps.core import redis as redis_store

    publisher = redis_client or redis_store.client()
    try:
        receivers = publisher.publish(redis_store.channel(registry.MODEL_CHANNEL, publisher), version)
    except (RedisError, OSError) as exc:  # the bidders still find the file by polling the directory
        log.warning("training_model_rollback_announce_failed", version=version, error=str(exc))
        return
    log.info("training_model_rollback_announced", version=version, receivers=int(receivers))


def model_rollback(*, version: str, actor: User | None, reason: str = "", model_dir: str | Path | None = None,
                   redis_client=None):
    """Put ``version`` (a file already in the model directory) back in service: re-publish it through
    the registry (``model_publish``: it becomes the newest file) and announce it on ``models:published``
    after the audit row commits, so every bidder hot-reloads it. Admin role only (``Forbidden``);
    ``NotFound`` for a version not in the directory, ``Conflict`` when it is already in service,
    ``Unprocessable`` when its file does not load (e.g. another feature layout)."""
    from apps.inference.services import model_publish
    from apps.training.models import ModelVersionAction, ModelVersionAudit

    if not user_has_role(actor):
        raise Forbidden("Only the Admin role may roll back the bid model.")
    try:
        validate_version(version)
    except ModelFileError as exc:
        raise NotFound(str(exc), field="version") from exc
    directory = Path(model_dir) if model_dir is not None else registry.model_dir()
    path = registry.model_path(directory, version)
    if not path.is_file():
        raise NotFound(f"version {version!r} is not in the model directory {directory}", field="version")
    rows = model_versions_sync(model_dir=directory)
    serving = next((row.version for row in rows if row.in_service), "")
    if serving == version:
        raise Conflict(f"version {version!r} is already in service")
    with transaction.atomic():
        try:
            model_publish(source=path, model_dir=directory, announce=False)
        except ModelFileError as exc:
            raise Unprocessable(f"version {version!r} cannot go back in service: {exc}", field="version") from exc
        audit = ModelVersionAudit.objects.create(action=ModelVersionAction.ROLLBACK, from_version=serving,
                                                 to_version=version, actor=actor, reason=reason)
        transaction.on_commit(lambda: _announce(version, redis_client), robust=True)
    model_versions_sync(model_dir=directory)
    log.info("training_model_rolled_back", version=version, from_version=serving, actor=getattr(actor, "pk", None),
             reason=reason)
    return audit
