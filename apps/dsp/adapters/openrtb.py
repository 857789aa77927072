"""Generic OpenRTB 2.6 bidders: ``openrtb`` (any bidder), ``amazon`` and ``dv360``.

Neither Amazon DSP nor Google publishes a Prebid Server adapter (shared notes §1), so both are
plain OpenRTB 2.6 with the bidder's documented extensions: Google's ``imp.ext.billing_id`` (the bid
should echo one in ``bid.ext.billing_id``; Google's encrypted price is out of scope).
"""
from __future__ import annotations

from apps.dsp.adapters.base import Adapter, InvalidAnswer, OutRequest, Parsed, PlatformConf, parse_openrtb


class OpenRtbAdapter(Adapter):
    kind = "openrtb"


class AmazonAdapter(Adapter):
    kind = "amazon"


class Dv360Adapter(Adapter):
    kind = "dv360"

    def prepare(self, out: dict, platform: PlatformConf) -> dict:
        billing_ids = [str(b) for b in (platform.params.get("billing_ids") or [])]
        if not billing_ids:
            return out
        imps = []
        for imp in out.get("imp", ()):
            imp = dict(imp)
            ext = dict(imp.get("ext") or {})
            ext["billing_id"] = billing_ids
            imp["ext"] = ext
            imps.append(imp)
        out["imp"] = imps
        return out

    def parse(self, request: OutRequest, status: int, headers, body: bytes) -> Parsed:
        parsed = parse_openrtb(status, body)
        for bid in parsed.bids:
            ext = bid.get("ext")
            if ext is not None and not isinstance(ext, dict):
                raise InvalidAnswer("invalid_response", "bid.ext is not an object")
        return parsed
