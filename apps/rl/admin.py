"""Decisions in the admin (read-only; every change goes through apps.rl.services): per campaign and
offer the posterior (mean, 95 % interval, trials, successes) with the share of decisions OfferFit
and Thompson served, the decision log, and the off-policy evaluations beside the policy in service."""
from __future__ import annotations

from datetime import timedelta

from django.contrib import admin, messages
from django.utils import timezone

from apps.core import clickhouse as ch
from apps.core.admin_mixins import ReadOnlyAdminMixin, ViewerAdminMixin
from apps.core.exceptions import ServiceError
from apps.core.roles import Role, user_has_role
from apps.rl import selectors, services
from apps.rl.models import Decision, EvaluationRun, Posterior


def _can_view(request) -> bool:
    return user_has_role(request.user, Role.MARKETER, Role.APPROVER)


def _share_text() -> str:
    share = selectors.decision_source_share()
    if not share:
        return "no decisions yet"
    return ", ".join(f"{source} {fraction:.1%}" for source, fraction in sorted(share.items()))


@admin.register(Posterior)
class PosteriorAdmin(ViewerAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("offer_id", "campaign_id", "segment", "mean_shown", "interval_shown", "trials_shown", "successes",
                    "updated_at")
    list_filter = ("segment", "campaign_id")
    search_fields = ("offer_id", "campaign_id", "segment")
    ordering = ("campaign_id", "offer_id", "segment")

    def can_view(self, request) -> bool:
        return _can_view(request)

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}),
                         "title": f"Posteriors (Beta, per offer × channel:tier) — decisions served: {_share_text()}"}
        return super().changelist_view(request, extra_context)

    @admin.display(description="mean")
    def mean_shown(self, obj: Posterior) -> str:
        return f"{selectors.posterior_summary(obj).mean:.4f}"

    @admin.display(description="95 % interval")
    def interval_shown(self, obj: Posterior) -> str:
        summary = selectors.posterior_summary(obj)
        return f"[{summary.low:.4f}, {summary.high:.4f}]"

    @admin.display(description="trials")
    def trials_shown(self, obj: Posterior) -> int:
        return obj.trials


@admin.register(Decision)
class DecisionAdmin(ViewerAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("decision_id", "created_at", "user_id", "channel", "tier", "offer_id", "campaign_id", "source",
                    "propensity_shown", "status", "reward_value", "reward_source", "fallback_reason")
    list_filter = ("source", "status", "channel", "tier", "reward_source", "fallback_reason")
    search_fields = ("=decision_id", "user_id", "offer_id", "campaign_id")
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in Decision._meta.fields]

    def can_view(self, request) -> bool:
        return _can_view(request)

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "title": f"Decision log — served: {_share_text()}"}
        return super().changelist_view(request, extra_context)

    @admin.display(description="propensity", ordering="propensity")
    def propensity_shown(self, obj: Decision) -> str:
        return f"{obj.propensity:.4f}"


def _estimate(obj: EvaluationRun, name: str) -> str:
    for e in obj.estimates:
        if e.get("estimator") == name:
            if e.get("value") is None:
                return "—"
            low, high = e.get("low"), e.get("high")
            interval = f" [{low:.4f}, {high:.4f}]" if low is not None and high is not None else ""
            return f"{e['value']:.4f}{interval}"
    return "—"


@admin.register(EvaluationRun)
class EvaluationRunAdmin(ViewerAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "policy", "start", "end", "decisions", "excluded_shown", "in_service_shown",
                    "ips_shown", "snips_shown", "dr_shown")
    list_filter = ("policy",)
    search_fields = ("policy",)
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in EvaluationRun._meta.fields]
    actions = ["evaluate_standard_policies"]

    def can_view(self, request) -> bool:
        return _can_view(request)

    def has_evaluate_permission(self, request) -> bool:
        return _can_view(request)

    @admin.display(description="excluded", ordering="excluded")
    def excluded_shown(self, obj: EvaluationRun) -> str:
        """Rounds left out (offerfit-on: OfferFit could not rank them), with the reasons."""
        if not obj.excluded:
            return "—"
        reasons = ", ".join(f"{k} {v}" for k, v in (obj.details or {}).get("unranked", {}).items())
        return f"{obj.excluded} ({reasons})" if reasons else str(obj.excluded)

    @admin.display(description="policy in service (mean reward)")
    def in_service_shown(self, obj: EvaluationRun) -> str:
        return "—" if obj.logged_value is None else f"{obj.logged_value:.4f}"

    @admin.display(description="IPS [95 %]")
    def ips_shown(self, obj: EvaluationRun) -> str:
        return _estimate(obj, "ips")

    @admin.display(description="SNIPS [95 %]")
    def snips_shown(self, obj: EvaluationRun) -> str:
        return _estimate(obj, "snips")

    @admin.display(description="DR [95 %]")
    def dr_shown(self, obj: EvaluationRun) -> str:
        return _estimate(obj, "dr")

    @admin.action(description="Evaluate uniform, ε-greedy and Thompson on the last 7 days", permissions=["evaluate"])
    def evaluate_standard_policies(self, request, queryset):
        end = timezone.now()
        start = end - timedelta(days=7)
        try:
            runs = [services.rl_evaluate_policy(policy=spec, start=start, end=end)
                    for spec in ("uniform", "epsilon-greedy:0.1", "thompson:1,1")]
        except ServiceError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        except ch.ClickHouseError as exc:
            self.message_user(request, f"ClickHouse is unavailable: {exc}", messages.ERROR)
            return
        self.message_user(request, f"Evaluated {len(runs)} policies on {runs[0].decisions} closed decisions.",
                          messages.SUCCESS)
