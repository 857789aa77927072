from __future__ import annotations

import base64
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.factories import make_user, token_client

from .fakes import ApnsServer, FcmServer, SendGridServer, TwilioServer

SENDGRID_KEY = "SG.test-key.abc"
TWILIO_SID = "AC" + "1" * 32
TWILIO_TOKEN = "twilio-auth-token-123"
TWILIO_CALLBACK = "https://hooks.example.com/v1/webhooks/twilio/status"
FCM_PROJECT = "ce-test-project"
FCM_TOKEN = "ya29.test-access-token"
APNS_TOPIC = "com.example.campaignexpress"
APNS_JWT = "eyJhbGciOiJFUzI1NiIsImtpZCI6IkFCQzEyMyJ9.eyJpc3MiOiJERUYxMjMiLCJpYXQiOjE3MDAwMDAwMDB9.sig"


@pytest.fixture(autouse=True)
def _celery_mode(request):
    """Tasks run in-process (eager) unless the test starts a real worker (marker e2e): a transactional
    test must not leave messages in the broker for a worker that will never come."""
    from config.celery import app

    eager = request.node.get_closest_marker("e2e") is None
    previous = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager, app.conf.task_eager_propagates = eager, eager
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = previous


@dataclass
class Providers:
    sendgrid: SendGridServer
    twilio: TwilioServer
    fcm: FcmServer
    apns: ApnsServer

    def all(self):
        return [self.sendgrid, self.twilio, self.fcm, self.apns]

    def reset(self):
        for server in self.all():
            server.reset()

    def env(self) -> dict[str, str]:
        """The same configuration as environment variables (for worker subprocesses)."""
        return {
            "SENDGRID_API_URL": self.sendgrid.url, "SENDGRID_API_KEY": SENDGRID_KEY,
            "SENDGRID_FROM_EMAIL": "offers@example.com",
            "TWILIO_API_URL": self.twilio.url, "TWILIO_ACCOUNT_SID": TWILIO_SID, "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
            "TWILIO_FROM": "+14155550000", "TWILIO_STATUS_CALLBACK_URL": TWILIO_CALLBACK,
            "FCM_API_URL": self.fcm.url, "FCM_PROJECT_ID": FCM_PROJECT, "FCM_ACCESS_TOKEN": FCM_TOKEN,
            "APNS_API_URL": self.apns.url, "APNS_TOPIC": APNS_TOPIC, "APNS_AUTH_TOKEN": APNS_JWT,
        }


def start_providers() -> Providers:
    return Providers(
        sendgrid=SendGridServer(SENDGRID_KEY).start(),
        twilio=TwilioServer(TWILIO_SID, TWILIO_TOKEN).start(),
        fcm=FcmServer(FCM_PROJECT, FCM_TOKEN).start(),
        apns=ApnsServer(APNS_TOPIC, APNS_JWT).start(),
    )


@pytest.fixture
def providers(settings):
    """All four providers configured against local fake servers (function scope)."""
    servers = start_providers()
    for name, value in servers.env().items():
        setattr(settings, name, value)
    settings.OMNICHANNEL_SEND_RETRY_BASE_SECONDS = 0.01
    settings.OMNICHANNEL_SEND_RETRY_MAX_SECONDS = 0.05
    yield servers
    for server in servers.all():
        server.stop()


@pytest.fixture
def no_providers(settings):
    """Every provider unconfigured (the default of a fresh checkout)."""
    for name in ("SENDGRID_API_KEY", "SENDGRID_FROM_EMAIL", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM",
                 "FCM_PROJECT_ID", "FCM_ACCESS_TOKEN", "APNS_TOPIC", "APNS_AUTH_TOKEN"):
        setattr(settings, name, "")


@dataclass
class SigningKey:
    private_key: ec.EllipticCurvePrivateKey
    public_b64: str

    def sign(self, timestamp: str, body: bytes) -> str:
        signature = self.private_key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return base64.b64encode(signature).decode()


def new_signing_key() -> SigningKey:
    private = ec.generate_private_key(ec.SECP256R1())
    public_der = private.public_key().public_bytes(serialization.Encoding.DER,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    return SigningKey(private, base64.b64encode(public_der).decode())


@pytest.fixture
def sendgrid_signing_key(settings) -> SigningKey:
    """A P-256 key pair like SendGrid's; its public half is configured as the verification key."""
    key = new_signing_key()
    settings.SENDGRID_WEBHOOK_VERIFICATION_KEY = key.public_b64
    return key


def _client_for(username: str, *groups: str):
    return token_client(make_user(*groups, username=username, is_staff=False))


@pytest.fixture
def integration_client(db):
    return _client_for("pos-terminal", "Integration")


@pytest.fixture
def marketer_client(db):
    return _client_for("marketer", "Marketer")


@pytest.fixture
def plain_client(db):
    return _client_for("nobody")
