"""OpenRTB 2.6 bid request and response types (msgspec Structs: decoding validates types and ranges).

Only the fields the bidder uses are declared; every other field an exchange sends is ignored
(docs/RULES.md §1: unknown fields are ignored), which also keeps decoding fast. ``decode_request`` turns
any malformed input into ``InvalidRequest`` carrying an error code and a message that names the
problem and, where msgspec knows it, the JSON path (``$.imp[0].banner.w``).
"""
from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta, Struct

# Sizes above this are not an ad slot but garbage (or an attack on some arithmetic downstream).
MAX_DIMENSION = 10_000
MAX_IMPS = 64
MAX_ID_LENGTH = 512

Dim = Annotated[int, Meta(ge=0, le=MAX_DIMENSION)]
Money = Annotated[float, Meta(ge=0.0, le=1_000_000.0)]
Id = Annotated[str, Meta(min_length=1, max_length=MAX_ID_LENGTH)]
Flag = Annotated[int, Meta(ge=0, le=1)]


class InvalidRequest(Exception):
    """A request we refuse with HTTP 400 / gRPC INVALID_ARGUMENT / a NATS error reply."""

    def __init__(self, error: str, detail: str):
        super().__init__(detail)
        self.error = error
        self.detail = detail

    def as_dict(self) -> dict[str, str]:
        return {"error": self.error, "detail": self.detail}


# --- request ------------------------------------------------------------------------------------


class Format(Struct):
    w: Dim | None = None
    h: Dim | None = None


class Banner(Struct):
    w: Dim | None = None
    h: Dim | None = None
    format: list[Format] | None = None
    pos: int | None = None
    btype: list[int] | None = None
    battr: list[int] | None = None
    api: list[int] | None = None


class Video(Struct):
    mimes: list[str] | None = None
    w: Dim | None = None
    h: Dim | None = None
    minduration: int | None = None
    maxduration: int | None = None
    protocols: list[int] | None = None
    linearity: int | None = None
    placement: int | None = None
    plcmt: int | None = None


class Native(Struct):
    request: str = ""
    ver: str | None = None


class Deal(Struct):
    id: Id
    bidfloor: Money = 0.0
    bidfloorcur: str = "USD"
    at: int | None = None
    wseat: list[str] | None = None
    wadomain: list[str] | None = None


class Pmp(Struct):
    private_auction: Flag = 0
    deals: list[Deal] | None = None


class Imp(Struct):
    id: Id
    banner: Banner | None = None
    video: Video | None = None
    native: Native | None = None
    pmp: Pmp | None = None
    tagid: str | None = None
    bidfloor: Money = 0.0
    bidfloorcur: str = "USD"
    instl: Flag = 0
    secure: Flag | None = None


class Publisher(Struct):
    id: str | None = None
    name: str | None = None
    domain: str | None = None


class Site(Struct):
    id: str | None = None
    name: str | None = None
    domain: str | None = None
    page: str | None = None
    cat: list[str] | None = None
    publisher: Publisher | None = None


class App(Struct):
    id: str | None = None
    name: str | None = None
    bundle: str | None = None
    domain: str | None = None
    cat: list[str] | None = None
    publisher: Publisher | None = None


class Geo(Struct):
    country: str | None = None
    region: str | None = None
    city: str | None = None
    lat: float | None = None
    lon: float | None = None


class Device(Struct):
    ua: str | None = None
    geo: Geo | None = None
    devicetype: int | None = None
    dnt: Flag | None = None
    lmt: Flag | None = None
    ip: str | None = None
    os: str | None = None
    ifa: str | None = None


class Segment(Struct):
    id: str | None = None
    name: str | None = None
    value: str | None = None


class Data(Struct):
    id: str | None = None
    name: str | None = None
    segment: list[Segment] | None = None


class User(Struct):
    id: str | None = None
    buyeruid: str | None = None
    geo: Geo | None = None
    data: list[Data] | None = None


class Regs(Struct):
    coppa: Flag | None = None
    gdpr: Flag | None = None
    us_privacy: str | None = None


class Source(Struct):
    fd: int | None = None
    tid: str | None = None


class BidRequest(Struct):
    id: Id
    imp: Annotated[list[Imp], Meta(min_length=1, max_length=MAX_IMPS)]
    site: Site | None = None
    app: App | None = None
    device: Device | None = None
    user: User | None = None
    regs: Regs | None = None
    source: Source | None = None
    test: Flag = 0
    at: int = 2
    tmax: Annotated[int, Meta(ge=0, le=60_000)] | None = None
    wseat: list[str] | None = None
    bseat: list[str] | None = None
    cur: list[str] | None = None
    bcat: list[str] | None = None
    badv: list[str] | None = None
    bapp: list[str] | None = None


_request_decoder = msgspec.json.Decoder(BidRequest)


def decode_request(body: bytes, *, max_bytes: int = 65536) -> BidRequest:
    """Decode and validate an OpenRTB 2.6 bid request, or raise ``InvalidRequest``."""
    if len(body) > max_bytes:
        raise InvalidRequest("body_too_large", f"request body is {len(body)} bytes; the limit is {max_bytes}")
    if not body:
        raise InvalidRequest("invalid_json", "request body is empty")
    if not body.isascii():
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidRequest("invalid_encoding", f"request body is not UTF-8: byte {exc.start} is invalid") from None
    try:
        request = _request_decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise InvalidRequest("invalid_request", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise InvalidRequest("invalid_json", str(exc)) from None
    except RecursionError:
        # msgspec counts its nesting against the interpreter's recursion limit (~1,000 levels less the
        # caller's stack), also while it skips a field we do not read. Catching it costs a valid
        # request nothing, where counting the depth first would cost every request a pass over the body.
        raise InvalidRequest("invalid_json", "JSON nested too deeply: arrays and objects inside one another past the "
                                             "decoder's limit of about 1,000 levels (a bid request needs under 10)") from None
    seen: set[str] = set()
    for index, imp in enumerate(request.imp):
        if imp.id in seen:
            raise InvalidRequest("invalid_request", f"duplicate imp id {imp.id!r} - at `$.imp[{index}].id`")
        seen.add(imp.id)
    return request


# --- response -----------------------------------------------------------------------------------


class Bid(Struct, omit_defaults=True):
    id: str
    impid: str
    price: float
    adid: str | None = None
    nurl: str | None = None
    adm: str | None = None
    adomain: list[str] | None = None
    cid: str | None = None
    crid: str | None = None
    cat: list[str] | None = None
    dealid: str | None = None
    w: int | None = None
    h: int | None = None
    mtype: int | None = None


class SeatBid(Struct, omit_defaults=True):
    bid: list[Bid]
    seat: str | None = None


class BidResponse(Struct, omit_defaults=True):
    id: str
    seatbid: list[SeatBid]
    bidid: str | None = None
    cur: str | None = None
    nbr: int | None = None
    ext: dict | None = None


_encoder = msgspec.json.Encoder()


def encode_response(response: BidResponse) -> bytes:
    return _encoder.encode(response)


def encode_json(value) -> bytes:
    return _encoder.encode(value)


# OpenRTB 2.6 no-bid reason codes (list 5.24) we use.
NBR_UNKNOWN = 0
NBR_TECHNICAL_ERROR = 1
NBR_INVALID_REQUEST = 2
NBR_UNMATCHED_USER = 8
NBR_DAILY_USER_CAP = 9
