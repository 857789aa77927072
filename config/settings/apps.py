"""Per-app settings. Each app that needs knobs adds a section here, read through ``config.env``."""
from config import env  # noqa: F401
