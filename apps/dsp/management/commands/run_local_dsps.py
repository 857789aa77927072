"""``manage.py run_local_dsps``: the local DSP servers the demo platforms point at (``make run``)."""
from django.core.management.base import BaseCommand

from apps.dsp import localdsp


class Command(BaseCommand):
    help = "Serve local DSPs speaking The Trade Desk, Meta Audience Network, DV360, Amazon and OpenRTB formats."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8090)
        parser.add_argument("--meta-app-secret", default=localdsp.DEMO_META_APP_SECRET)

    def handle(self, *args, host, port, meta_app_secret, **options):
        localdsp.main(["--host", host, "--port", str(port), "--meta-app-secret", meta_app_secret])
