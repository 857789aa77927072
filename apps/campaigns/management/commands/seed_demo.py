"""``manage.py seed_demo``: demo users, campaigns in every state, and every other app's demo data.

Idempotent: users are updated in place (their password reset to the configured one), a campaign found
by name is left as it is, and each app's ``demo.seed()`` is itself idempotent. Passwords come from
DEMO_ADMIN_PASSWORD / DEMO_MARKETER_PASSWORD / DEMO_APPROVER_PASSWORD; unset, the documented local
defaults are used (refused when CAMPAIGN_EXPRESS_ENV=production). They are printed at the end.
"""
from __future__ import annotations

import logging
import time
import traceback
from types import ModuleType

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from rest_framework.authtoken.models import Token

from apps.analytics import demo as analytics_demo
from apps.bidding import demo as bidding_demo
from apps.campaigns import demo, selectors
from apps.dsp import demo as dsp_demo
from apps.loyalty import demo as loyalty_demo
from apps.omnichannel import demo as omnichannel_demo
from apps.suppression import demo as suppression_demo
from config import env


def demo_modules() -> list[ModuleType]:
    """The other apps' ``demo`` modules, in INSTALLED_APPS order; each has an idempotent ``seed()``.

    A new app with demo data adds its module here (a test checks this list against ``apps/*/demo.py``)."""
    return [bidding_demo, loyalty_demo, suppression_demo, dsp_demo, omnichannel_demo, analytics_demo]


class Command(BaseCommand):
    help = "Create demo users and campaigns (every lifecycle state) and run each app's demo.seed(). Idempotent."

    def add_arguments(self, parser):
        parser.add_argument("--only-campaigns", action="store_true",
                            help="Seed users and campaigns only; skip the other apps' demo.seed().")

    def handle(self, *args, only_campaigns: bool = False, **options):
        if options.get("verbosity", 1) < 2:
            # The services log every transition; here the command's own progress lines tell the story.
            logging.getLogger("apps").setLevel(logging.WARNING)
        started = time.monotonic()
        users = demo.demo_users({
            "admin": settings.DEMO_ADMIN_PASSWORD,
            "marketer": settings.DEMO_MARKETER_PASSWORD,
            "approver": settings.DEMO_APPROVER_PASSWORD,
        })
        defaults = sorted({u.username for u in users if not u.from_env})
        if env.IS_PRODUCTION and defaults:
            raise CommandError("Refusing the documented demo passwords in production: set DEMO_ADMIN_PASSWORD, "
                               "DEMO_MARKETER_PASSWORD and DEMO_APPROVER_PASSWORD.")

        self.stdout.write(self.style.MIGRATE_HEADING("Users"))
        by_name = {}
        for spec in users:
            user, created = demo.ensure_user(spec)
            by_name[spec.username] = user
            Token.objects.get_or_create(user=user)
            self.stdout.write(f"  {'created' if created else 'updated'}  {spec.username:<10} roles: {', '.join(spec.roles)}")

        self.stdout.write(self.style.MIGRATE_HEADING(f"Campaigns ({len(demo.CAMPAIGNS)})"))
        new = 0
        for i, spec in enumerate(demo.CAMPAIGNS, 1):
            campaign, created = demo.ensure_campaign(
                spec, marketer=by_name["marketer"], approver=by_name["approver"], approver2=by_name["approver2"]
            )
            new += created
            campaign = selectors.campaign_get(campaign_id=campaign.pk)
            note = "created" if created else "exists "
            self.stdout.write(f"  [{i:>2}/{len(demo.CAMPAIGNS)}] {note} {campaign.get_status_display():<10} "
                              f"#{campaign.pk} {campaign.name} ({campaign.offers.count()} offers)")

        failed = []
        if not only_campaigns:
            modules = demo_modules()
            self.stdout.write(self.style.MIGRATE_HEADING(f"Other apps ({len(modules)})"))
            for module in modules:
                module_name = module.__name__
                self.stdout.write(f"  {module_name}.seed()")
                t0 = time.monotonic()
                try:
                    module.seed()
                except Exception:  # noqa: BLE001 - report every app's failure, then fail the command
                    failed.append(module_name)
                    self.stdout.write(self.style.ERROR(f"    failed: {module_name}"))
                    self.stderr.write(traceback.format_exc())
                else:
                    self.stdout.write(self.style.SUCCESS(f"    ok ({time.monotonic() - t0:.1f}s)"))

        self.stdout.write(self.style.MIGRATE_HEADING("Sign in at /admin/ (API: Authorization: Token <key>)"))
        for spec in users:
            source = "from env" if spec.from_env else "default"
            token = Token.objects.get(user=by_name[spec.username]).key
            self.stdout.write(f"  {spec.username:<10} password {spec.password!s:<16} ({source})  token {token}")
        counts = selectors.campaign_counts_by_status()
        summary = ", ".join(f"{status} {counts[status]}" for status in sorted(counts))
        self.stdout.write(self.style.SUCCESS(
            f"seed_demo: {len(users)} users, {new} new campaign(s) [{summary}], "
            f"{len(failed)} app seed failure(s), {time.monotonic() - started:.1f}s"
        ))
        if failed:
            raise CommandError(f"demo seed failed for: {', '.join(failed)}")
