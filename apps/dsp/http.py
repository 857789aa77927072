"""Keep-alive HTTP pools for the fan-out, one per platform, behind one small interface so the client
library is a configuration choice (``DSP_HTTP_CLIENT``: ``aiohttp`` or ``httpx``).

Both count the TCP connections they open (``dsp_new_connections_total{platform}``): with keep-alive
working that stays near zero under steady load; a late platform (whose connection is dropped when
the deadline cancels its call) or a pool that is too small shows up there.

Why aiohttp by default: measured side by side on this box (bench/dsp_load.py --client, bench/README.md),
httpx's ``AsyncClient`` costs several times the CPU per call of aiohttp's ``ClientSession``.
"""
from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import Counter

NEW_CONNECTIONS = Counter("dsp_new_connections", "TCP connections opened to DSP platforms", ["platform"])


class Transport:
    name = "base"

    def __init__(self, platform: str, pool_size: int):
        self.platform = platform
        self.pool_size = pool_size
        self.new_connections = 0

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, Mapping[str, str], bytes]:
        raise NotImplementedError

    async def close(self) -> None:
        return None


class AiohttpTransport(Transport):
    name = "aiohttp"

    def __init__(self, platform: str, pool_size: int):
        self.platform = platform
        self.pool_size = pool_size
        self.new_connections = 0
        self._session = None
        self._counter = NEW_CONNECTIONS.labels(platform)
        self._urls: dict = {}

    def _open(self):
        import aiohttp

        async def on_created(_session, _ctx, _params) -> None:
            self.new_connections += 1
            self._counter.inc()

        trace = aiohttp.TraceConfig()
        trace.on_connection_create_end.append(on_created)
        connector = aiohttp.TCPConnector(limit=self.pool_size, limit_per_host=self.pool_size, keepalive_timeout=60,
                                         ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(connector=connector, trace_configs=[trace], auto_decompress=True,
                                              skip_auto_headers=("User-Agent",))
        return self._session

    async def post(self, url, body, headers):
        session = self._session or self._open()
        parsed = self._urls.get(url)
        if parsed is None:  # parsing the URL (and its query) costs more than the rest of building the call
            import yarl

            if len(self._urls) > 1024:
                self._urls.clear()
            parsed = self._urls[url] = yarl.URL(url)
        async with session.post(parsed, data=body, headers=headers, allow_redirects=False) as response:
            payload = await response.read()
            return response.status, response.headers, payload

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class HttpxTransport(Transport):
    name = "httpx"

    def __init__(self, platform: str, pool_size: int):
        self.platform = platform
        self.pool_size = pool_size
        self.new_connections = 0
        self._client = None
        self._counter = NEW_CONNECTIONS.labels(platform)

    def _open(self):
        import httpx

        limits = httpx.Limits(max_connections=self.pool_size, max_keepalive_connections=self.pool_size,
                              keepalive_expiry=60)
        self._client = httpx.AsyncClient(limits=limits, timeout=None, follow_redirects=False)
        return self._client

    async def _trace(self, event: str, _info) -> None:
        if event == "connection.connect_tcp.complete":
            self.new_connections += 1
            self._counter.inc()

    async def post(self, url, body, headers):
        client = self._client or self._open()
        response = await client.post(url, content=body, headers=headers, extensions={"trace": self._trace})
        return response.status_code, response.headers, response.content

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


TRANSPORTS: dict[str, type[Transport]] = {"aiohttp": AiohttpTransport, "httpx": HttpxTransport}
