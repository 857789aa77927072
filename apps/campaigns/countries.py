"""Moved to :mod:`apps.core.countries`, the one owner of country codes (campaign targeting and the bid
path both need it). This re-export only keeps ``apps.bidding``'s imports working until that slice
imports ``apps.core.countries`` itself; nothing else may import it."""
from apps.core.countries import ALPHA2_TO_ALPHA3, ALPHA3, normalise_country

__all__ = ["ALPHA2_TO_ALPHA3", "ALPHA3", "normalise_country"]
