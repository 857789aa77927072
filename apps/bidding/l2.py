"""The bid path's L2 read: one pipelined Redis connection speaking RESP through hiredis' C parser.

An L1 miss needs ``HGETALL profile:{id}`` and ``ZRANGEBYSCORE freq:{id} <24 h ago> +inf WITHSCORES``
in one round trip. Through redis-py's asyncio client that costs ~160 µs of worker CPU and several
trips through the event loop's ready queue (connection pool, write, drain, read), each one behind
every request that arrived meanwhile: under load the L2 wait reached tens of milliseconds at p99
while Redis itself answered in 0.1 ms. Here a request is one ``transport.write`` and one future
resolved straight from ``data_received``; replies come back in order, so concurrent requests share
the connection (pipelining) and a cancelled request (deadline) simply has its replies discarded —
the connection is never left mid-reply.

Connection failures raise ``ConnectionError`` at once; the caller falls back to the default profile.

On a Redis Cluster (``redis+cluster://``) ``ClusterL2Client`` keeps one such connection per master,
reads the slot map with ``CLUSTER SLOTS`` and sends each key to the master of its slot. The
frequency key is hash-tagged by the profile key's name there (``apps.bidding.cache.freq_key``), so
both reads go to one master in one request, as on a single Redis; for an id whose braces break the
tag they go to two masters at once and are awaited together: an L1 miss is one round trip either
way. A ``MOVED``/``ASK`` reply (resharding, failover) marks the map stale — that request falls back
like any L2 failure, the next one reads the new map.
"""
from __future__ import annotations

import asyncio
from collections import deque
from urllib.parse import quote, unquote, urlparse

import hiredis
from redis.crc import key_slot

from apps.bidding.cache import freq_key
from apps.core.profiles import profile_key
from apps.core.redis import cluster_nodes


class L2Unavailable(ConnectionError):
    pass


def _profile_command(user_id: str) -> bytes:
    return _command(b"HGETALL", profile_key(user_id).encode())


def _freq_command(user_id: str, since: float, *, cluster: bool = False) -> bytes:
    return _command(b"ZRANGEBYSCORE", freq_key(user_id, cluster=cluster).encode(), repr(since).encode(), b"+inf",
                    b"WITHSCORES")


def _profile_and_freq(profile, freq) -> tuple[dict, list[tuple[bytes, float]]]:
    for reply in (profile, freq):
        if isinstance(reply, hiredis.ReplyError):
            raise L2Unavailable(f"Redis error: {reply}")
    # HGETALL and WITHSCORES replies alternate name and value: the halves are equal by construction.
    return (dict(zip(profile[::2], profile[1::2], strict=False)),
            [(m, float(s)) for m, s in zip(freq[::2], freq[1::2], strict=False)])


def _command(*parts: bytes) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


class _Protocol(asyncio.Protocol):
    def __init__(self, on_lost):
        self.reader = hiredis.Reader()
        self.pending: deque[tuple[asyncio.Future, int, list]] = deque()
        self.transport: asyncio.Transport | None = None
        self.on_lost = on_lost
        self.alive = False

    def connection_made(self, transport):
        self.transport = transport
        self.alive = True

    def request(self, payload: bytes, replies: int) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self.pending.append((future, replies, []))
        self.transport.write(payload)
        return future

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        reader.feed(data)
        pending = self.pending
        while True:
            reply = reader.gets()
            if reply is False:
                return
            future, wanted, collected = pending[0]
            collected.append(reply)
            if len(collected) == wanted:
                pending.popleft()
                if not future.done():  # a caller past its deadline cancelled it: drop the replies
                    future.set_result(collected)

    def connection_lost(self, exc) -> None:
        self.alive = False
        error = L2Unavailable(f"Redis connection lost: {exc}" if exc else "Redis connection closed")
        while self.pending:
            future, _, _ = self.pending.popleft()
            if not future.done():
                future.set_exception(error)
        self.on_lost(self)


class L2Client:
    """Lazily connected, reconnecting on the next call after a failure (``redis://[[user]:pass@]host:port/db``)."""

    def __init__(self, url: str, *, connect_timeout: float = 0.25):
        parsed = urlparse(url)
        if parsed.scheme != "redis":
            raise ValueError(f"L2Client speaks plain redis:// only, got {parsed.scheme}://")
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or 6379
        self.db = int(parsed.path.lstrip("/") or 0)
        self.username = unquote(parsed.username) if parsed.username else None
        self.password = unquote(parsed.password) if parsed.password else None
        self.connect_timeout = connect_timeout
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Future | None = None

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        try:
            _, protocol = await asyncio.wait_for(
                loop.create_connection(lambda: _Protocol(self._lost), self.host, self.port), self.connect_timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            raise L2Unavailable(f"cannot connect to Redis at {self.host}:{self.port}: {exc}") from None
        setup = []
        if self.password is not None:
            auth = [b"AUTH"] + ([self.username.encode()] if self.username else []) + [self.password.encode()]
            setup.append(_command(*auth))
        if self.db:
            setup.append(_command(b"SELECT", str(self.db).encode()))
        if setup:
            replies = await asyncio.wait_for(protocol.request(b"".join(setup), len(setup)), self.connect_timeout)
            for reply in replies:
                if isinstance(reply, hiredis.ReplyError):
                    protocol.transport.close()
                    raise L2Unavailable(f"Redis refused the connection set-up: {reply}")
        return protocol

    def _lost(self, protocol: _Protocol) -> None:
        if self._protocol is protocol:
            self._protocol = None

    async def _ready(self) -> _Protocol:
        protocol = self._protocol
        if protocol is not None and protocol.alive:
            return protocol
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._connect())
        connecting = self._connecting
        try:
            protocol = await asyncio.shield(connecting)
        finally:
            if self._connecting is connecting and connecting.done():
                self._connecting = None
        self._protocol = protocol
        return protocol

    async def request(self, payload: bytes, replies: int) -> list:
        return await (await self._ready()).request(payload, replies)

    #: ``profile_and_freq`` takes a ``timeout`` (``apps.bidding.cache.load_from_redis`` passes it on)
    bounds_reads = True

    async def profile_and_freq(self, user_id: str, since: float, *,
                               timeout: float | None = None) -> tuple[dict, list[tuple[bytes, float]]]:
        """``HGETALL profile:{id}`` and the won impressions since ``since`` (unix seconds), in one round trip.

        ``timeout`` (seconds) bounds it: ``asyncio.TimeoutError`` past it, the late replies discarded as
        for a cancelled call. Connected, that is one timer on the reply's future — an ``asyncio.timeout``
        block around the call cost ~3 µs more per read (its context manager, two coroutines, the task's
        cancel/uncancel bookkeeping); while connecting, the connection runs inside one."""
        payload = _profile_command(user_id) + _freq_command(user_id, since)
        protocol = self._protocol
        if timeout is None:
            protocol = await self._ready()
            profile, freq = await protocol.request(payload, 2)
            return _profile_and_freq(profile, freq)
        loop = asyncio.get_running_loop()
        if protocol is None or not protocol.alive:
            deadline = loop.time() + timeout
            async with asyncio.timeout_at(deadline):
                protocol = await self._ready()
            timeout = deadline - loop.time()
        reply = protocol.request(payload, 2)
        timer = loop.call_later(timeout, _time_out, reply)
        try:
            profile, freq = await reply
        finally:
            timer.cancel()
        return _profile_and_freq(profile, freq)

    async def aclose(self) -> None:
        protocol = self._protocol
        self._protocol = None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()


def _time_out(reply: asyncio.Future) -> None:
    if not reply.done():  # data_received skips a done future's replies, as a cancelled one's
        reply.set_exception(asyncio.TimeoutError())


def _consume(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()


class ClusterL2Client:
    """``L2Client`` for a Redis Cluster: one pipelined connection per master, keys routed by slot."""

    def __init__(self, url: str, *, connect_timeout: float = 0.25):
        nodes, options = cluster_nodes(url)
        if options.get("ssl"):
            raise ValueError("ClusterL2Client speaks plain TCP only (rediss+cluster:// goes through redis-py)")
        user, password = options.get("username"), options.get("password")
        self._auth = (f"{quote(user or '')}:{quote(password)}@" if password is not None else "")
        self.startup = nodes
        self.connect_timeout = connect_timeout
        self._nodes: dict[tuple[str, int], L2Client] = {}
        self._slots: list[tuple[str, int]] | None = None
        self._loading: asyncio.Future | None = None

    def _node(self, address: tuple[str, int]) -> L2Client:
        node = self._nodes.get(address)
        if node is None:
            node = self._nodes[address] = L2Client(f"redis://{self._auth}{address[0]}:{address[1]}/0",
                                                   connect_timeout=self.connect_timeout)
        return node

    async def _load_slots(self) -> list[tuple[str, int]]:
        error: Exception | None = None
        for address in list(dict.fromkeys([*self._nodes, *self.startup])):
            try:
                (reply,) = await asyncio.wait_for(self._node(address).request(_command(b"CLUSTER", b"SLOTS"), 1),
                                                  self.connect_timeout)
            except (ConnectionError, asyncio.TimeoutError) as exc:
                error = exc
                continue
            if isinstance(reply, hiredis.ReplyError):
                error = L2Unavailable(f"CLUSTER SLOTS refused: {reply}")
                continue
            table: list[tuple[str, int]] = [("", 0)] * 16384
            for start, end, master, *_ in reply:
                host = master[0].decode() if isinstance(master[0], bytes) else master[0]
                for slot in range(int(start), int(end) + 1):
                    table[slot] = (host or address[0], int(master[1]))
            return table
        raise L2Unavailable(f"no cluster node answered CLUSTER SLOTS: {error}")

    async def _table(self) -> list[tuple[str, int]]:
        if self._slots is not None:
            return self._slots
        if self._loading is None:
            self._loading = asyncio.ensure_future(self._load_slots())
        loading = self._loading
        try:
            self._slots = await asyncio.shield(loading)
        finally:
            if self._loading is loading and loading.done():
                self._loading = None
        return self._slots

    async def warm(self) -> None:
        """Read the slot map and connect to every master now, not on the first L1 miss."""
        table = await self._table()
        for address in dict.fromkeys(table):
            if address[1]:
                await self._node(address)._ready()

    async def profile_and_freq(self, user_id: str, since: float) -> tuple[dict, list[tuple[bytes, float]]]:
        table = await self._table()
        profile_node = table[key_slot(profile_key(user_id).encode())]
        freq_command = _freq_command(user_id, since, cluster=True)
        try:
            first = await self._node(profile_node)._ready()
            # the frequency key is hash-tagged by the profile's name (freq_key): the same master
            if profile_node == (freq_node := table[key_slot(freq_key(user_id, cluster=True).encode())]):
                profile, freq = await first.request(_profile_command(user_id) + freq_command, 2)
            else:  # an id with braces: both written before either is awaited, one round trip
                second = await self._node(freq_node)._ready()
                profile_reply = first.request(_profile_command(user_id), 1)
                freq_reply = second.request(freq_command, 1)
                try:
                    (profile,) = await profile_reply
                finally:
                    if not freq_reply.done():
                        freq_reply.add_done_callback(_consume)  # never an unretrieved exception
                (freq,) = await freq_reply
        except ConnectionError:
            self._slots = None  # a master gone: a failover moves its slots
            raise
        for reply in (profile, freq):
            if isinstance(reply, hiredis.ReplyError) and str(reply).startswith(("MOVED", "ASK")):
                self._slots = None
        return _profile_and_freq(profile, freq)

    async def aclose(self) -> None:
        for node in self._nodes.values():
            await node.aclose()
        self._nodes.clear()
        self._slots = None
