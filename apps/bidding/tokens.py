"""Signed tokens carried by win notice (``nurl``) and click URLs.

A token is ``base64url(msgpack(payload)) "." base64url(HMAC-SHA256(secret, payload)[:16])``. The
secret is ``BID_WIN_SECRET``; without it nobody can forge a win notice (and so spend) or turn the
click URL into an open redirect. The payload names the bid, so the win handler needs no lookup.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from types import ModuleType

import msgspec

_KIND_WIN = 1
_KIND_CLICK = 2
_SIG_BYTES = 16
_enc = msgspec.msgpack.Encoder().encode
_dec = msgspec.msgpack.Decoder().decode


class BadToken(ValueError):
    pass


@dataclass(frozen=True)
class WinToken:
    bid_id: str
    request_id: str
    imp_id: str
    campaign_id: int
    offer_id: int
    user_id: str
    bid_price_micros: int  # our bid, CPM in micro-dollars
    issued_at: int  # unix seconds


@dataclass(frozen=True)
class ClickToken:
    bid_id: str
    campaign_id: int
    offer_id: int
    user_id: str
    landing_url: str
    issued_at: int


_URLSAFE = bytes.maketrans(b"+/", b"-_")
_b2a = binascii.b2a_base64


def _b64(raw: bytes) -> str:
    # base64.urlsafe_b64encode without its Python-level wrappers
    return binascii.b2a_base64(raw, newline=False).translate(_URLSAFE).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    pad = "=" * (-len(text) % 4)
    return base64.urlsafe_b64decode(text + pad)


_keyed: dict[bytes, tuple] = {}


def _keyed_hashes(secret: bytes) -> tuple:
    """The inner and outer SHA-256 states of HMAC (RFC 2104) after absorbing the padded key."""
    key = hashlib.sha256(secret).digest() if len(secret) > 64 else secret
    key = key.ljust(64, b"\0")
    inner = hashlib.sha256(bytes(k ^ 0x36 for k in key))
    outer = hashlib.sha256(bytes(k ^ 0x5C for k in key))
    _keyed[secret] = pair = (inner.copy, outer.copy)
    return pair


def _sign(secret: bytes, payload: bytes) -> bytes:
    # HMAC-SHA256 (the same bytes as hmac.new(secret, payload, sha256).digest()) from copies of the
    # keyed inner/outer hash states: ~0.7 µs against ~1.3 µs for copying an hmac.HMAC object and
    # ~1.8 µs for hmac.digest(), which redoes the key schedule every time.
    pair = _keyed.get(secret) or _keyed_hashes(secret)
    inner = pair[0]()
    inner.update(payload)
    outer = pair[1]()
    outer.update(inner.digest())
    return outer.digest()[:_SIG_BYTES]


def _pack(secret: bytes, fields: list) -> str:
    payload = _enc(fields)
    return f"{_b64(payload)}.{_b64(_sign(secret, payload))}"


def _unpack(secret: bytes, token: str) -> list:
    if not token or token.count(".") != 1 or len(token) > 4096:
        raise BadToken("malformed token")
    body, sig = token.split(".")
    try:
        payload = _unb64(body)
        signature = _unb64(sig)
    except (ValueError, TypeError):
        raise BadToken("malformed token") from None
    if not hmac.compare_digest(signature, _sign(secret, payload)):
        raise BadToken("bad signature")
    try:
        fields = _dec(payload)
    except msgspec.DecodeError:
        raise BadToken("malformed token") from None
    if not isinstance(fields, list) or not fields:
        raise BadToken("malformed token")
    return fields


_compiled: ModuleType | None
try:  # Signer's packing in one compiled call (scripts/build_ext.py); without it the Python below, same bytes
    import apps.bidding._tokens as _compiled
except ImportError:  # pragma: no cover - a checkout where scripts/build_ext.py has not run
    _compiled = None
# what the compiled packer refuses (a field that is not a str or a 64-bit int): the Python path packs it
_NOT_COMPILED = (TypeError, OverflowError, UnicodeEncodeError)


class Signer:
    """Win and click tokens for one secret, as the bid path issues them (one per process): the keyed
    HMAC states looked up once, the fields passed positionally (no ``WinToken``/``ClickToken`` to build)
    and each token's two base64 parts translated and decoded in one pass — or all of it in one call of
    the compiled packer (``apps.bidding._tokens``; ``compiled=False`` for the Python path). The same
    bytes as ``win_token``/``click_token``, so ``parse_win_token``/``parse_click_token`` verify them."""

    __slots__ = ("_inner", "_outer", "_fast")

    def __init__(self, secret: bytes, *, compiled: bool = True):
        self._inner, self._outer = _keyed.get(secret) or _keyed_hashes(secret)
        self._fast = _compiled.Packer(secret).pack if compiled and _compiled is not None else self._pack

    def _pack(self, fields: list) -> str:
        payload = _enc(fields)
        inner = self._inner()
        inner.update(payload)
        outer = self._outer()
        outer.update(inner.digest())
        # a 16-byte signature is 22 base64 characters and "==": the padding of both parts goes
        sig = _b2a(outer.digest()[:_SIG_BYTES], newline=False)[:22]
        return (_b2a(payload, newline=False).rstrip(b"=") + b"." + sig).translate(_URLSAFE).decode("ascii")

    def win(self, bid_id: str, request_id: str, imp_id: str, campaign_id: int, offer_id: int, user_id: str,
            bid_price_micros: int, issued_at: int) -> str:
        fields = [_KIND_WIN, bid_id, request_id, imp_id, campaign_id, offer_id, user_id, bid_price_micros, issued_at]
        try:
            return self._fast(fields)
        except _NOT_COMPILED:
            return self._pack(fields)

    def click(self, bid_id: str, campaign_id: int, offer_id: int, user_id: str, landing_url: str,
              issued_at: int) -> str:
        fields = [_KIND_CLICK, bid_id, campaign_id, offer_id, user_id, landing_url, issued_at]
        try:
            return self._fast(fields)
        except _NOT_COMPILED:
            return self._pack(fields)


def win_token(secret: bytes, t: WinToken) -> str:
    return _pack(secret, [_KIND_WIN, t.bid_id, t.request_id, t.imp_id, t.campaign_id, t.offer_id, t.user_id,
                          t.bid_price_micros, t.issued_at])


def parse_win_token(secret: bytes, token: str) -> WinToken:
    fields = _unpack(secret, token)
    if fields[0] != _KIND_WIN or len(fields) != 9:
        raise BadToken("not a win token")
    try:
        return WinToken(*fields[1:])
    except TypeError:
        raise BadToken("malformed token") from None


def click_token(secret: bytes, t: ClickToken) -> str:
    return _pack(secret, [_KIND_CLICK, t.bid_id, t.campaign_id, t.offer_id, t.user_id, t.landing_url, t.issued_at])


def parse_click_token(secret: bytes, token: str) -> ClickToken:
    fields = _unpack(secret, token)
    if fields[0] != _KIND_CLICK or len(fields) != 7:
        raise BadToken("not a click token")
    return ClickToken(*fields[1:])
