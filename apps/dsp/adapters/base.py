"""What an adapter is (after Prebid Server's ``adapters.Bidder``): it builds the requests for one
platform from the exchange's request, and parses that platform's answer into bids. It does no I/O;
the exchange (``apps.dsp.exchange``) owns concurrency, deadlines, validation and accounting.

An adapter never raises for a platform's answer: ``parse`` raises ``InvalidAnswer`` with a short
reason, which the exchange counts as that platform's ``error`` outcome. ``Ineligible`` from
``make_requests`` means the request is not one this platform can take (Meta and a site request).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import orjson

JSON_HEADERS = {
    "content-type": "application/json;charset=utf-8",
    "accept": "application/json",
    "x-openrtb-version": "2.6",
}


@dataclasses.dataclass(frozen=True, slots=True)
class PlatformConf:
    """One platform as the bid workers know it (from the Redis snapshot, ``apps.dsp.platforms``)."""

    id: int
    name: str
    kind: str
    endpoint_url: str
    enabled: bool = True
    timeout_ms: int = 200
    qps_cap: int = 0
    hourly_budget: float = 0.0
    bid_adjustment: float = 1.0
    gzip: bool = False
    currency: str = "USD"
    params: dict = dataclasses.field(default_factory=dict)
    credentials: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(slots=True)
class OutRequest:
    url: str
    body: bytes
    headers: dict[str, str]
    imp_ids: tuple[str, ...]


@dataclasses.dataclass(slots=True)
class Parsed:
    """A platform's answer: raw bid objects (dicts) and the currency they are in. No bids = no bid."""

    bids: list[dict]
    currency: str = "USD"
    nbr: int | None = None


class Ineligible(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class InvalidAnswer(Exception):
    """A platform's answer we cannot use. ``reason`` is a short label (``http_500``, ``invalid_json``,
    ``mtype``...), ``detail`` says what was wrong."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(detail or reason)
        self.reason = reason
        self.detail = detail or reason


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def parse_openrtb(status: int, body: bytes) -> Parsed:
    """The shared status and body handling (Prebid Server's ``adapters/response.go`` plus §2.4 of the
    spec): 204, an empty body or a ``nbr`` without ``seatbid`` is a no-bid; any other non-200 an error."""
    if status == 204:
        return Parsed([])
    if status != 200:
        raise InvalidAnswer(f"http_{status}", f"platform answered HTTP {status}")
    if not body or body.isspace():
        return Parsed([])
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidAnswer("invalid_json", f"answer is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidAnswer("invalid_json", "answer is not a JSON object")
    seatbids = data.get("seatbid") or []
    nbr = data.get("nbr")
    if not isinstance(seatbids, list):
        raise InvalidAnswer("invalid_response", "seatbid is not an array")
    bids: list[dict] = []
    for seatbid in seatbids:
        if not isinstance(seatbid, dict) or not isinstance(seatbid.get("bid", []), list):
            raise InvalidAnswer("invalid_response", "seatbid entry is not an object with a bid array")
        for bid in seatbid.get("bid") or ():
            if not isinstance(bid, dict):
                raise InvalidAnswer("invalid_response", "bid is not an object")
            bids.append(bid)
    cur = data.get("cur") or "USD"
    if not isinstance(cur, str):
        raise InvalidAnswer("invalid_response", "cur is not a string")
    return Parsed(bids, cur, nbr if isinstance(nbr, int) else None)


def with_tmax(original: dict, tmax_ms: int) -> dict:
    out = dict(original)
    out["tmax"] = tmax_ms
    return out


def bearer_headers(platform: PlatformConf) -> dict[str, str]:
    headers = dict(JSON_HEADERS)
    token = platform.credentials.get("bearer_token") if platform.credentials else None
    if token:
        headers["authorization"] = f"Bearer {token}"
    return headers


class Adapter:
    """Generic OpenRTB 2.6: the original request with our ``tmax``, one call, the shared parsing."""

    kind = "openrtb"

    def make_requests(self, original: dict, platform: PlatformConf, tmax_ms: int) -> list[OutRequest]:
        out = self.prepare(with_tmax(original, tmax_ms), platform)
        imp_ids = tuple(str(imp.get("id")) for imp in out.get("imp", ()))
        return [OutRequest(platform.endpoint_url, dumps(out), bearer_headers(platform), imp_ids)]

    def prepare(self, out: dict, platform: PlatformConf) -> dict:
        """The adapter's own changes to the (copied) request."""
        return out

    def parse(self, request: OutRequest, status: int, headers, body: bytes) -> Parsed:
        return parse_openrtb(status, body)

    def timeout_notice(self, request: OutRequest, platform: PlatformConf) -> str | None:
        """The URL to GET when this request timed out (Prebid Server's ``TimeoutBidder``), or None."""
        return None
