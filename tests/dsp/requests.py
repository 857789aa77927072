"""Bid requests for the DSP tests (after the IAB 2.6 examples and Prebid Server's fixtures)."""
from __future__ import annotations

import orjson

from apps.bidding import openrtb


def site_request(rid: str = "req-1", *, tmax: int = 2000, floor: float = 0.5, imps: int = 1, **extra) -> dict:
    body = {
        "id": rid, "tmax": tmax, "cur": ["USD"],
        "imp": [{"id": str(i + 1), "banner": {"format": [{"w": 300, "h": 250}]}, "bidfloor": floor, "bidfloorcur": "USD",
                 "ext": {"prebid": {"bidder": {}}}} for i in range(imps)],
        "site": {"page": "https://ex.com/", "publisher": {"id": "pub-1"}},
        "device": {"ua": "Mozilla/5.0", "ip": "1.2.3.4"},
        "user": {"buyeruid": "abc"},
        "source": {"schain": {"complete": 1, "ver": "1.0", "nodes": [{"asi": "ex.com", "sid": "1", "hp": 1}]}},
        "regs": {"ext": {"gdpr": 0}},
    }
    body.update(extra)
    return body


def app_request(rid: str = "req-app", **kw) -> dict:
    body = site_request(rid, **kw)
    del body["site"]
    body["app"] = {"id": "app-abc", "bundle": "com.prebid", "publisher": {"id": "pub-app"}}
    return body


def decoded(body: dict) -> openrtb.BidRequest:
    return openrtb.decode_request(orjson.dumps(body))
