"""The approver's journey in the admin: the approval inbox (what awaits my decision, oldest first,
with the rule and the votes so far), a review page with "approve & next" / "reject & next", the
comment thread, and the notifications page. Every decision goes through ``services.campaign_approve``
/ ``campaign_reject`` (role, self-approval and one-vote rules hold as everywhere else)."""
from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from apps.core.exceptions import ServiceError
from apps.core.roles import Role, user_has_role

from . import selectors, services
from .admin_page import campaign_header, plain_message
from .models import Channel, DeviceType


class ApproveForm(forms.Form):
    reason = forms.CharField(label="Note (optional)", required=False, strip=True,
                             widget=forms.Textarea(attrs={"rows": 2}),
                             help_text="Kept in the history and shown to the marketer.")


class RejectForm(forms.Form):
    reason = forms.CharField(label="Why is it rejected?", required=True, strip=True,
                             widget=forms.Textarea(attrs={"rows": 3}),
                             error_messages={"required": "Say why it is rejected: the marketer sees this reason."},
                             help_text="Required. The marketer sees it at the top of the campaign page.")


def _context(model_admin, request, **extra) -> dict:
    return {**model_admin.admin_site.each_context(request), "opts": model_admin.opts, **extra}


def inbox_view(model_admin, request):
    """GET: campaigns awaiting my decision, oldest submission first."""
    if not user_has_role(request.user, Role.APPROVER):
        raise PermissionDenied
    campaigns = list(selectors.campaign_inbox(user=request.user)[:500])
    return render(request, "admin/campaigns/campaign/inbox.html", _context(
        model_admin, request, title="Approval inbox", campaigns=campaigns))


def review_view(model_admin, request, object_id):
    """One campaign of the inbox: its summary, offers with previews, rule, votes, comments, and the
    two decisions that move on to the next campaign."""
    if not user_has_role(request.user, Role.APPROVER):
        raise PermissionDenied
    campaign = selectors.campaign_get(campaign_id=object_id)
    if request.method == "GET":
        services.notification_mark_read_for_campaign(campaign_id=campaign.pk, actor=request.user)
    approve_form, reject_form = ApproveForm(prefix="approve"), RejectForm(prefix="reject")
    if request.method == "POST":
        decision = request.POST.get("decision")
        if decision not in ("approve", "reject"):
            return HttpResponseNotAllowed(["POST"])
        form = ApproveForm(request.POST, prefix="approve") if decision == "approve" else \
            RejectForm(request.POST, prefix="reject")
        if form.is_valid():
            service = services.campaign_approve if decision == "approve" else services.campaign_reject
            try:
                with transaction.atomic():
                    service(campaign_id=campaign.pk, actor=request.user, reason=form.cleaned_data["reason"])
            except ServiceError as exc:
                form.add_error("reason" if exc.field == "reason" else None, plain_message(exc.message))
            else:
                done = "approved" if decision == "approve" else "rejected"
                messages.success(request, f"You {done} “{campaign.name}”.")
                upcoming = selectors.campaign_inbox_next(user=request.user, after_id=campaign.pk)
                if upcoming is None:
                    messages.info(request, "Your inbox is empty: nothing else awaits your decision.")
                    return HttpResponseRedirect(reverse("admin:campaigns_campaign_inbox"))
                return HttpResponseRedirect(reverse("admin:campaigns_campaign_review", args=[upcoming.pk]))
        if decision == "approve":
            approve_form = form
        else:
            reject_form = form
    pending = selectors.campaign_inbox(user=request.user)
    position = list(pending.values_list("pk", flat=True)[:500])
    awaiting_me = campaign.pk in position
    return render(request, "admin/campaigns/campaign/review.html", _context(
        model_admin, request, title=f"Review: {campaign.name}", original=campaign, campaign=campaign,
        header=campaign_header(campaign=campaign), offers=list(selectors.offer_list(campaign_id=campaign.pk)),
        comments=list(selectors.campaign_comments(campaign_id=campaign.pk)), awaiting_me=awaiting_me,
        position=(position.index(campaign.pk) + 1) if awaiting_me else None, remaining=len(position),
        approve_form=approve_form, reject_form=reject_form, next=request.get_full_path(),
        channels=", ".join(Channel(c).label for c in campaign.channels),
        devices=", ".join(DeviceType(d).label for d in campaign.target_device_types) or "any",
        change_url=reverse("admin:campaigns_campaign_change", args=[campaign.pk]),
    ), status=200 if request.method == "GET" else 400)


def comment_view(model_admin, request, object_id):
    """POST a comment to the campaign's thread; back to where it was written."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    campaign = selectors.campaign_get(campaign_id=object_id)
    try:
        services.campaign_comment_add(campaign_id=campaign.pk, actor=request.user, body=request.POST.get("body", ""))
    except ServiceError as exc:
        messages.error(request, plain_message(exc.message))
    else:
        messages.success(request, "Comment posted.")
    back = request.POST.get("next") or ""
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        back = ""
    return HttpResponseRedirect((back or reverse("admin:campaigns_campaign_change", args=[campaign.pk]))
                                + "#campaign-comments")


def notifications_view(model_admin, request):
    """My notifications, newest first; POST marks them read."""
    if request.method == "POST":
        ids = [int(i) for i in request.POST.getlist("notification") if i.isdigit()]
        if request.POST.get("all"):
            ids = list(selectors.notification_list(user=request.user, unread_only=True).values_list("pk", flat=True))
        changed = services.notification_mark_read(notification_ids=ids, actor=request.user)
        messages.success(request, f"Marked {changed} notification{'s' if changed != 1 else ''} read.")
        return HttpResponseRedirect(reverse("admin:campaigns_campaign_notifications"))
    rows = list(selectors.notification_list(user=request.user)[:200])
    return render(request, "admin/campaigns/campaign/notifications.html", _context(
        model_admin, request, title="Notifications", notifications=rows))
