"""Serializer fields that accept exactly the JSON types the schema documents.

DRF coerces: a CharField takes ``0`` as ``"0"``, a BooleanField takes ``"yes"`` and ``1``, an
IntegerField takes ``"12"``. The schema says string, boolean, integer — so a generated client, or
a fuzzer sending a number for a string, should be told it is wrong (400), not silently coerced.
Use these in request serializers (JSON bodies; query parameters are always text: not there).
"""
import datetime as dt
import re
from decimal import Decimal

from rest_framework import serializers


class _StringOnly:
    """Refuses anything but a JSON string before the field's own parsing (no ``0`` -> ``"0"``)."""

    default_error_messages = {"not_a_string": "Expected a string, got {kind}."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("not_a_string", kind=type(data).__name__)
        return super().to_internal_value(data)


class StrictCharField(_StringOnly, serializers.CharField):
    pass


class StrictRegexField(_StringOnly, serializers.RegexField):
    """The pattern sees the value as sent (no trimming), as the schema's ``pattern`` does."""

    def __init__(self, regex, **kwargs):
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(regex, **kwargs)


class StrictEmailField(_StringOnly, serializers.EmailField):
    pass


class StrictURLField(_StringOnly, serializers.URLField):
    pass


class StrictBooleanField(serializers.BooleanField):
    default_error_messages = {"not_a_boolean": "Expected true or false, got {kind}."}

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("not_a_boolean", kind=type(data).__name__)
        return data


class StrictIntegerField(serializers.IntegerField):
    default_error_messages = {"not_an_integer": "Expected an integer, got {kind}."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            self.fail("not_an_integer", kind=type(data).__name__)
        return super().to_internal_value(data)


class StrictFloatField(serializers.FloatField):
    """A JSON number (integer or fraction); DRF's also takes ``"0.5"`` and ``"nan"`` as text."""

    default_error_messages = {"not_a_number": "Expected a number, got {kind}."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            self.fail("not_a_number", kind=type(data).__name__)
        return super().to_internal_value(data)


def decimal_pattern(*, max_digits: int, decimal_places: int, min_value: Decimal | None) -> str:
    """The regular expression of a decimal string: canonical digits (no sign unless negatives are
    allowed, no leading zeros, no exponent, at most ``decimal_places`` decimals). When the minimum is
    the smallest positive step (0.01 with two places), zero is excluded too, so pattern and minimum say
    the same thing."""
    whole = max_digits - decimal_places
    fraction = rf"(?:\.\d{{1,{decimal_places}}})?" if decimal_places else ""
    sign = "-?" if min_value is None or min_value < 0 else ""
    integer = rf"(?:0|[1-9]\d{{0,{whole - 1}}})" if whole > 0 else "0"
    smallest = Decimal(1).scaleb(-decimal_places)
    if min_value is not None and min_value == smallest and decimal_places:
        # > 0: a non-zero whole part, or 0.<k zeros><non-zero digit>...
        fractions = "|".join("0" * k + rf"[1-9]\d{{0,{decimal_places - 1 - k}}}" for k in range(decimal_places))
        return rf"^(?:[1-9]\d{{0,{whole - 1}}}{fraction}|0\.(?:{fractions}))$" if whole > 0 else rf"^0\.(?:{fractions})$"
    return rf"^{sign}{integer}{fraction}$"


_PLAIN_DECIMAL_RE = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)$")


class StrictDecimalField(serializers.DecimalField):
    """A decimal sent as a JSON string matching :attr:`pattern` (what the schema documents, with
    ``minimum``/``maximum``), then DRF's range and precision checks. A JSON number is refused: the
    schema says string, and a float has already lost the cents a string keeps."""

    default_error_messages = {
        "not_a_string": "Expected a decimal as a string (e.g. \"12.50\"), got {kind}.",
        "not_canonical": "Expected a plain decimal such as \"12.50\" (at most {places} decimals{sign}), got {value!r}.",
    }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.pattern = decimal_pattern(max_digits=self.max_digits, decimal_places=self.decimal_places,
                                       min_value=self.min_value)
        self._regex = re.compile(self.pattern)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("not_a_string", kind=type(data).__name__)
        if not self._regex.match(data):
            # Name the broken limit when the text is a number at all ("-5" is below the minimum).
            number = Decimal(data) if _PLAIN_DECIMAL_RE.match(data) else None
            if number is not None and self.min_value is not None and number < self.min_value:
                self.fail("min_value", min_value=self.min_value)
            if number is not None and self.max_value is not None and number > self.max_value:
                self.fail("max_value", max_value=self.max_value)
            sign = "" if self.min_value is None or self.min_value < 0 else ", no sign"
            self.fail("not_canonical", places=self.decimal_places, sign=sign, value=data)
        return super().to_internal_value(data)


# An ISO 8601 date (2026-05-01) or date-time, "T" or a space between, minutes at least, zone optional
# (naive means UTC). The form query parameters and lenient body fields (suppression expiry) accept.
ISO_DATE_OR_DATETIME = (r"^\d{4}-\d{2}-\d{2}(?:[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?"
                        r"(?:[Zz]|[+-]\d{2}(?::?\d{2})?)?)?$")
ISO_DATE_OR_DATETIME_RE = re.compile(ISO_DATE_OR_DATETIME)


# RFC 3339 (the schema's ``format: date-time``): date, "T", time to the second, optional fraction,
# and a zone ("Z" or an offset). A naive time is refused: the API's times are UTC and must say so.
RFC3339_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:[Zz]|[+-]\d{2}:\d{2})$")


class StrictDateTimeField(serializers.DateTimeField):
    """An RFC 3339 date-time string with its zone (``2026-05-01T09:00:00Z``), as ``format: date-time``
    documents; DRF's default also takes naive times, dates with a space, week dates and more."""

    default_error_messages = {
        "not_rfc3339": "Expected an ISO 8601 / RFC 3339 date-time with a zone, e.g. 2026-05-01T09:00:00Z, got {value!r}.",
    }

    def to_internal_value(self, value):
        if not isinstance(value, str) or not RFC3339_RE.match(value):
            self.fail("not_rfc3339", value=value)
        try:
            parsed = dt.datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
        except ValueError:
            self.fail("not_rfc3339", value=value)
        return self.enforce_timezone(parsed)
