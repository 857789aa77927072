"""A module whose import fails from the inside (a bug in it), which must not be mistaken for
"the bidding slice has no snapshot refresh yet"."""
import apps.campaigns.this_module_does_not_exist  # noqa: F401


def offer_snapshot_refresh() -> None:
    raise AssertionError("never reached")
