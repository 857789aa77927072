"""Serializer fields that accept exactly the JSON types the schema documents.

DRF coerces: a CharField takes ``0`` as ``"0"``, a BooleanField takes ``"yes"`` and ``1``, an
IntegerField takes ``"12"``. The schema says string, boolean, integer — so a generated client, or
a fuzzer sending a number for a string, should be told it is wrong (400), not silently coerced.
Use these in request serializers (JSON bodies; query parameters are always text: not there).
"""
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
    pass


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
