"""The Trade Desk, after Prebid Server's ``adapters/thetradedesk``.

* Endpoint ``POST .../bid/bidder/{supply_id}``: the platform's endpoint URL may hold ``{supply_id}``,
  filled from ``params.supply_source_id``.
* ``banner.format[0]`` copied into ``banner.w``/``h``; ``site|app.publisher.id`` = ``params.publisher_id``.
* The bid's type comes from ``mtype`` (1 banner, 2 video, 3 audio, 4 native); anything else is an
  invalid answer.
* Like the PBS adapter, ``${AUCTION_PRICE}`` in ``nurl``, ``adm`` and ``burl`` is replaced by the bid
  price when the answer is parsed.
"""
from __future__ import annotations

from apps.dsp.adapters.base import (
    JSON_HEADERS,
    Adapter,
    InvalidAnswer,
    OutRequest,
    Parsed,
    PlatformConf,
    dumps,
    parse_openrtb,
    with_tmax,
)
from apps.dsp.macros import format_price

MTYPES = {1: "banner", 2: "video", 3: "audio", 4: "native"}


class TtdAdapter(Adapter):
    kind = "ttd"

    def make_requests(self, original: dict, platform: PlatformConf, tmax_ms: int) -> list[OutRequest]:
        out = with_tmax(original, tmax_ms)
        imps = []
        for imp in out.get("imp", ()):
            banner = imp.get("banner")
            if isinstance(banner, dict) and banner.get("format"):
                first = banner["format"][0]
                imp = {**imp, "banner": {**banner, "w": first.get("w"), "h": first.get("h")}}
            imps.append(imp)
        out["imp"] = imps
        publisher_id = platform.params.get("publisher_id")
        for key in ("site", "app"):
            inventory = out.get(key)
            if isinstance(inventory, dict):
                publisher = dict(inventory.get("publisher") or {})
                if publisher_id:
                    publisher["id"] = str(publisher_id)
                out[key] = {**inventory, "publisher": publisher}
                break
        url = platform.endpoint_url.replace("{supply_id}", str(platform.params.get("supply_source_id", "")))
        imp_ids = tuple(str(imp.get("id")) for imp in imps)
        return [OutRequest(url, dumps(out), dict(JSON_HEADERS), imp_ids)]

    def parse(self, request: OutRequest, status: int, headers, body: bytes) -> Parsed:
        parsed = parse_openrtb(status, body)
        for bid in parsed.bids:
            mtype = bid.get("mtype")
            if mtype not in MTYPES:
                raise InvalidAnswer("mtype", f"unsupported mtype: {mtype!r}")
            price = bid.get("price")
            if isinstance(price, (int, float)) and not isinstance(price, bool):
                text = format_price(float(price))
                for field in ("nurl", "adm", "burl"):
                    value = bid.get(field)
                    if isinstance(value, str) and "${AUCTION_PRICE}" in value:
                        bid[field] = value.replace("${AUCTION_PRICE}", text)
        return parsed
