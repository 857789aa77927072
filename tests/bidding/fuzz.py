"""A deterministic corpus of malformed and hostile bid request bodies, for every bid entry (HTTP on
the bid and web processes, gRPC unary and stream, NATS) and for the decoder in process.

``corpus()`` returns the same cases for the same seed, in the same order: deep nesting (up to 30,000
levels, at the root, in unknown fields, in known ones, left open), numbers no float or int64 holds
(``1e400``, ``2**70``, 5,000 digits), every field of a valid request given every wrong JSON type,
non-object roots, ids and strings that only look numeric (Unicode digits, which ``str.isdigit``
accepts and ``int`` may refuse), truncated and non-UTF-8 bodies, structural oddities, random byte
mutations of real requests and random documents with deep values spliced in.

Each case says what every entry must do with it: ``expect="bad"`` — refuse it (HTTP 400, gRPC
``INVALID_ARGUMENT``, a stream item with ``error``, a NATS error reply), with ``error`` the code when
it is known; ``expect="any"`` — a bid, a no-bid or a refusal, but the same verdict on every entry and
never a 5xx, a dropped stream or a missing reply. Depths are kept clear of the decoder's limit
(about the interpreter's recursion limit, minus the caller's stack): "deep" cases nest at least
``DEEP`` levels, valid ones at most ``SHALLOW``, so the verdict does not depend on the process.
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import NamedTuple

SEED = 20261216
DEEP = 1_000      # the case: 1,000 levels in a 2 KB body
SHALLOW = 200     # deeper than any real request, well inside the decoder's limit
EXAMPLES = {p.stem: p.read_bytes() for p in sorted((Path(__file__).parent / "openrtb_examples").glob("*.json"))}
BASE = {
    "id": "fz", "tmax": 500, "at": 1, "cur": ["USD"], "bcat": ["IAB25"], "badv": ["bad.example.com"],
    "imp": [{"id": "1", "bidfloor": 0.01, "banner": {"w": 300, "h": 250, "pos": 1, "format": [{"w": 300, "h": 250}]},
             "pmp": {"private_auction": 0, "deals": [{"id": "d1", "bidfloor": 0.5}]}}],
    "site": {"id": "s", "domain": "news.example.com", "publisher": {"id": "p"}},
    "device": {"devicetype": 2, "ua": "Mozilla/5.0", "geo": {"country": "USA", "lat": 40.7, "lon": -74.0}},
    "user": {"id": "fuzz-user", "data": [{"id": "d", "segment": [{"id": "7"}]}]},
    "regs": {"coppa": 0, "gdpr": 0}, "source": {"fd": 1, "tid": "t"},
}
WRONG_TYPES = ["x", 1, -1, 1.5, True, None, [], {}, [1], {"a": 1}, [[[]]], ""]
HUGE_NUMBERS = [b"1e400", b"-1e400", b"1e308", b"1.7976931348623157e309", b"4.9e-400", b"-0.0",
                str(2**70).encode(), str(-2**70).encode(), str(2**64).encode(), str(2**63).encode(),
                str(-2**63 - 1).encode(), b"9" * 5_000, b"0." + b"0" * 5_000 + b"1", b"1E+99999"]
# Strings that look like numbers to str.isdigit() but not to int(), or are not ASCII digits at all.
LOOKALIKE_DIGITS = ["\u00b2", "\u00b9\u00b2\u00b3", "\u0661\u0662", "\U0001d7d7", "\u2460", "\u07c0", "\u0663" * 18,
                    "1" * 19, "0x1f", " 12", "12 ", "-1", "+1", "1_000", "\uff11\uff12", "\u0000", "12\u0000"]
ODD_STRINGS = ["", " ", "\u0000", "a\u0000b", "\u00dcSA", "\uff35\uff33", "us", "\U0001f600", "\u202e", "\ufeff",
               "x" * 10_000, "\\", "\"", "<script>", "${AUCTION_PRICE}", "\u2028"]


class Case(NamedTuple):
    name: str
    body: bytes
    expect: str             # "bad" or "any"
    error: str | None = None  # the expected error code of a "bad" case, when known


def nest(depth: int, *, kind: str = "array", leaf: bytes = b"1", close: bool = True) -> bytes:
    """``depth`` arrays (``[[...]]``), objects (``{"a":{"a":...}}``) or both alternating around ``leaf``;
    ``close=False`` leaves every one of them open."""
    opens = {"array": (b"[", b"]"), "object": (b'{"a":', b"}")}
    if kind == "mixed":
        head = b"".join(opens["array" if i % 2 else "object"][0] for i in range(depth))
        tail = b"".join(opens["array" if i % 2 else "object"][1] for i in reversed(range(depth)))
    else:
        head, tail = opens[kind][0] * depth, opens[kind][1] * depth
    return head + leaf + (tail if close else b"")


def _dump(value) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _with(path: tuple, raw: bytes, base: dict | None = None) -> bytes:
    """The base request with the value at ``path`` replaced by the raw JSON text ``raw``."""
    mark = "\u0000fuzz-mark\u0000"
    doc = json.loads(json.dumps(base or BASE))
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = mark
    return _dump(doc).replace(_dump(mark), raw)


def _paths(value, prefix=()) -> list[tuple]:
    """Every path of a JSON document (object keys and list indexes), parents first."""
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            out += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            out += _paths(child, (*prefix, index))
    return out


def _deep_cases() -> list[Case]:
    cases = []
    for depth, kinds in ((DEEP, ("array", "object", "mixed")), (5_000, ("array", "object", "mixed")),
                         (10_000, ("object", "mixed")), (30_000, ("array",))):  # all under the 64 KiB limit
        for kind in kinds:
            deep = nest(depth, kind=kind)
            cases.append(Case(f"deep-root-{kind}-{depth}", deep, "bad"))
            cases.append(Case(f"deep-ext-{kind}-{depth}", _with(("ext",), deep), "bad", "invalid_json"))
            cases.append(Case(f"deep-open-{kind}-{depth}", nest(depth, kind=kind, close=False), "bad"))
    deep = nest(DEEP, kind="mixed")
    for path in (("imp", 0, "ext"), ("site", "ext"), ("user", "ext"), ("device", "geo", "ext"),
                 ("imp", 0, "banner", "ext"), ("imp", 0, "pmp", "deals", 0, "ext"), ("user", "data", 0, "ext")):
        cases.append(Case(f"deep-in-{'.'.join(map(str, path))}", _with(path, deep), "bad", "invalid_json"))
    for path in (("site",), ("imp",), ("imp", 0, "banner", "format"), ("user", "data"), ("cur",)):
        cases.append(Case(f"deep-as-{'.'.join(map(str, path))}", _with(path, nest(DEEP, kind="array")), "bad"))
    # Deep, but not deep enough to be refused: a valid request.
    for depth in (20, 100, SHALLOW):
        cases.append(Case(f"nested-ext-{depth}", _with(("ext",), nest(depth, kind="mixed")), "any"))
    return cases


def _number_cases() -> list[Case]:
    cases = []
    numeric = [p for p in _paths(BASE) if isinstance(_get(BASE, p), (int, float)) and not isinstance(_get(BASE, p), bool)]
    for path in [*numeric, ("ext",), ("imp", 0, "ext")]:
        for raw in HUGE_NUMBERS:
            cases.append(Case(f"number-{'.'.join(map(str, path))}={raw[:12].decode()}", _with(path, raw), "any"))
    return cases


def _get(doc, path):
    for key in path:
        doc = doc[key]
    return doc


def _type_cases() -> list[Case]:
    cases = []
    for path in _paths(BASE):
        for value in WRONG_TYPES:
            if type(value) is type(_get(BASE, path)) and value == _get(BASE, path):
                continue
            cases.append(Case(f"type-{'.'.join(map(str, path))}={_dump(value).decode()[:10]}",
                              _with(path, _dump(value)), "any"))
    for value in [*WRONG_TYPES, [BASE], [[BASE]]]:
        if not isinstance(value, dict):
            cases.append(Case(f"root-{_dump(value).decode()[:16]}", _dump(value), "bad", "invalid_request"))
    return cases


def _string_cases() -> list[Case]:
    cases = []
    for text in LOOKALIKE_DIGITS:
        segments = [{"id": text}, {"id": "7"}]
        cases.append(Case(f"segment-id={text[:6]!r}", _with(("user", "data", 0, "segment"), _dump(segments)), "any"))
    for path in (("id",), ("imp", 0, "id"), ("user", "id"), ("device", "geo", "country"), ("device", "ua"),
                 ("imp", 0, "bidfloorcur"), ("cur", 0), ("bcat", 0), ("badv", 0), ("site", "domain"),
                 ("imp", 0, "pmp", "deals", 0, "id"), ("source", "tid")):
        for text in [*ODD_STRINGS, *LOOKALIKE_DIGITS[:4]]:
            cases.append(Case(f"string-{'.'.join(map(str, path))}={text[:6]!r}", _with(path, _dump(text)), "any"))
    # JSON escapes the decoder must refuse (lone surrogates) or accept (escaped NUL, pairs).
    for escape, expect in ((rb"\ud800", "bad"), (rb"\udc00", "bad"), (rb"\ud800\u0041", "bad"), (rb"\ud83d\ude00", "any"),
                           (rb"\u0000", "any"), (rb"\u00e9", "any"), (rb"\x41", "bad"), (rb"\u12", "bad")):
        cases.append(Case(f"escape-user.id={escape.decode()}", _with(("user", "id"), b'"' + escape + b'"'), expect))
    return cases


def _encoding_cases() -> list[Case]:
    base = _dump(BASE)
    where = base.index(b"fuzz-user")  # inside a string
    bad_bytes = [b"\x80", b"\xbf", b"\xfe", b"\xff", b"\xc0\x80", b"\xc1\xbf", b"\xe0\x80\x80", b"\xed\xa0\x80",
                 b"\xed\xbf\xbf", b"\xf4\x90\x80\x80", b"\xf8\x88\x80\x80\x80", b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98"]
    cases = []
    for raw in bad_bytes:
        label = raw.hex()
        cases.append(Case(f"utf8-in-string-{label}", base[:where] + raw + base[where:], "bad", "invalid_encoding"))
        cases.append(Case(f"utf8-outside-string-{label}", base[:-1] + b"," + raw + b"}", "bad", "invalid_encoding"))
        cases.append(Case(f"utf8-at-end-{label}", base + raw, "bad", "invalid_encoding"))
    cases.append(Case("latin-1", _with(("user", "id"), '"caf\u00e9"'.encode("latin-1")), "bad", "invalid_encoding"))
    cases.append(Case("utf-16", json.dumps(BASE).encode("utf-16"), "bad", "invalid_encoding"))
    cases.append(Case("utf-32", json.dumps(BASE).encode("utf-32"), "bad"))
    cases.append(Case("utf-8-bom", b"\xef\xbb\xbf" + base, "bad", "invalid_json"))
    return cases


def _truncation_cases() -> list[Case]:
    cases = []
    for name, body in [("base", _dump(BASE)), *sorted(EXAMPLES.items())]:
        step = max(1, len(body) // 40)
        for cut in range(0, len(body) - 1, step):
            if body[:cut].strip():
                cases.append(Case(f"truncated-{name}-{cut}", body[:cut], "bad"))
        # a multi-byte character cut in half
        cut_in_char = _with(("user", "id"), '"\u00e9\u20ac"'.encode())
        cases.append(Case(f"truncated-mid-char-{name}", cut_in_char[:cut_in_char.index(b"\xe2") + 1], "bad"))
    return cases


def _structure_cases() -> list[Case]:
    base = _dump(BASE)
    imp = BASE["imp"][0]
    return [
        Case("empty", b"", "bad", "invalid_json"),
        Case("whitespace", b" \r\n\t ", "bad", "invalid_json"),
        Case("nul-byte", b"\x00", "bad"),
        Case("trailing-garbage", base + b"x", "bad", "invalid_json"),
        Case("two-documents", base + base, "bad", "invalid_json"),
        Case("trailing-comma", base[:-1] + b",}", "bad", "invalid_json"),
        Case("comment", b"/* c */" + base, "bad", "invalid_json"),
        Case("single-quotes", base.replace(b'"', b"'"), "bad", "invalid_json"),
        Case("nan", _with(("imp", 0, "bidfloor"), b"NaN"), "bad", "invalid_json"),
        Case("infinity", _with(("imp", 0, "bidfloor"), b"Infinity"), "bad", "invalid_json"),
        Case("negative-floor", _with(("imp", 0, "bidfloor"), b"-1"), "bad", "invalid_request"),
        Case("leading-zero", _with(("tmax",), b"0100"), "bad", "invalid_json"),
        Case("no-imp", _with(("imp",), b"[]"), "bad", "invalid_request"),
        Case("65-imps", _with(("imp",), _dump([{**imp, "id": str(i)} for i in range(65)])), "bad", "invalid_request"),
        Case("64-imps", _with(("imp",), _dump([{**imp, "id": str(i)} for i in range(64)])), "any"),
        Case("duplicate-imp-ids", _with(("imp",), _dump([imp, imp])), "bad", "invalid_request"),
        Case("duplicate-keys", base[:-1] + b',"id":"again"}', "any"),
        Case("missing-id", _dump({k: v for k, v in BASE.items() if k != "id"}), "bad", "invalid_request"),
        Case("over-64-kib", _with(("ext",), _dump("x" * 66_000)), "bad", "body_too_large"),
        Case("just-under-64-kib", _with(("ext",), _dump("x" * 64_000)), "any"),
        Case("many-small-keys", _with(("ext",), _dump({str(i): i for i in range(5_000)})), "any"),
        Case("long-flat-array", _with(("ext",), b"[" + b"0," * 20_000 + b"0]"), "any"),
    ]


def _mutate(rng: random.Random, raw: bytes) -> bytes:
    data = bytearray(raw)
    for _ in range(rng.randint(1, 4)):
        op = rng.choice(("flip", "cut", "insert", "delete", "duplicate"))
        pos = rng.randrange(len(data)) if data else 0
        if op == "flip" and data:
            data[pos] = rng.randrange(256)
        elif op == "cut":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = rng.choice([bytes([rng.randrange(256)]), b"[", b"{", b'"', b"\\", b",", b"\xff", b"1e999"])
        elif op == "delete" and data:
            del data[pos:pos + rng.randint(1, 16)]
        elif op == "duplicate" and data:
            data[pos:pos] = data[pos:pos + rng.randint(1, 64)]
    return bytes(data)


def _random_value(rng: random.Random, depth: int = 0):
    roll = rng.random()
    if depth > 4 or roll < 0.4:
        return rng.choice([None, True, False, 0, -1, 2**70, 1e300, 0.5, "", "x", "\u00b2", "\u0000", "USA", 300])
    if roll < 0.7:
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    keys = ["id", "imp", "w", "h", "banner", "segment", "data", "ext", "geo", "country", "x"]
    return {rng.choice(keys): _random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def _random_cases(rng: random.Random, count: int) -> list[Case]:
    sources = [_dump(BASE), *EXAMPLES.values()]
    cases = [Case(f"mutated-{i}", _mutate(rng, rng.choice(sources)), "any") for i in range(count)]
    for i in range(count // 2):
        doc = json.loads(json.dumps(BASE))
        for _ in range(rng.randint(1, 3)):
            path = rng.choice(_paths(doc) or [("ext",)])
            target = _get(doc, path[:-1]) if len(path) > 1 else doc
            target[path[-1]] = _random_value(rng)
        cases.append(Case(f"random-doc-{i}", _dump(doc), "any"))
    for i in range(count // 4):  # a deep value somewhere in a random document
        doc = json.loads(json.dumps(BASE))
        path = rng.choice(_paths(doc))
        depth = rng.choice([rng.randint(2, SHALLOW), rng.randint(DEEP, 9_000)])  # under 64 KiB as objects
        body = _with(path, nest(depth, kind=rng.choice(("array", "object", "mixed")), leaf=_dump(_random_value(rng))), doc)
        cases.append(Case(f"random-deep-{depth}-{i}", body, "bad" if depth >= DEEP else "any"))
    return cases


def corpus(seed: int = SEED, *, random_count: int = 120) -> list[Case]:
    """The whole corpus, deterministic for a given ``seed``; names are unique."""
    rng = random.Random(seed)
    cases = [*_deep_cases(), *_number_cases(), *_type_cases(), *_string_cases(), *_encoding_cases(),
             *_truncation_cases(), *_structure_cases(), *_random_cases(rng, random_count)]
    seen: dict[str, int] = {}
    unique = []
    for case in cases:
        n = seen.get(case.name, 0)
        seen[case.name] = n + 1
        unique.append(case._replace(name=f"{case.name}#{n}") if n else case)
    return unique
