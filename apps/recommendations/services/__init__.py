"""Writes of the recommendations slice: the catalogue (one item, bulk imports) and the model builds."""
from .builds import catalog_rows, recommendations_builds_reap, recommendations_rebuild, trending_refresh
from .catalog import (
    CSV_COLUMNS,
    catalog_import_create,
    catalog_import_refused_csv,
    catalog_import_run,
    catalog_item_put,
    catalog_items_set_available,
    require_catalog_writer,
)

__all__ = [
    "CSV_COLUMNS", "catalog_import_create", "catalog_import_refused_csv", "catalog_import_run", "catalog_item_put",
    "catalog_items_set_available", "catalog_rows", "recommendations_builds_reap", "recommendations_rebuild", "require_catalog_writer",
    "trending_refresh",
]
