"""Guided creation of a campaign in the admin: basics → audience → offer and creative (with a live
preview) → review, ending in "Save and submit" (or "Save as draft").

One page, one form: the steps are sections the page's script shows one at a time (without script
they all show), so going back and forth costs no round trip and a refusal re-opens the step of the
field it concerns. Eight fields must be filled; everything else has a default a marketer can keep
(channel display, currency USD, size 300×250, start as soon as it is approved, the offer named after
the campaign, the advertiser's domain taken from the landing page). The campaign, its offer and the
submission are one transaction through the services: a refusal leaves nothing behind.
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from urllib.parse import urlsplit

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from apps.core.exceptions import ServiceError
from apps.core.roles import Role, user_has_role

from . import services
from .admin_page import plain_message
from .models import Channel, DeviceType

SIZES = [("300x250", "300 × 250 (medium rectangle)"), ("728x90", "728 × 90 (leaderboard)"),
         ("320x50", "320 × 50 (mobile banner)"), ("160x600", "160 × 600 (skyscraper)"),
         ("300x600", "300 × 600 (half page)"), ("970x250", "970 × 250 (billboard)")]
CATEGORIES = [("IAB1", "Arts & entertainment"), ("IAB2", "Automotive"), ("IAB3", "Business"),
              ("IAB5", "Education"), ("IAB7", "Health & fitness"), ("IAB8", "Food & drink"),
              ("IAB9", "Hobbies & interests"), ("IAB10", "Home & garden"), ("IAB13", "Personal finance"),
              ("IAB17", "Sports"), ("IAB18", "Style & fashion"), ("IAB19", "Technology & computing"),
              ("IAB20", "Travel"), ("IAB22", "Shopping")]
DATE_FORMATS = ["%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d"]
DATE_HELP = "Date and time in UTC, e.g. 2027-03-01 09:00"

#: The form's field for each field a service may refuse (so its message lands next to the right input).
SERVICE_FIELDS = {"name": "name", "advertiser": "advertiser", "budget": "budget", "currency": "currency",
                  "channels": "channels", "start_at": "start", "end_at": "end", "target_countries": "countries",
                  "target_device_types": "devices", "creative_markup": "creative", "landing_url": "landing_url",
                  "advertiser_domain": "landing_url", "category": "category", "max_bid_cpm": "max_bid_cpm",
                  "width": "size", "height": "size", "offers": "creative"}
STEP_OF = {"name": 1, "advertiser": 1, "budget": 1, "currency": 1, "start": 1, "end": 1, "channels": 2,
           "countries": 2, "devices": 2, "creative": 3, "size": 3, "landing_url": 3, "category": 3,
           "max_bid_cpm": 3}


def _date(label: str, required: bool) -> forms.DateTimeField:
    return forms.DateTimeField(
        label=label, required=required, input_formats=DATE_FORMATS, help_text=DATE_HELP,
        widget=forms.TextInput(attrs={"placeholder": "YYYY-MM-DD HH:MM", "autocomplete": "off"}),
        error_messages={"invalid": "Write the date as YYYY-MM-DD HH:MM (UTC), e.g. 2027-03-01 09:00.",
                        "required": f"Say when the campaign {'ends' if label == 'Ends' else 'starts'}."})


class GuidedCampaignForm(forms.Form):
    # 1 basics
    name = forms.CharField(label="Campaign name", max_length=200, help_text="What your team calls it",
                           error_messages={"required": "Give the campaign a name."})
    advertiser = forms.CharField(max_length=200, help_text="The brand paying for it",
                                 error_messages={"required": "Say which brand this is for."})
    budget = forms.DecimalField(label="Budget", max_digits=14, decimal_places=2, min_value=Decimal("0.01"),
                                help_text="The most the whole campaign may spend, in the currency beside it",
                                widget=forms.TextInput(attrs={"inputmode": "decimal", "placeholder": "5000.00"}))
    currency = forms.CharField(max_length=3, required=False, initial="USD",
                               help_text="ISO 4217 code (USD, EUR, GBP…)")
    start = _date("Starts", required=False)
    end = _date("Ends", required=True)
    # 2 audience
    channels = forms.MultipleChoiceField(choices=Channel.choices, required=False, initial=[Channel.DISPLAY],
                                         widget=forms.CheckboxSelectMultiple, help_text="Where the ads run")
    countries = forms.CharField(required=False, help_text="Comma-separated country codes such as US, DE; empty: anywhere")
    devices = forms.MultipleChoiceField(choices=DeviceType.choices, required=False,
                                        widget=forms.CheckboxSelectMultiple, help_text="None ticked: any device")
    # 3 offer and creative
    creative = forms.CharField(label="Creative (HTML)", widget=forms.Textarea(attrs={"rows": 5}),
                               help_text="The banner's HTML; the preview beside it shows what people will see",
                               error_messages={"required": "Paste the banner's HTML (the preview shows it)."})
    size = forms.ChoiceField(choices=SIZES, required=False, initial="300x250", help_text="Width × height in pixels")
    landing_url = forms.URLField(label="Landing page", max_length=500, assume_scheme="https",
                                 help_text="Where a click goes, e.g. https://shop.example.com/spring",
                                 error_messages={"required": "Say where a click on the ad should go.",
                                                 "invalid": "Enter a web address such as https://shop.example.com/sale."})
    category = forms.CharField(label="Category", max_length=20,
                               help_text="IAB content category, e.g. IAB22 (shopping); type or pick one",
                               widget=forms.TextInput(attrs={"list": "ce-categories", "autocomplete": "off"}),
                               error_messages={"required": "Pick the ad's IAB category, e.g. IAB22 for shopping."})
    max_bid_cpm = forms.DecimalField(
        label="Max bid (CPM)", max_digits=10, decimal_places=4, min_value=Decimal("0.0001"),
        help_text="The most you pay per 1,000 ads shown: 2.50 means at most 0.0025 per ad",
        widget=forms.TextInput(attrs={"inputmode": "decimal", "placeholder": "2.50"}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        currency = (self.data.get("currency") or "USD").upper()[:3] if self.is_bound else "USD"
        self.fields["budget"].error_messages.update({
            "required": f"Enter the budget in {currency}, e.g. 5000.00.",
            "invalid": f"Enter the budget as an amount in {currency}, e.g. 5000.00 (digits and one dot).",
            "min_value": f"The budget must be at least 0.01 {currency}.",
            "max_decimal_places": f"The budget is in {currency}: at most 2 decimals (cents).",
        })
        self.fields["max_bid_cpm"].error_messages.update({
            "required": f"Enter the most you pay per 1,000 ads shown (CPM) in {currency}, e.g. 2.50.",
            "invalid": f"Enter the max bid as an amount in {currency} per 1,000 ads shown, e.g. 2.50.",
            "min_value": f"The max bid must be more than 0 {currency} per 1,000 ads shown.",
            "max_decimal_places": "The max bid allows at most 4 decimals.",
        })

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("start"), cleaned.get("end")
        if start and end and end <= start:
            self.add_error("end", f"The campaign must end after it starts ({start:%Y-%m-%d %H:%M} UTC).")
        elif end and end <= timezone.now() and not self.has_error("end"):
            self.add_error("end", "The end is in the past: pick a later date.")
        if not self.has_error("channels") and not cleaned.get("channels"):
            self.add_error("channels", "Pick at least one channel where the ads run.")
        return cleaned

    def campaign_values(self) -> dict:
        c = self.cleaned_data
        countries = [code.strip().upper() for code in (c.get("countries") or "").split(",") if code.strip()]
        return dict(name=c["name"], advertiser=c["advertiser"], budget=c["budget"],
                    currency=(c.get("currency") or "USD").upper(), channels=list(c["channels"]),
                    start_at=c.get("start") or timezone.now(), end_at=c["end"], target_countries=countries,
                    target_device_types=list(c.get("devices") or []))

    def offer_values(self) -> dict:
        c = self.cleaned_data
        width, height = (int(part) for part in (c.get("size") or "300x250").split("x"))
        host = (urlsplit(c["landing_url"]).hostname or "").lower()
        return dict(name=f"{c['name']} {width}x{height}"[:200], creative_markup=c["creative"], width=width,
                    height=height, format="banner", landing_url=c["landing_url"],
                    advertiser_domain=host.removeprefix("www."), category=c["category"].strip().upper(),
                    max_bid_cpm=c["max_bid_cpm"])


def _first_error_step(form: GuidedCampaignForm) -> int:
    steps = [STEP_OF.get(name, 1) for name in form.errors if name in STEP_OF]
    return min(steps) if steps else (4 if form.errors else 1)


def guided_create_view(model_admin, request):
    if not user_has_role(request.user, Role.MARKETER) or not model_admin.has_add_permission(request):
        raise PermissionDenied
    form = GuidedCampaignForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        submit = "save_submit" in request.POST
        try:
            with transaction.atomic():
                campaign = services.campaign_create(actor=request.user, **form.campaign_values())
                services.offer_create(campaign_id=campaign.pk, actor=request.user, source="admin",
                                      **form.offer_values())
                if submit:
                    services.campaign_submit(campaign_id=campaign.pk, actor=request.user)
        except ServiceError as exc:
            form.add_error(SERVICE_FIELDS.get(exc.field or "", None),
                           plain_message(exc.message, currency=form.campaign_values()["currency"]))
        else:
            what = "saved and submitted for approval" if submit else "saved as a draft"
            messages.success(request, f"“{campaign.name}” was {what}.")
            return HttpResponseRedirect(reverse("admin:campaigns_campaign_change", args=[campaign.pk]))
    context = {
        **model_admin.admin_site.each_context(request), "opts": model_admin.opts, "form": form,
        "title": "New campaign", "categories": CATEGORIES, "start_step": _first_error_step(form),
        "required_fields": [f.name for f in form if f.field.required],
        "now": datetime.now(tz=timezone.get_current_timezone()),
    }
    return render(request, "admin/campaigns/campaign/guided.html", context, status=400 if form.errors else 200)
