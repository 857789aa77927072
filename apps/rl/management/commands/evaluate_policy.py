"""``manage.py evaluate_policy --policy thompson:1,1 [--since … --until …]``: estimate, with IPS, SNIPS
and doubly robust and their 95 % intervals, what a policy would have earned on the logged decisions
of a date range (default: the last 7 days), next to the policy in service; stored for the admin.

``offerfit-on`` asks OfferFit to rank (deferred, never activated) every round it did not serve,
with a progress bar on stderr (``--no-progress`` for cron logs); rounds it cannot rank are left out
and counted, and more than ``--max-unranked`` of them refuse the run (apps/rl/services/evaluation.py)."""
from __future__ import annotations

import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from tqdm import tqdm

from apps.core import clickhouse as ch
from apps.core.exceptions import ServiceError
from apps.rl.services import rl_evaluate_policy


def _moment(raw: str, name: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(raw)
    except ValueError as exc:
        raise CommandError(f"{name} must be an ISO date or date-time (2026-11-30 or 2026-11-30T12:00:00Z), "
                           f"got {raw!r}") from exc
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


class Command(BaseCommand):
    help = "Off-policy evaluation (IPS, SNIPS, DR with 95 % intervals) of a policy on the decision log."

    def add_arguments(self, parser):
        parser.add_argument("--policy", action="append", required=True,
                            help="uniform | epsilon-greedy[:ε] | thompson[:α,β] | thompson:eb | offerfit-off | "
                                 "offerfit-on (needs OFFERFIT_API_URL and OFFERFIT_API_KEY); repeat to compare several")
        parser.add_argument("--since", help="start of the decision range (ISO, UTC; default: --until minus 7 days)")
        parser.add_argument("--until", help="end of the range, exclusive (ISO, UTC; default: now)")
        parser.add_argument("--batch", type=int, default=100, help="rounds between the policy's posterior updates")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--max-unranked", type=float, default=None, metavar="SHARE",
                            help="offerfit-on: largest share of the range's closed decisions OfferFit may fail to rank "
                                 "(they are left out and counted) before the run is refused "
                                 "(default OFFERFIT_EVAL_MAX_UNRANKED_SHARE, 0.01)")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar (e.g. in cron logs)")

    def handle(self, *args, **options):
        until = _moment(options["until"], "--until") if options["until"] else timezone.now()
        since = _moment(options["since"], "--since") if options["since"] else until - dt.timedelta(days=7)
        if options["batch"] < 1:
            raise CommandError(f"--batch must be at least 1, got {options['batch']}")
        if options["max_unranked"] is not None and not 0 <= options["max_unranked"] <= 1:
            raise CommandError(f"--max-unranked must be a share in [0, 1], got {options['max_unranked']}")
        for spec in options["policy"]:
            with tqdm(total=None, unit="round", desc=f"{spec.strip()}: OfferFit ranking",
                      disable=options["no_progress"] or spec.strip() != "offerfit-on", file=self.stderr._out) as bar:

                def progress(done: int, total: int, bar=bar) -> None:
                    bar.total = total
                    bar.update(done - bar.n)

                try:
                    run = rl_evaluate_policy(policy=spec, start=since, end=until, batch=options["batch"],
                                             seed=options["seed"], max_unranked_share=options["max_unranked"],
                                             progress=progress)
                except ServiceError as exc:
                    raise CommandError(exc.message) from exc
                except ch.ClickHouseError as exc:
                    raise CommandError(f"ClickHouse is unavailable: {exc}") from exc
            served = "n/a" if run.logged_value is None else f"{run.logged_value:.4f}"
            self.stdout.write(f"{run.policy}: {run.decisions} closed decisions, policy in service {served}")
            if run.details:
                unranked = ", ".join(f"{k} {v}" for k, v in run.details.get("unranked", {}).items()) or "none"
                self.stdout.write(
                    f"  OfferFit's logged distribution on {run.details['offerfit_logged']} rounds "
                    f"({run.details['offerfit_logged_partial']} more with only the chosen offer's), ranked "
                    f"{run.details['ranked']} deferred; excluded {run.excluded} it could not rank ({unranked})")
            for e in run.estimates:
                value = "n/a" if e["value"] is None else f"{e['value']:.4f}"
                low = "n/a" if e["low"] is None else f"{e['low']:.4f}"
                high = "n/a" if e["high"] is None else f"{e['high']:.4f}"
                self.stdout.write(f"  {e['estimator']:>5}  {value}  [{low}, {high}]")
        self.stdout.write(f"evaluated {len(options['policy'])} policies on {since:%Y-%m-%d %H:%M}..{until:%Y-%m-%d %H:%M} UTC")
