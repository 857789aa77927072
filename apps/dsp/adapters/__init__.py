"""The adapter per platform kind: adding a kind is a module and a line in ``ADAPTERS``."""
from __future__ import annotations

from apps.dsp.adapters.base import Adapter, Ineligible, InvalidAnswer, OutRequest, Parsed, PlatformConf
from apps.dsp.adapters.meta import MetaAdapter
from apps.dsp.adapters.openrtb import AmazonAdapter, Dv360Adapter, OpenRtbAdapter
from apps.dsp.adapters.ttd import TtdAdapter

ADAPTERS: dict[str, Adapter] = {
    adapter.kind: adapter
    for adapter in (TtdAdapter(), MetaAdapter(), Dv360Adapter(), AmazonAdapter(), OpenRtbAdapter())
}

__all__ = ["ADAPTERS", "Adapter", "Ineligible", "InvalidAnswer", "OutRequest", "Parsed", "PlatformConf"]
