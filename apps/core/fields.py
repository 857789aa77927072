"""Serializer fields that accept exactly the JSON types the schema documents.

DRF coerces: a CharField takes ``0`` as ``"0"``, a BooleanField takes ``"yes"`` and ``1``, an
IntegerField takes ``"12"``. The schema says string, boolean, integer — so a generated client, or
a fuzzer sending a number for a string, should be told it is wrong (400), not silently coerced.
Use these in request serializers (JSON bodies; query parameters are always text: not there).
"""
from rest_framework import serializers


class StrictCharField(serializers.CharField):
    default_error_messages = {"not_a_string": "Expected a string, got {kind}."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("not_a_string", kind=type(data).__name__)
        return super().to_internal_value(data)


class StrictRegexField(serializers.RegexField):
    default_error_messages = {"not_a_string": "Expected a string, got {kind}."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("not_a_string", kind=type(data).__name__)
        return super().to_internal_value(data)


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
