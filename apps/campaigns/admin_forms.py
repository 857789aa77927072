"""The campaigns admin's forms, with errors in a marketer's words: amounts carry their currency, the
max bid explains CPM, dates say the format they expect, and a service's refusal lands on its field."""
from __future__ import annotations

from django import forms
from django.contrib.postgres.forms import SimpleArrayField
from django.core.exceptions import NON_FIELD_ERRORS

from apps.core.exceptions import ServiceError

from . import services
from .admin_page import plain_message
from .models import ApprovalRule, Campaign, Channel, DeviceType

DATE_ERRORS = {"invalid_date": "Write the date as YYYY-MM-DD, e.g. 2027-03-01.",
               "invalid_time": "Write the time as HH:MM (UTC), e.g. 09:00.",
               "required": "Give a date (YYYY-MM-DD) and a time (HH:MM, UTC)."}


def money_errors(field: forms.Field, *, what: str, currency: str, example: str) -> None:
    field.error_messages.update({
        "required": f"Enter {what} in {currency}, e.g. {example}.",
        "invalid": f"Enter {what} as an amount in {currency}, e.g. {example} (digits and one dot).",
        "min_value": f"{what[:1].upper()}{what[1:]} must be more than 0 {currency}.",
        "max_decimal_places": f"{what[:1].upper()}{what[1:]} has too many decimals.",
        "max_digits": f"{what[:1].upper()}{what[1:]} is too large.",
    })


class CampaignAdminForm(forms.ModelForm):
    channels = forms.MultipleChoiceField(choices=Channel.choices, widget=forms.CheckboxSelectMultiple)
    target_device_types = forms.MultipleChoiceField(choices=DeviceType.choices, widget=forms.CheckboxSelectMultiple,
                                                    required=False, help_text="None ticked: any device")
    target_countries = SimpleArrayField(forms.CharField(max_length=3), required=False,
                                        help_text="Comma-separated ISO 3166-1 codes (US or USA); empty: anywhere")
    target_segments = SimpleArrayField(forms.IntegerField(min_value=0), required=False,
                                       help_text="Comma-separated segment ids; empty: everyone")

    class Meta:
        model = Campaign
        fields = services.CAMPAIGN_FIELDS

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        currency = ((self.data.get("currency") if self.is_bound else None) or self.instance.currency or "USD")
        currency = str(currency).upper()[:3]
        if "budget" in self.fields:
            money_errors(self.fields["budget"], what="the budget", currency=currency, example="5000.00")
        for name in ("start_at", "end_at"):
            field = self.fields.get(name)
            if field is not None:
                field.error_messages.update(DATE_ERRORS)
                # A split date/time field reports its halves' errors with their own messages.
                for part, code in zip(getattr(field, "fields", ()), ("invalid_date", "invalid_time"), strict=False):
                    part.error_messages["invalid"] = DATE_ERRORS[code]

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        # The services' own checks, so a refusal shows next to its field instead of after the save.
        try:
            if self.instance.pk is None:
                services.campaign_validate_new(values={f: cleaned.get(f) for f in services.CAMPAIGN_FIELDS})
            else:
                changes = {f: cleaned[f] for f in self.changed_data if f in services.CAMPAIGN_FIELDS and f in cleaned}
                services.campaign_validate_changes(campaign=self.instance, changes=changes)
        except ServiceError as exc:
            currency = (cleaned.get("currency") or getattr(self.instance, "currency", "") or "").upper()
            self.add_error(exc.field if exc.field in self.fields else None,
                           plain_message(exc.message, currency=currency or None))
        return cleaned

    def _post_clean(self):
        super()._post_clean()
        # The database constraint says what the services' check says: one message, on the end date.
        if NON_FIELD_ERRORS not in self._errors:
            return
        schedule = [e for e in self._errors[NON_FIELD_ERRORS] if "must end after it starts" in e]
        kept = [e for e in self._errors[NON_FIELD_ERRORS] if "must end after it starts" not in e]
        if kept:
            self._errors[NON_FIELD_ERRORS] = self.error_class(kept)
        else:
            del self._errors[NON_FIELD_ERRORS]
        if schedule and "end_at" in self.fields and not self.has_error("end_at"):
            self.add_error("end_at", schedule[0])


class ApprovalRuleForm(forms.ModelForm):
    channels = forms.MultipleChoiceField(choices=Channel.choices, widget=forms.CheckboxSelectMultiple, required=False,
                                         help_text="Matches campaigns using any of these; none ticked: any channel")

    class Meta:
        model = ApprovalRule
        fields = ["name", "min_approvals", "budget_threshold", "channels", "is_active"]


class OfferAdminForm(forms.ModelForm):
    """An offer on its campaign's page: the max bid's errors explain CPM in the campaign's currency.
    (No Meta: the inline's form factory gives the model and fields, and its ``formfield_for_dbfield``.)"""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        campaign = getattr(self.instance, "campaign", None) if self.instance.campaign_id else None
        currency = campaign.currency if campaign is not None else "the campaign's currency"
        if "max_bid_cpm" in self.fields:
            money_errors(self.fields["max_bid_cpm"], what="the max bid per 1,000 ads shown (CPM)", currency=currency,
                         example="2.50")
