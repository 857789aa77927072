"""Webhook signatures of the providers that call us back.

* SendGrid Signed Event Webhook: ECDSA P-256 / SHA-256 over ``timestamp + raw body``; the signature
  (header ``X-Twilio-Email-Event-Webhook-Signature``) is base64 DER, the timestamp comes in
  ``X-Twilio-Email-Event-Webhook-Timestamp`` and the verification key from Mail Settings is a
  base64 DER SubjectPublicKeyInfo.
* Twilio (``X-Twilio-Signature``): base64 HMAC-SHA1, keyed with the auth token, of the full URL
  Twilio called followed by every POST parameter name and value, sorted by name.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

SENDGRID_SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
TWILIO_SIGNATURE_HEADER = "X-Twilio-Signature"


class BadVerificationKey(ValueError):
    """The configured SendGrid verification key is not a base64 DER P-256 public key."""


def sendgrid_public_key(key_b64: str) -> ec.EllipticCurvePublicKey:
    """Load SendGrid's verification key (base64 DER, as shown in Mail Settings; PEM framing tolerated)."""
    text = "".join(line for line in key_b64.strip().splitlines() if not line.startswith("-----"))
    try:
        key = load_der_public_key(base64.b64decode(text, validate=False))
    except (ValueError, binascii.Error) as exc:
        raise BadVerificationKey(f"SENDGRID_WEBHOOK_VERIFICATION_KEY is not a base64 DER public key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise BadVerificationKey("SENDGRID_WEBHOOK_VERIFICATION_KEY must be an ECDSA P-256 public key")
    return key


def sendgrid_signature_valid(*, key_b64: str, payload: bytes, signature_b64: str, timestamp: str) -> bool:
    """True when ``signature_b64`` signs ``timestamp + payload`` with the key. Never raises for bad input."""
    key = sendgrid_public_key(key_b64)
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (ValueError, binascii.Error):
        return False
    try:
        key.verify(signature, timestamp.encode() + payload, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def twilio_signature(*, auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """The ``X-Twilio-Signature`` Twilio sends for a POST of ``params`` to ``url``."""
    data = url + "".join(name + value for name, value in sorted(params))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def twilio_signature_valid(*, auth_token: str, url: str, params: Iterable[tuple[str, str]], signature: str) -> bool:
    expected = twilio_signature(auth_token=auth_token, url=url, params=params)
    return hmac.compare_digest(expected.encode(), (signature or "").encode())
