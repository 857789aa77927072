"""Writes of the training slice: train a bid model from what the bidders logged (no ORM)."""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from apps.inference.model import validate_version
from apps.training import dataset
from apps.training.trainer import TrainConfig, TrainResult, train
from config import env

log = structlog.get_logger(__name__)

DEFAULT_MIN_IMPRESSIONS = 1000
DEFAULT_DAYS = 7


class NotEnoughData(ValueError):
    """Fewer won impressions in the window than the trainer needs."""

    def __init__(self, found: int, needed: int):
        super().__init__(f"not enough training data: {found} impressions, need {needed}")
        self.found, self.needed = found, needed


def min_impressions() -> int:
    """``TRAINING_MIN_IMPRESSIONS`` (default 1000): fewer won impressions than this and nothing is trained."""
    return env.env_int("TRAINING_MIN_IMPRESSIONS", DEFAULT_MIN_IMPRESSIONS)


@dataclass
class TrainOutcome:
    result: TrainResult
    path: Path
    impressions: int  # won impressions trained on
    bids: int  # bids served in the window
    clicks: int
    since: dt.datetime
    until: dt.datetime


def model_train(*, since: dt.datetime | None = None, until: dt.datetime | None = None, out_dir: str | Path,
                version: str | None = None, config: TrainConfig | None = None, window_seconds: int | None = None,
                needed: int | None = None, progress: Callable[[dict], None] | None = None) -> TrainOutcome:
    """Build the training set of ``[since, until)`` (default: the last 7 days), train on its won
    impressions and write ``<out_dir>/colanet-<version>.npz``. Raises NotEnoughData."""
    config = config or TrainConfig()
    until = until or dt.datetime.now(dt.timezone.utc)
    since = since or until - dt.timedelta(days=DEFAULT_DAYS)
    needed = min_impressions() if needed is None else needed
    version = validate_version(version or f"trained-{until:%Y%m%dT%H%M%S}-s{config.seed}")
    full = dataset.training_set_build(since=since, until=until, window_seconds=window_seconds)
    won = full.won_only()
    if len(won) < max(1, needed):
        raise NotEnoughData(len(won), max(1, needed))
    result = train(won.X, won.y_click, won.reward, version=version, config=config, progress=progress)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"colanet-{version}.npz"
    result.weights.to_npz(path)
    log.info("training_model_trained", version=version, path=str(path), impressions=len(won), bids=len(full),
             clicks=int(won.y_click.sum()), since=since.isoformat(), until=until.isoformat(),
             final_loss=result.history[-1]["loss"], skipped_layout=full.skipped_layout)
    return TrainOutcome(result=result, path=path, impressions=len(won), bids=len(full),
                        clicks=int(won.y_click.sum()), since=since, until=until)
