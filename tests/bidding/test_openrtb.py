"""Decoding and validation of OpenRTB 2.6 bid requests (apps.bidding.openrtb)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from apps.bidding.openrtb import (
    MAX_DIMENSION,
    Bid,
    BidResponse,
    InvalidRequest,
    SeatBid,
    decode_request,
    encode_response,
)

EXAMPLE_FILES = sorted(Path(__file__).parent.joinpath("openrtb_examples").glob("*.json"))


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.stem)
def test_spec_examples_decode(path):
    raw = path.read_bytes()
    request = decode_request(raw)
    source = json.loads(raw)
    assert request.id == source["id"]
    assert [imp.id for imp in request.imp] == [imp["id"] for imp in source["imp"]]


def test_fields_real_exchanges_send_are_read():
    body = json.dumps({
        "id": "r", "tmax": 120, "cur": ["USD"], "bcat": ["IAB25"], "badv": ["apple.com"], "test": 1,
        "imp": [
            {"id": "1", "bidfloor": 0.5, "banner": {"w": 300, "h": 250, "format": [{"w": 300, "h": 250}, {"w": 320, "h": 50}]},
             "pmp": {"private_auction": 1, "deals": [{"id": "d1", "bidfloor": 2, "wseat": ["s"]}]}},
            {"id": "2", "video": {"w": 640, "h": 480, "mimes": ["video/mp4"]}},
            {"id": "3", "native": {"request": "{}", "ver": "1.2"}},
        ],
        "app": {"id": "a", "bundle": "com.x", "publisher": {"id": "p"}},
        "device": {"devicetype": 4, "ua": "x", "geo": {"country": "USA"}, "ifa": "i"},
        "user": {"id": "u", "buyeruid": "b", "data": [{"id": "d", "segment": [{"id": "42"}]}]},
        "regs": {"coppa": 0, "gdpr": 1}, "source": {"tid": "t"},
        "ext": {"anything": [1, 2, 3]},  # unknown fields are ignored
    }).encode()
    r = decode_request(body)
    assert r.tmax == 120 and r.cur == ["USD"] and r.bcat == ["IAB25"] and r.badv == ["apple.com"]
    assert r.imp[0].banner.format[1].w == 320 and r.imp[0].pmp.deals[0].bidfloor == 2.0
    assert r.imp[1].video.w == 640 and r.imp[2].native.ver == "1.2"
    assert r.app.bundle == "com.x" and r.device.devicetype == 4 and r.device.geo.country == "USA"
    assert r.user.data[0].segment[0].id == "42" and r.regs.gdpr == 1


@pytest.mark.parametrize("body, error, fragment", [
    (b"", "invalid_json", "empty"),
    (b"{", "invalid_json", "truncated"),
    (b"not json", "invalid_json", "malformed"),
    (b"[]", "invalid_request", "Expected `object`"),
    (b'{"imp":[{"id":"1"}]}', "invalid_request", "missing required field `id`"),
    (b'{"id":"r"}', "invalid_request", "missing required field `imp`"),
    (b'{"id":"r","imp":[]}', "invalid_request", "length >= 1 - at `$.imp`"),
    (b'{"id":"","imp":[{"id":"1"}]}', "invalid_request", "length >= 1 - at `$.id`"),
    (b'{"id":7,"imp":[{"id":"1"}]}', "invalid_request", "Expected `str`, got `int` - at `$.id`"),
    (b'{"id":"r","imp":[{}]}', "invalid_request", "missing required field `id` - at `$.imp[0]`"),
    (b'{"id":"r","imp":"x"}', "invalid_request", "at `$.imp`"),
    (b'{"id":"r","imp":[{"id":"1","banner":{"w":100000,"h":250}}]}', "invalid_request", "at `$.imp[0].banner.w`"),
    (b'{"id":"r","imp":[{"id":"1","banner":{"w":-1,"h":250}}]}', "invalid_request", ">= 0 - at `$.imp[0].banner.w`"),
    (b'{"id":"r","imp":[{"id":"1","banner":{"format":[{"w":1,"h":99999999999}]}}]}', "invalid_request", "$.imp[0].banner.format[0].h"),
    (b'{"id":"r","imp":[{"id":"1","bidfloor":-2}]}', "invalid_request", "$.imp[0].bidfloor"),
    (b'{"id":"r","imp":[{"id":"1","bidfloor":"1.0"}]}', "invalid_request", "$.imp[0].bidfloor"),
    (b'{"id":"r","tmax":-5,"imp":[{"id":"1"}]}', "invalid_request", "$.tmax"),
    (b'{"id":"r","imp":[{"id":"1"},{"id":"1"}]}', "invalid_request", "duplicate imp id"),
    (b'{"id":"r","imp":[{"id":"1"}],"device":{"devicetype":"phone"}}', "invalid_request", "$.device.devicetype"),
    (b'{"id":"r","imp":[{"id":"1"}],"regs":{"coppa":7}}', "invalid_request", "$.regs.coppa"),
    (b'{"id":"r\xff","imp":[{"id":"1"}]}', "invalid_encoding", "not UTF-8"),
    (b'{"id":"r","imp":[{"id":"1"}],"x":"\xc3\x28"}', "invalid_encoding", "not UTF-8"),
])
def test_malformed_requests_name_the_problem(body, error, fragment):
    with pytest.raises(InvalidRequest) as info:
        decode_request(body)
    assert info.value.error == error
    assert fragment in info.value.detail
    assert set(info.value.as_dict()) == {"error", "detail"}


@pytest.mark.parametrize("opener, closer", [(b"[", b"]"), (b'{"a":', b"}")])
def test_json_nested_past_the_decoders_limit_is_invalid_json_not_a_recursion_error(opener, closer):
    # The case: 1,000 levels in a 2 KB body, in a field we do not even read.
    body = b'{"id":"r","imp":[{"id":"1"}],"ext":' + opener * 1000 + b"1" + closer * 1000 + b"}"
    assert len(body) < 7_000
    with pytest.raises(InvalidRequest) as info:
        decode_request(body)
    assert info.value.error == "invalid_json" and "nested too deeply" in info.value.detail


def test_json_nested_deeper_than_any_request_but_inside_the_limit_is_accepted():
    body = b'{"id":"r","imp":[{"id":"1"}],"ext":' + b"[" * 200 + b"]" * 200 + b"}"
    assert decode_request(body).id == "r"


def test_body_over_the_limit_is_refused_before_parsing():
    body = b'{"id":"r","imp":[{"id":"1"}],"pad":"' + b"x" * 70_000 + b'"}'
    with pytest.raises(InvalidRequest) as info:
        decode_request(body, max_bytes=65536)
    assert info.value.error == "body_too_large" and "65536" in info.value.detail


def test_too_many_impressions_are_refused():
    imps = ",".join(f'{{"id":"{i}"}}' for i in range(65))
    with pytest.raises(InvalidRequest) as info:
        decode_request(f'{{"id":"r","imp":[{imps}]}}'.encode())
    assert "$.imp" in info.value.detail


def test_max_dimension_is_accepted():
    r = decode_request(f'{{"id":"r","imp":[{{"id":"1","banner":{{"w":{MAX_DIMENSION},"h":1}}}}]}}'.encode())
    assert r.imp[0].banner.w == MAX_DIMENSION


def test_no_bid_response_keeps_empty_seatbid_and_nbr():
    encoded = json.loads(encode_response(BidResponse(id="r", seatbid=[], nbr=2, ext={"reason": "x"})))
    assert encoded == {"id": "r", "seatbid": [], "nbr": 2, "ext": {"reason": "x"}}
    bid = json.loads(encode_response(BidResponse(id="r", seatbid=[SeatBid(bid=[Bid(id="b", impid="1", price=1.5)], seat="s")],
                                                 cur="USD")))
    assert bid == {"id": "r", "seatbid": [{"bid": [{"id": "b", "impid": "1", "price": 1.5}], "seat": "s"}], "cur": "USD"}
