"""Training sets for the bid model, built from ClickHouse (docs/DESIGN.md "Training the bid model").

Impressions are the rows of ``bid_inputs`` (the serve-time inputs of every bid,
``apps.analytics.bid_inputs``), read through the analytics selectors (``apps.core.clickhouse``,
the one gateway). Each row's features are rebuilt with the serving code
(``apps.inference.features.feature_row``): rows of another feature-layout version cannot be
rebuilt by this code and are skipped (counted).

Labels (docs/RULES.md §10), all within ``window`` seconds after the bid was served:

* ``won`` — a ``win`` event with the bid's id;
* ``y_click`` — a ``click`` event with the bid's id;
* ``reward`` — the sum of the loyalty reward signals (clicked +1, redeemed +2, ignored −0.1) of the
  bid's (user, offer), attributed last-touch: each signal goes to the latest *won* impression of
  that user and offer served before it, if that impression is at most ``window`` old. Anonymous
  traffic has no user to join on and gets no reward.
"""
from __future__ import annotations

import bisect
import datetime as dt
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings

from apps.analytics import selectors
from apps.analytics.bid_inputs import row_inputs
from apps.bidding.cache import ANONYMOUS
from apps.inference.features import FEATURE_LAYOUT_VERSION, N_FEATURES, feature_row

DEFAULT_WINDOW_SECONDS = 86_400
# a win or click notice stamped by another host's clock may read a little before the bid it answers
CLOCK_SKEW_US = 5_000_000


def label_window_seconds() -> int:
    """``TRAINING_LABEL_WINDOW_SECONDS`` (default one day): how long after a bid its win, click and
    reward signals still count."""
    return settings.TRAINING_LABEL_WINDOW_SECONDS


@dataclass
class TrainingSet:
    """One row per bid served in ``[since, until)`` — per won impression when built ``won_only`` —
    oldest first."""

    X: np.ndarray  # float32[n, 256], rebuilt by the serving feature code
    y_click: np.ndarray  # float32[n]: 1.0 when the bid was clicked within the window
    reward: np.ndarray  # float32[n]: sum of the (user, offer) reward signals attributed to it
    won: np.ndarray  # bool[n]: a win notice within the window
    served_at: np.ndarray  # float64[n]: unix seconds
    bid_ids: list[str]
    since: dt.datetime
    until: dt.datetime
    window_seconds: int
    layout_version: int = FEATURE_LAYOUT_VERSION
    skipped_layout: int = 0  # rows of another feature layout (not rebuildable here)
    bids: int = 0  # bids of this layout served in the window, won or not (``won_only`` keeps fewer rows)
    model_versions: dict[str, int] = field(default_factory=dict)  # bids per serving model

    def __len__(self) -> int:
        return len(self.bid_ids)

    def won_only(self) -> "TrainingSet":
        """The won impressions: what the trainer learns from."""
        keep = self.won
        return TrainingSet(
            X=self.X[keep], y_click=self.y_click[keep], reward=self.reward[keep], won=self.won[keep],
            served_at=self.served_at[keep], bid_ids=[b for b, k in zip(self.bid_ids, keep, strict=True) if k],
            since=self.since, until=self.until, window_seconds=self.window_seconds,
            layout_version=self.layout_version, skipped_layout=self.skipped_layout,
            model_versions=dict(self.model_versions), bids=self.bids,
        )


def chunk_rows() -> int:
    """``TRAINING_CHUNK_ROWS`` (default 100,000): how many ``bid_inputs`` rows are read from ClickHouse at
    a time while a training set is built."""
    return settings.TRAINING_CHUNK_ROWS


def training_set_build(*, since: dt.datetime, until: dt.datetime, window_seconds: int | None = None,
                       won_only: bool = False, chunk: int | None = None) -> TrainingSet:
    """Every bid served in ``[since, until)`` with its rebuilt features and labels (module docstring),
    oldest first; with ``won_only`` only the won impressions (what the trainer reads: the others never
    take a feature row's memory). The bids are read ``chunk`` rows at a time (default
    ``TRAINING_CHUNK_ROWS``), so the memory a long window takes is its kept rows' features plus one chunk."""
    window = label_window_seconds() if window_seconds is None else int(window_seconds)
    if window <= 0:
        raise ValueError(f"the label window must be positive, got {window} s")
    if until <= since:
        raise ValueError(f"--until ({until.isoformat()}) must be after --since ({since.isoformat()})")
    labels_end = until + dt.timedelta(seconds=window)
    outcomes = selectors.bid_outcome_times(start=since, end=labels_end)
    signals = selectors.reward_signal_list(start=since, end=labels_end)
    wins, clicks = outcomes["win"], outcomes["click"]
    window_us = window * 1_000_000

    parts: list[np.ndarray] = []
    clicked: list[float] = []
    won: list[bool] = []
    served_us: list[int] = []
    bid_ids: list[str] = []
    pairs: list[tuple[str, str]] = []  # (user, offer) of each kept row, for the reward attribution
    versions: dict[str, int] = {}
    records = usable = 0
    for rows in selectors.bid_inputs_chunks(start=since, end=until, chunk_rows=chunk or chunk_rows()):
        records += len(rows)
        kept = []
        for record in rows:
            if record["layout_version"] != FEATURE_LAYOUT_VERSION:
                continue
            usable += 1
            versions[record["model_version"]] = versions.get(record["model_version"], 0) + 1
            at_us = _micros(record)
            bid_id = record["bid_id"]
            win_us = wins.get(bid_id)
            is_won = win_us is not None and -CLOCK_SKEW_US <= win_us - at_us <= window_us
            if won_only and not is_won:
                continue
            click_us = clicks.get(bid_id)
            clicked.append(1.0 if click_us is not None and -CLOCK_SKEW_US <= click_us - at_us <= window_us else 0.0)
            won.append(is_won)
            served_us.append(at_us)
            bid_ids.append(bid_id)
            pairs.append((record["user_id"], record["offer_id"]))
            kept.append(feature_row(**row_inputs(record)))
        if kept:
            parts.append(np.stack(kept))
    # oldest first by when each bid was served (the chunks come in the table's key order)
    order = np.argsort(np.array(served_us, dtype=np.int64), kind="stable")
    X = np.concatenate(parts)[order] if parts else np.zeros((0, N_FEATURES), dtype=np.float32)
    served = np.array(served_us, dtype=np.int64)[order]
    won_arr = np.array(won, dtype=bool)[order]
    reward = np.zeros(len(order), dtype=np.float64)
    # won impressions of each (user, offer), in serving order, for the last-touch attribution
    touches: dict[tuple[str, str], tuple[list[int], list[int]]] = {}
    for i, k in enumerate(order.tolist()):
        user_id, offer_id = pairs[k]
        if won_arr[i] and user_id and user_id != ANONYMOUS:
            times, positions = touches.setdefault((user_id, offer_id), ([], []))
            times.append(int(served[i]))
            positions.append(i)
    for user_id, offer_id, signal_us, value, _kind in signals:
        found = touches.get((user_id, offer_id))
        if not found:
            continue
        times, positions = found
        j = bisect.bisect_right(times, signal_us) - 1  # the latest won impression served before the signal
        if j >= 0 and signal_us - times[j] <= window_us:
            reward[positions[j]] += value
    return TrainingSet(
        X=X, y_click=np.array(clicked, dtype=np.float32)[order], reward=reward.astype(np.float32), won=won_arr,
        served_at=served / 1e6, bid_ids=[bid_ids[k] for k in order.tolist()], since=since, until=until,
        window_seconds=window, skipped_layout=records - usable, model_versions=versions, bids=usable,
    )


def _micros(record: dict) -> int:
    """When the bid was served (the request's clock), µs since the epoch."""
    return round(record["served_at"] * 1_000_000)
