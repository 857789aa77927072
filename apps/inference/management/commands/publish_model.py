"""``manage.py publish_model <path.npz>``: validate a CoLaNet weights file, copy it atomically into
the model directory as ``colanet-<version>.npz`` and announce the version on ``models:published``
so every bid process hot-reloads it (processes that miss the message pick it up by polling)."""
from django.core.management.base import BaseCommand, CommandError
from redis.exceptions import RedisError

from apps.inference.model import ModelFileError
from apps.inference.services import model_publish


class Command(BaseCommand):
    help = "Publish a CoLaNet .npz weights file to the model directory and announce it to the bidders."

    def add_arguments(self, parser):
        parser.add_argument("path", help="the .npz file (arrays W1, b1, theta, W2, b2, version)")
        parser.add_argument("--model-dir", help="target directory (default: CAMPAIGN_EXPRESS__NPU__MODEL_DIR or var/models)")
        parser.add_argument("--no-announce", action="store_true",
                            help="copy only; running processes pick the file up by polling the directory")

    def handle(self, *args, **options):
        try:
            published = model_publish(source=options["path"], model_dir=options["model_dir"],
                                      announce=not options["no_announce"])
        except ModelFileError as exc:
            raise CommandError(f"not published: {exc}") from exc
        except RedisError as exc:
            raise CommandError(
                f"the file was copied but the announcement on models:published failed ({exc}); "
                f"running processes will still load it by polling the model directory"
            ) from exc
        announced = ("not announced" if published.receivers is None
                     else f"announced to {published.receivers} subscriber(s)")
        self.stdout.write(self.style.SUCCESS(
            f"Published model {published.version} -> {published.path} (sha256 {published.sha256[:12]}), {announced}."
        ))
