"""The omnichannel admin: pages render with the numbers, source switches work through the services."""
from __future__ import annotations

import json
import time

import pytest

from apps.omnichannel.models import IngestSource
from apps.omnichannel.services import ingest_event_process, sendgrid_batch_process, sendgrid_webhook_receive
from tests.support.admin import changelist

from .helpers import make_offer, reachable_by
from .test_providers import activate_and_send
from .test_sendgrid_webhook import sg_event

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, django_user_model):
    user = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(user)
    return client


@pytest.fixture
def email_activation(providers, sendgrid_signing_key):
    campaign, offer = make_offer()
    reachable_by("u-1", email="ann@example.com")
    activation, send = activate_and_send(offer_id=offer.pk)
    body = json.dumps([sg_event(send, "delivered"), sg_event(send, "open")]).encode()
    ts = str(int(time.time()))
    batch = sendgrid_webhook_receive(body=body, signature=sendgrid_signing_key.sign(ts, body), timestamp=ts)
    sendgrid_batch_process(batch_id=batch.pk)
    return activation


def test_activation_pages_show_email_numbers(admin_client, email_activation):
    listing = admin_client.get("/admin/omnichannel/activation/?channel__exact=email&q=u-1")
    assert listing.status_code == 200
    content = listing.content.decode()
    assert "Email analytics by campaign" in content and "100.0%" in content
    detail = admin_client.get(f"/admin/omnichannel/activation/{email_activation.pk}/change/")
    assert detail.status_code == 200
    assert "unique opens" in detail.content.decode()


def test_email_analytics_by_campaign_page(admin_client, email_activation):
    response = admin_client.get("/admin/omnichannel/activation/email-analytics/")
    assert response.status_code == 200
    content = response.content.decode()
    assert "Autumn" in content and "100%" in content
    assert response.context["totals"]["unique_opens"] == 1


@pytest.mark.parametrize("path", ["sendledger", "contact", "ingestevent", "ingestsource", "triggerrule", "emailstats",
                                  "emailevent", "sendgridbatch", "inboxmessage", "interaction"])
def test_changelists_render(admin_client, email_activation, path):
    cl = changelist(admin_client.get(f"/admin/omnichannel/{path}/"))
    assert cl.result_count == cl.model._default_manager.count()  # every row, none hidden
    assert cl.model._meta.model_name == path


def test_disabling_a_source_from_the_admin_refuses_its_events(admin_client):
    row = IngestSource.objects.get(source="partner_api")
    response = admin_client.post("/admin/omnichannel/ingestsource/", {"action": "disable_sources",
                                                                        "_selected_action": [row.pk]})
    assert response.status_code == 302
    assert IngestSource.objects.get(source="partner_api").enabled is False
    from apps.core.exceptions import ServiceError

    with pytest.raises(ServiceError, match="disabled"):
        ingest_event_process(data={"event_id": "e", "source": "partner_api", "event_type": "app_open", "user_id": "u"},
                             transport="http", caller="user:1")
    admin_client.post("/admin/omnichannel/ingestsource/", {"action": "enable_sources", "_selected_action": [row.pk]})
    assert IngestSource.objects.get(source="partner_api").enabled is True


def test_contact_edited_in_the_admin_is_normalised(admin_client):
    reachable_by("u-9", email="a@example.com")
    from apps.omnichannel.models import Contact

    contact = Contact.objects.get(user_id="u-9")
    response = admin_client.post(f"/admin/omnichannel/contact/{contact.pk}/change/", {
        "user_id": "u-9", "email": "NEW@Example.com", "phone": "+44 20 7946 0958", "fcm_token": "", "apns_token": "",
        "consent_email": "on", "consent_in_app": "on", "preferred_channel": "", "present_store_id": "",
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    contact.refresh_from_db()
    assert (contact.email, contact.phone, contact.consent_sms) == ("new@example.com", "+442079460958", False)


def test_marketers_see_activations_but_not_contacts(client, django_user_model, email_activation):
    from django.contrib.auth.models import Group

    user = django_user_model.objects.create_user("m", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name="Marketer"))
    client.force_login(user)
    assert changelist(client.get("/admin/omnichannel/activation/"), expect_rows=True).result_count == 1
    analytics = client.get("/admin/omnichannel/activation/email-analytics/")
    assert analytics.status_code == 200 and analytics.context["totals"]["unique_opens"] == 1
    assert client.get("/admin/omnichannel/contact/").status_code == 403


def test_staff_without_the_view_permission_cannot_read_the_analytics_page(client, django_user_model):
    user = django_user_model.objects.create_user("s", password="pw", is_staff=True)
    client.force_login(user)
    assert client.get("/admin/omnichannel/activation/email-analytics/").status_code == 403
