from django.urls import path

from . import webhooks

urlpatterns = [
    path("sendgrid", webhooks.SendGridEventsView.as_view(), name="webhook-sendgrid"),
    path("twilio/status", webhooks.TwilioStatusView.as_view(), name="webhook-twilio-status"),
]
