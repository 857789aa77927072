"""Meta Audience Network, after Prebid Server's ``adapters/audienceNetwork``.

* Apps only (a site request is ineligible); ``user.buyeruid`` is required and also sent as
  ``X-Fb-Pool-Routing-Token``.
* One request per impression, with ``request.id = imp.id``; ``imp.tagid = {publisher_id}_{placement_id}``
  and ``app.publisher.id = publisher_id`` (``params``); banners only at heights 50 or 250, ``w = -1``.
* Auth in the body: ``ext = {"platformid": params.platform_id,
  "authentication_id": hex(HMAC-SHA256(credentials.app_secret, request.id))}``.
* A request that timed out is reported with ``GET {params.timeout_notice_url or
  https://www.facebook.com/audiencenetwork/nurl/}?partner=&app=&auction=&ortb_loss_code=2``.
* The answer's ``adm`` is JSON carrying ``bid_id``, which becomes ``adid`` and ``crid``; a non-200
  answer's reason is in the ``x-fb-an-errors`` header.
"""
from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlencode

import orjson

from apps.dsp.adapters.base import (
    JSON_HEADERS,
    Adapter,
    Ineligible,
    InvalidAnswer,
    OutRequest,
    Parsed,
    PlatformConf,
    dumps,
    parse_openrtb,
)

BANNER_HEIGHTS = (50, 250)
TIMEOUT_NOTICE_URL = "https://www.facebook.com/audiencenetwork/nurl/"


def authentication_id(app_secret: str, request_id: str) -> str:
    return hmac.new(app_secret.encode(), request_id.encode(), hashlib.sha256).hexdigest()


class MetaAdapter(Adapter):
    kind = "meta"

    def make_requests(self, original: dict, platform: PlatformConf, tmax_ms: int) -> list[OutRequest]:
        if original.get("site") is not None or not isinstance(original.get("app"), dict):
            raise Ineligible("site")
        user = original.get("user")
        buyeruid = user.get("buyeruid") if isinstance(user, dict) else None
        if not buyeruid:
            raise Ineligible("buyeruid")
        params = platform.params
        publisher_id = str(params.get("publisher_id", ""))
        placement_id = str(params.get("placement_id", ""))
        secret = str((platform.credentials or {}).get("app_secret", ""))
        headers = {**JSON_HEADERS, "x-fb-pool-routing-token": str(buyeruid)}
        requests = []
        for imp in original.get("imp", ()):
            imp = self._imp(imp, publisher_id, placement_id)
            if imp is None:
                continue
            out = dict(original)
            out["id"] = str(imp["id"])
            out["imp"] = [imp]
            out["tmax"] = tmax_ms
            out["app"] = {**original["app"], "publisher": {"id": publisher_id}}
            out["ext"] = {"platformid": str(params.get("platform_id", "")),
                          "authentication_id": authentication_id(secret, out["id"])}
            requests.append(OutRequest(platform.endpoint_url, dumps(out), headers, (str(imp["id"]),)))
        if not requests:
            raise Ineligible("format")
        return requests

    @staticmethod
    def _imp(imp: dict, publisher_id: str, placement_id: str) -> dict | None:
        imp = {k: v for k, v in imp.items() if k != "ext"}
        imp["tagid"] = f"{publisher_id}_{placement_id}"
        banner = imp.get("banner")
        if isinstance(banner, dict) and imp.get("video") is None and imp.get("native") is None:
            height = banner.get("h")
            if height is None:
                height = next((f.get("h") for f in banner.get("format") or () if f.get("h") in BANNER_HEIGHTS), None)
            if height not in BANNER_HEIGHTS:
                return None
            imp["banner"] = {k: v for k, v in banner.items() if k != "format"} | {"w": -1, "h": height}
        return imp

    def parse(self, request: OutRequest, status: int, headers, body: bytes) -> Parsed:
        if status not in (200, 204):
            message = headers.get("x-fb-an-errors", "") if headers is not None else ""
            raise InvalidAnswer(f"http_{status}", f"platform answered HTTP {status}: {message}".rstrip(": "))
        parsed = parse_openrtb(status, body)
        for bid in parsed.bids:
            adm = bid.get("adm")
            if not isinstance(adm, str) or not adm:
                raise InvalidAnswer("adm", f"bid {bid.get('id')!r} has no adm")
            try:
                markup = orjson.loads(adm)
            except orjson.JSONDecodeError:
                raise InvalidAnswer("adm", f"bid {bid.get('id')!r}: adm is not JSON") from None
            bid_id = markup.get("bid_id") if isinstance(markup, dict) else None
            if not bid_id:
                raise InvalidAnswer("adm", f"bid {bid.get('id')!r} has no bid_id in adm")
            bid["adid"] = bid["crid"] = str(bid_id)
        return parsed

    def timeout_notice(self, request: OutRequest, platform: PlatformConf) -> str | None:
        try:
            body = orjson.loads(request.body)
            app_publisher = body["app"]["publisher"]["id"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return None
        base = str(platform.params.get("timeout_notice_url") or TIMEOUT_NOTICE_URL)
        query = urlencode({"partner": platform.params.get("platform_id", ""), "app": app_publisher,
                           "auction": body.get("id", ""), "ortb_loss_code": 2})
        return f"{base}{'&' if '?' in base else '?'}{query}"
