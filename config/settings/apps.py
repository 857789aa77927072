"""Per-app settings. Each app that needs knobs adds a section here, read through ``config.env``."""
from config import env  # noqa: F401

# --- suppression ---------------------------------------------------------------------------------
# Region (ISO 3166 alpha-2, e.g. "US") assumed for phone numbers written without a country code;
# empty = such numbers are refused with a 400 asking for the +<country code> form.
SUPPRESSION_DEFAULT_PHONE_REGION = env.env_str("SUPPRESSION_DEFAULT_PHONE_REGION", "")
# Admin CSV imports up to this many rows run inside the upload request; larger ones run as a Celery
# task while the page polls its progress.
SUPPRESSION_IMPORT_INLINE_MAX_ROWS = env.env_int("SUPPRESSION_IMPORT_INLINE_MAX_ROWS", 2000)
SUPPRESSION_IMPORT_CHUNK_SIZE = env.env_int("SUPPRESSION_IMPORT_CHUNK_SIZE", 1000)
SUPPRESSION_IMPORT_MAX_BYTES = env.env_int("SUPPRESSION_IMPORT_MAX_BYTES", 20 * 1024 * 1024)
