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
