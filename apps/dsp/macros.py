"""OpenRTB 2.6 §4.4 substitution macros in ``nurl``, ``burl``, ``lurl`` and ``adm``.

``${NAME}`` is replaced by its value; ``${NAME:B64}`` by the value in URL-safe base64 (no padding);
a macro we know but have no value for, or one we do not know, becomes the empty string (§4.4:
"an unknown value is replaced with an empty string").
"""
from __future__ import annotations

import base64
import re

_MACRO = re.compile(r"\$\{(AUCTION_[A-Z_]+?)(:B64)?\}")

#: The §4.4 macros (values are given by name without the ``AUCTION_`` prefix or with it).
KNOWN = frozenset({
    "AUCTION_ID", "AUCTION_BID_ID", "AUCTION_IMP_ID", "AUCTION_SEAT_ID", "AUCTION_AD_ID", "AUCTION_PRICE",
    "AUCTION_CURRENCY", "AUCTION_MBR", "AUCTION_LOSS", "AUCTION_MIN_TO_WIN", "AUCTION_MULTIPLIER",
    "AUCTION_IMP_TS",
})

#: OpenRTB 3.0 loss reason codes we send (list "Loss Reason Codes").
LOSS_WON = 0
LOSS_TIMEOUT = 2
LOSS_OUTBID = 102


def format_price(value: float) -> str:
    """A price as macros carry it: shortest exact decimal, no exponent (``1.5``, ``0.000123``)."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text or "0"


def substitute(template: str | None, values: dict[str, str], *, keep: frozenset[str] = frozenset()) -> str | None:
    """``template`` with every macro replaced. Names in ``keep`` are left untouched (for a caller
    further up who fills them in, e.g. ``AUCTION_PRICE`` in the ``adm`` we pass on)."""
    if not template or "${" not in template:
        return template

    def repl(match: re.Match) -> str:
        name, b64 = match.group(1), match.group(2)
        if name in keep:
            return match.group(0)
        value = values.get(name, "")
        if b64 and value:
            return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")
        return value

    return _MACRO.sub(repl, template)
