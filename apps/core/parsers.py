"""The API's JSON parser: refuses bodies that Postgres could not store or Python cannot walk.

DRF's ``JSONParser`` accepts any JSON text, but a string holding ``\\u0000`` cannot be stored in
Postgres ``text``/``jsonb`` and a lone surrogate (``\\ud800`` without its pair) cannot be encoded as
UTF-8, so either one reached the database and came back as a 500. A body nested deeper than Python's
recursion limit raised ``RecursionError`` (also a 500). All three are the client's mistake: 400.
"""
from __future__ import annotations

import re

from rest_framework import parsers
from rest_framework.exceptions import ParseError

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
MAX_DEPTH = 64


def _check(data) -> None:
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if _UNSTORABLE.search(value):
                raise ParseError("JSON strings may not contain NUL (\\u0000) or unpaired surrogates.")
        elif isinstance(value, (dict, list)):
            if depth > MAX_DEPTH:
                raise ParseError(f"JSON nested deeper than {MAX_DEPTH} levels.")
            items = value.items() if isinstance(value, dict) else ((None, item) for item in value)
            for key, item in items:
                if key is not None:
                    stack.append((key, depth))
                stack.append((item, depth + 1))


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"JSON nested deeper than {MAX_DEPTH} levels.") from None
        _check(data)
        return data
