"""``manage.py train_model [--since … --until …]``: train the bid model (CoLaNet) on the won impressions
the bidders logged in the window (default: the last 7 days) and write the weights file.

Exits non-zero with "not enough training data: N impressions, need M" when the window holds too
few won impressions. Progress: one line per epoch."""
from __future__ import annotations

import datetime as dt

from django.core.management.base import BaseCommand, CommandError

from apps.core import clickhouse as ch
from apps.inference.model import ModelFileError
from apps.training.services import NotEnoughData, model_train
from apps.training.trainer import TrainConfig


def _moment(raw: str, name: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(raw)
    except ValueError as exc:
        raise CommandError(f"{name} must be an ISO date or date-time (2026-11-30 or 2026-11-30T12:00:00Z), "
                           f"got {raw!r}") from exc
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


class Command(BaseCommand):
    help = "Train the CoLaNet bid model on logged won impressions (numpy, float32, deterministic per seed)."

    def add_arguments(self, parser):
        parser.add_argument("--since", help="start of the serving window (ISO, UTC; default: --until minus 7 days)")
        parser.add_argument("--until", help="end of the serving window, exclusive (ISO, UTC; default: now)")
        parser.add_argument("--out-dir", default="var/training", help="where to write colanet-<version>.npz")
        parser.add_argument("--model-version", help="model version (default trained-<until>-s<seed>)")
        parser.add_argument("--seed", type=int, default=TrainConfig.seed)
        parser.add_argument("--epochs", type=int, default=TrainConfig.epochs)
        parser.add_argument("--window-seconds", type=int,
                            help="label window after each bid (default TRAINING_LABEL_WINDOW_SECONDS, 86400)")
        parser.add_argument("--min-impressions", type=int,
                            help="fewest won impressions to train on (default TRAINING_MIN_IMPRESSIONS, 1000)")
        parser.add_argument("--publish", action="store_true",
                            help="publish the challenger (hot reload in every bidder) when it beats the model in "
                                 "service on the time holdout")
        parser.add_argument("--model-dir", help="the registry's model directory (default CAMPAIGN_EXPRESS__NPU__MODEL_DIR)")

    def handle(self, *args, **options):
        until = _moment(options["until"], "--until") if options["until"] else None
        since = _moment(options["since"], "--since") if options["since"] else None
        if options["epochs"] < 1:
            raise CommandError(f"--epochs must be at least 1, got {options['epochs']}")
        config = TrainConfig(seed=options["seed"], epochs=options["epochs"])

        def progress(row: dict) -> None:
            self.stdout.write(f"epoch {row['epoch']:>3}/{row['epochs']}  loss {row['loss']:.5f}  "
                              f"ctr {row['ctr_loss']:.5f}  score {row['score_loss']:.5f}")

        try:
            outcome = model_train(since=since, until=until, out_dir=options["out_dir"], version=options["model_version"],
                                  config=config, window_seconds=options["window_seconds"],
                                  needed=options["min_impressions"], publish=options["publish"],
                                  model_dir=options["model_dir"], progress=progress)
        except NotEnoughData as exc:
            raise CommandError(str(exc)) from exc
        except (ValueError, ModelFileError) as exc:
            raise CommandError(str(exc)) from exc
        except ch.ClickHouseError as exc:
            raise CommandError(f"ClickHouse at {ch.url()} is not reachable: {exc}") from exc
        sel = outcome.selection
        for role, e in (("challenger", sel.challenger), ("champion", sel.champion)):
            self.stdout.write(f"{role:<10} {e.version:<32} log loss {e.log_loss:.5f} ± {e.log_loss_half_width:.5f}  "
                              f"AUC {e.auc:.4f} ± {e.auc_half_width:.4f}  ({e.rows} holdout impressions, {e.clicks} clicks)")
        verdict = ("published" if sel.published else "better, not published (no --publish)" if sel.better
                   else "not published")
        self.stdout.write(f"{verdict}: {sel.reason}")
        self.stdout.write(self.style.SUCCESS(
            f"Trained {outcome.result.weights.version} on {outcome.impressions} won impressions "
            f"({outcome.clicks} clicks, {outcome.bids} bids, {outcome.since:%Y-%m-%d %H:%M} – "
            f"{outcome.until:%Y-%m-%d %H:%M} UTC) -> {outcome.path}"))
