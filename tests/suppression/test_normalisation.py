import pytest
from django.test import override_settings

from apps.core.exceptions import ServiceError
from apps.suppression.identifiers import classify_and_normalise
from apps.suppression.services import normalise_identifier


@pytest.mark.parametrize("raw, expected, kind", [
    # emails: trimmed and lower-cased
    ("  Bob@Example.COM ", "bob@example.com", "email"),
    ("first.last+tag@sub.example.org", "first.last+tag@sub.example.org", "email"),
    ("\tALICE@EXAMPLE.COM\n", "alice@example.com", "email"),
    # phones: E.164
    ("+1 (415) 555-0100", "+14155550100", "phone"),
    ("+14155550100", "+14155550100", "phone"),
    ("0044 20 7946 0958", "+442079460958", "phone"),
    ("+44 (0)20 7946 0958", "+442079460958", "phone"),
    ("+49 30 901820", "+4930901820", "phone"),
    ("00447911123456", "+447911123456", "phone"),
    ("+33.1.42.68.53.00", "+33142685300", "phone"),
    # user ids and device tokens: kept as given (outer whitespace removed)
    ("user-123", "user-123", "other"),
    ("12345", "12345", "other"),
    ("  AbC_def:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx  ", "AbC_def:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx", "other"),
    ("740f4707bebcf74f9b7c25d48e3358945f6aa01da5ddb387462c7eaf61bb78ad",
     "740f4707bebcf74f9b7c25d48e3358945f6aa01da5ddb387462c7eaf61bb78ad", "other"),
    ("550e8400-e29b-41d4-a716-446655440000", "550e8400-e29b-41d4-a716-446655440000", "other"),
    ("CaseMatters", "CaseMatters", "other"),
])
def test_normalises(raw, expected, kind):
    assert classify_and_normalise(raw) == (expected, kind)
    assert normalise_identifier(raw) == expected


@pytest.mark.parametrize("raw, message", [
    ("", "identifier is empty"),
    ("   ", "identifier is empty"),
    (None, "identifier is required"),
    (42, "identifier must be a string"),
    ("bob@", "invalid email address 'bob@'"),
    ("@example.com", "invalid email address '@example.com'"),
    ("a@b@c.com", "invalid email address 'a@b@c.com'"),
    ("bob smith@example.com", "invalid email address 'bob smith@example.com'"),
    ("+1 555", "invalid phone number '+1 555': it is too short"),
    ("+999 1234567", "invalid phone number '+999 1234567': its country code does not exist"),
    ("+1 415 555 0100 9999 9", "invalid phone number '+1 415 555 0100 9999 9': it is too long"),
    ("+1 (123) 555-0100", "invalid phone number '+1 (123) 555-0100': not a number in use for country code +1"),
    ("(415) 555-0100", "phone number '(415) 555-0100' has no country code: write it as +<country code><number>, "
                       "e.g. +14155550100"),
    ("hello world", "identifier 'hello world' is not an email address, a phone number, a user id or a device "
                    "token (user ids and tokens have letters or digits and no spaces)"),
    ("--", "identifier '--' is not an email address, a phone number, a user id or a device "
           "token (user ids and tokens have letters or digits and no spaces)"),
    ("+abc", "invalid phone number '+abc'"),
    ("tok\x00en", "identifier contains control characters"),
    ("x" * 321, "identifier is longer than 320 characters"),
])
def test_rejects_garbage_naming_the_problem(raw, message):
    with pytest.raises(ServiceError) as exc:
        normalise_identifier(raw)
    assert exc.value.message == message
    assert exc.value.field == "identifier"


@override_settings(SUPPRESSION_DEFAULT_PHONE_REGION="US")
def test_default_region_applies_to_national_numbers():
    assert normalise_identifier("(415) 555-0100") == "+14155550100"
    assert normalise_identifier("415-555-0100") == "+14155550100"
    # an explicit country code still wins
    assert normalise_identifier("0044 20 7946 0958") == "+442079460958"


def test_international_prefix_alone_is_not_a_number():
    with pytest.raises(ServiceError) as exc:
        normalise_identifier("+")
    assert exc.value.message == "invalid phone number '+'"
