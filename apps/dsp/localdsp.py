"""Local DSP servers: one process speaking the four platforms' formats, for ``make run``, the demo
data, the tests and ``bench/dsp_load.py``. Not a stub of our code: it is the other side of the wire,
answering as the vendors document (shared notes §1; Prebid Server's adapter test fixtures).

URL: ``/{behaviour}/{kind}/...?latency_ms=30&jitter_ms=10&price=1.5&cur=USD`` where ``kind`` is
``ttd`` (``/bid/ttd/bid/bidder/{supply_id}``), ``meta``, ``dv360``, ``amazon`` or ``openrtb`` and
``behaviour`` is one of

* ``bid`` — a bid per impression after the latency; ``gzip`` — the same, gzip-compressed;
* ``nobid`` — 204; ``nbr`` — 200 ``{"id", "nbr": 2}``; ``error`` — 500; ``invalid`` — 200 that is not JSON;
* ``late`` — a bid after ``late_ms`` (default 1000).

Meta requests are checked as Audience Network does: one imp, ``ext.platformid`` and
``ext.authentication_id`` = hex(HMAC-SHA256(app secret, request id)) (``--meta-app-secret``); a wrong
one is a 400 with the reason in ``x-fb-an-errors``. ``GET /stats`` gives the requests seen per kind and
behaviour, the last request of each kind (headers and JSON body) and the connections accepted.

    python -m apps.dsp.localdsp --port 8090        # or: manage.py run_local_dsps
"""
from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import hmac
import random
from urllib.parse import parse_qs

import orjson

DEFAULT_PRICES = {"ttd": 2.1, "meta": 1.4, "dv360": 1.9, "amazon": 1.7, "openrtb": 1.2}
DEMO_META_APP_SECRET = "demo-meta-app-secret"


class LocalDsp:
    def __init__(self, meta_app_secret: str = DEMO_META_APP_SECRET):
        self.meta_app_secret = meta_app_secret
        self.counts: dict[str, int] = {}
        self.last: dict[str, dict] = {}
        self.notices: list[dict] = []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        parts = [p for p in scope["path"].split("/") if p]
        if scope["path"] == "/stats":
            await self._send(send, 200, orjson.dumps({"requests": self.counts, "last": self.last, "notices": self.notices}))
            return
        if scope["method"] == "GET" and len(parts) == 3 and parts[0] == "notice":
            # the nurl / burl / lurl the answers carry point here: /notice/{kind}/{win|bill|loss}
            query = {k: v[0] for k, v in parse_qs(scope.get("query_string", b"").decode(), keep_blank_values=True).items()}
            self.notices.append({"kind": parts[1], "notice": parts[2], "query": query})
            await self._send(send, 200, b"{}")
            return
        if len(parts) < 2 or parts[1] not in DEFAULT_PRICES:
            await self._send(send, 404, b'{"error":"unknown path"}')
            return
        behaviour, kind = parts[0], parts[1]
        query = {k: v[0] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
        headers = {k.decode().lower(): v.decode("latin-1") for k, v in scope["headers"]}
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        tag = f"{kind}/{behaviour}"
        self.counts[tag] = self.counts.get(tag, 0) + 1
        if headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError:
            await self._send(send, 400, b'{"error":"request is not JSON"}')
            return
        self.last[kind] = {"headers": headers, "body": request, "path": scope["path"]}
        delay = float(query.get("latency_ms", 0)) + random.uniform(0, float(query.get("jitter_ms", 0)))
        if behaviour == "late":
            delay = float(query.get("late_ms", 1000))
        if delay > 0:
            await asyncio.sleep(delay / 1000)
        if kind == "meta":
            problem = self._meta_problem(request, headers)
            if problem:
                await self._send(send, 400, b"", [(b"x-fb-an-errors", problem.encode())])
                return
        if behaviour == "nobid":
            await send({"type": "http.response.start", "status": 204, "headers": [(b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        if behaviour == "nbr":
            await self._send(send, 200, orjson.dumps({"id": request.get("id"), "nbr": 2}))
            return
        if behaviour == "error":
            await self._send(send, 500, b'{"error":"internal"}')
            return
        if behaviour == "invalid":
            await self._send(send, 200, b"<html>not json</html>")
            return
        price = float(query.get("price", DEFAULT_PRICES[kind]))
        host, port = scope.get("server") or ("127.0.0.1", 80)
        answer = orjson.dumps(self.answer(kind, request, price, query.get("cur"), base=f"http://{host}:{port}"))
        if behaviour == "gzip":
            await self._send(send, 200, gzip.compress(answer), [(b"content-encoding", b"gzip")])
            return
        await self._send(send, 200, answer)

    def _meta_problem(self, request: dict, headers: dict) -> str:
        ext = request.get("ext") or {}
        expected = hmac.new(self.meta_app_secret.encode(), str(request.get("id")).encode(), hashlib.sha256).hexdigest()
        if len(request.get("imp") or ()) != 1:
            return "exactly one imp per request"
        if not ext.get("platformid"):
            return "missing platformid"
        if not hmac.compare_digest(str(ext.get("authentication_id", "")), expected):
            return "authentication_id does not match"
        if not headers.get("x-fb-pool-routing-token"):
            return "missing X-Fb-Pool-Routing-Token"
        return ""

    @staticmethod
    def answer(kind: str, request: dict, price: float, cur: str | None, base: str = "http://127.0.0.1") -> dict:
        rid = request.get("id", "")
        cur = cur or (request.get("cur") or ["USD"])[0]
        bids = []
        for n, imp in enumerate(request.get("imp") or ()):
            impid = imp.get("id")
            bid_id = f"{kind}-{rid}-{impid}"
            bid = {"id": bid_id, "impid": impid, "price": price, "crid": f"{kind}-creative-{n}",
                   "adomain": [f"{kind}.example.com"], "w": (imp.get("banner") or {}).get("w"),
                   "h": (imp.get("banner") or {}).get("h"),
                   "adm": f'<div data-dsp="{kind}" data-price="${{AUCTION_PRICE}}" data-auction="${{AUCTION_ID}}"></div>',
                   "nurl": f"{base}/notice/{kind}/win?auction=${{AUCTION_ID}}&bid=${{AUCTION_BID_ID}}&price=${{AUCTION_PRICE}}",
                   "burl": f"{base}/notice/{kind}/bill?auction=${{AUCTION_ID}}&price=${{AUCTION_PRICE}}&cur=${{AUCTION_CURRENCY}}",
                   "lurl": f"{base}/notice/{kind}/loss?auction=${{AUCTION_ID}}&loss=${{AUCTION_LOSS}}&price=${{AUCTION_PRICE}}"}
            if kind == "ttd":
                bid["mtype"] = 2 if imp.get("video") else 4 if imp.get("native") else 1
            elif kind == "meta":
                bid["adm"] = orjson.dumps({"type": "ID", "bid_id": bid_id, "placement_id": imp.get("tagid")}).decode()
                bid.pop("crid")
            elif kind == "dv360":
                billing = (imp.get("ext") or {}).get("billing_id") or []
                if billing:
                    bid["ext"] = {"billing_id": billing[0]}
            bids.append(bid)
        return {"id": rid, "bidid": f"{kind}-{rid}", "cur": cur, "seatbid": [{"seat": f"{kind}-seat", "bid": bids}]}

    @staticmethod
    async def _send(send, status: int, body: bytes, headers=()) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                *headers]})
        await send({"type": "http.response.body", "body": body})


def serve(host: str, port: int, meta_app_secret: str = DEMO_META_APP_SECRET) -> None:
    import uvicorn

    uvicorn.run(LocalDsp(meta_app_secret), host=host, port=port, log_level="warning", access_log=False,
                http="httptools", loop="uvloop", lifespan="on", backlog=4096)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Local DSP servers (ttd, meta, dv360, amazon, openrtb).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--meta-app-secret", default=DEMO_META_APP_SECRET)
    args = parser.parse_args(argv)
    print(f"local DSPs on http://{args.host}:{args.port}/{{bid|nobid|nbr|error|invalid|gzip|late}}/"
          f"{{ttd|meta|dv360|amazon|openrtb}}", flush=True)
    serve(args.host, args.port, args.meta_app_secret)


if __name__ == "__main__":
    main()
