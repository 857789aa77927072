"""The bid path's ``Signer`` issues the same tokens as ``win_token``/``click_token``, and they verify."""
from __future__ import annotations

import random

import pytest

from apps.bidding.tokens import (
    BadToken,
    ClickToken,
    Signer,
    WinToken,
    click_token,
    parse_click_token,
    parse_win_token,
    win_token,
)

SECRET = b"a-secret"


@pytest.mark.parametrize("secret", [b"k", SECRET, b"x" * 64, b"y" * 100])  # short, padded, block-sized, hashed
def test_signer_tokens_are_the_reference_tokens(secret):
    rng = random.Random(5)
    signer = Signer(secret)
    for i in range(300):  # payload lengths of every residue mod 3 (base64 padding 0, 1, 2)
        user = "u" * rng.randrange(0, 40) + ("é☃" if i % 7 == 0 else "")
        win = WinToken(f"bid-{i}", "r" * rng.randrange(1, 30), str(i % 5), rng.randrange(10**9), rng.randrange(10**9),
                       user, rng.randrange(10**10), 1_764_000_000 + i)
        token = signer.win(win.bid_id, win.request_id, win.imp_id, win.campaign_id, win.offer_id, win.user_id,
                           win.bid_price_micros, win.issued_at)
        assert token == win_token(secret, win)
        assert parse_win_token(secret, token) == win
        click = ClickToken(f"bid-{i}", i, i + 1, user, f"https://shop.example.com/{'p' * rng.randrange(50)}?a=1&b=2", i)
        token = signer.click(click.bid_id, click.campaign_id, click.offer_id, click.user_id, click.landing_url,
                             click.issued_at)
        assert token == click_token(secret, click)
        assert parse_click_token(secret, token) == click


def test_a_signer_token_does_not_verify_with_another_secret():
    token = Signer(SECRET).win("b", "r", "1", 1, 2, "u", 3, 4)
    with pytest.raises(BadToken):
        parse_win_token(b"other", token)


@pytest.mark.parametrize("secret", [b"", b"k", b"x" * 64, b"y" * 100])
def test_the_compiled_packer_gives_the_python_paths_bytes(secret):
    pytest.importorskip("apps.bidding._tokens", reason="run scripts/build_ext.py (scripts/setup.sh does)")
    compiled, python = Signer(secret), Signer(secret, compiled=False)
    assert compiled._fast != compiled._pack
    rng = random.Random(11)
    ints = [0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63 - 1, -1, -32, -33, -128, -129, -32768,
            -32769, -2**31, -2**31 - 1, -2**63]
    strings = ["", "a", "x" * 31, "x" * 32, "x" * 255, "x" * 256, "é" * 100, "☃" * 60, "🎉"]  # 15 fit in 4 KiB
    for _ in range(3000):
        fields = [rng.choice(ints) if rng.random() < 0.5 else rng.choice(strings) for _ in range(rng.randrange(16))]
        assert compiled._fast(fields) == python._pack(fields), fields
    for i in range(300):
        args = (f"bid-{i}", "r" * (i % 40), str(i % 3), i * 7919, i, "u" * (i % 50), i * 10**6, 1_764_000_000 + i)
        assert compiled.win(*args) == python.win(*args) == win_token(secret, WinToken(*args))
        click = (f"bid-{i}", i, i * 3, "u" * (i % 50), f"https://shop.example.com/{i}?a=1&b=<{i}>", 1_764_000_000)
        assert compiled.click(*click) == python.click(*click) == click_token(secret, ClickToken(*click))


def test_fields_the_compiled_packer_refuses_take_the_python_path():
    compiled, python = Signer(SECRET), Signer(SECRET, compiled=False)
    long_user = "x" * 5000  # a payload past the compiled packer's 4 KiB buffer
    assert compiled.click("b", 1, 2, long_user, "https://x.example/", 1) == python.click("b", 1, 2, long_user,
                                                                                        "https://x.example/", 1)
    big = 2**64 - 1  # uint64: past the compiled packer's int64, msgspec encodes it
    assert compiled.win("b", "r", "1", big, 1, "u", 10, 1) == python.win("b", "r", "1", big, 1, "u", 10, 1)
    assert parse_win_token(SECRET, compiled.win("b", "r", "1", big, 1, "u", 10, 1)).campaign_id == big
    for signer in (compiled, python):  # what msgspec refuses is refused the same way
        with pytest.raises(UnicodeEncodeError):
            signer.click("b", 1, 2, "u\udc80", "https://x.example/", 1)
        with pytest.raises(OverflowError):
            signer.win("b", "r", "1", 2**64, 1, "u", 10, 1)
