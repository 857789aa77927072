"""``manage.py export_seed_model --out path.npz --seed N``: write the documented seeded CoLaNet
initialisation as a versioned weights file (for tests, benchmarks and a first publish)."""
from django.core.management.base import BaseCommand, CommandError

from apps.inference.model import DEFAULT_HIDDEN, ModelFileError
from apps.inference.services import model_export_seed


class Command(BaseCommand):
    help = "Write the seeded CoLaNet initialisation to an .npz file (publish it with publish_model)."

    def add_arguments(self, parser):
        parser.add_argument("--out", required=True, help="path of the .npz file to write")
        parser.add_argument("--seed", type=int, required=True, help="random seed of the initialisation")
        parser.add_argument("--model-version", help="model version stored in the file (default seed-<seed>)")
        parser.add_argument("--hidden", type=int, default=DEFAULT_HIDDEN, help=f"hidden units (default {DEFAULT_HIDDEN})")

    def handle(self, *args, **options):
        try:
            weights = model_export_seed(out=options["out"], seed=options["seed"], version=options["model_version"],
                                        hidden=options["hidden"])
        except (ModelFileError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(
            f"Wrote seeded model {weights.version} (seed {options['seed']}, {weights.hidden} hidden units) to {options['out']}."
        ))
