"""Decisions, their Beta posteriors and off-policy evaluation runs (docs/RULES.md §8)."""
from __future__ import annotations

from django.db import models


class DecisionSource(models.TextChoices):
    OFFERFIT = "offerfit", "OfferFit"
    THOMPSON = "thompson", "Thompson sampling"


class DecisionStatus(models.TextChoices):
    OPEN = "open", "Open (awaiting its reward)"
    SUCCESS = "success", "Closed: success (reward > 0)"
    FAILURE = "failure", "Closed: failure (reward ≤ 0 or none within the wait time)"


class RewardSource(models.TextChoices):
    API = "api", "POST /v1/decisions/{id}/reward"
    LOYALTY = "loyalty", "Loyalty reward signal"
    EMAIL = "email", "Email click"
    EXPIRY = "expiry", "No reward within the wait time"


class Posterior(models.Model):
    """Beta(1 + successes, 1 + failures) for one offer in one segment (channel × loyalty tier).

    Changed only by one atomic upsert per closed decision (``successes = successes + 1``), so the
    counts stay exact under concurrent rewards; ``trials`` only grows, so it versions the Redis copy."""

    offer_id = models.CharField(max_length=64)
    segment = models.CharField(max_length=64, help_text="channel:tier, e.g. email:gold")
    campaign_id = models.CharField(max_length=64, blank=True)
    successes = models.BigIntegerField(default=0)
    failures = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["segment", "offer_id"]
        constraints = [
            models.UniqueConstraint(fields=["offer_id", "segment"], name="rl_one_posterior_per_arm"),
            models.CheckConstraint(condition=models.Q(successes__gte=0, failures__gte=0), name="rl_posterior_counts_nonneg"),
        ]

    @property
    def trials(self) -> int:
        return self.successes + self.failures

    def __str__(self) -> str:
        return f"{self.offer_id} @ {self.segment}: {self.successes}/{self.trials}"


class Decision(models.Model):
    """One choice among candidates, with the propensity it was made with, closed by its first reward."""

    decision_id = models.UUIDField(unique=True)
    user_id = models.CharField(max_length=128)
    channel = models.CharField(max_length=20)
    tier = models.CharField(max_length=10)
    segment = models.CharField(max_length=64)
    offer_id = models.CharField(max_length=64)
    campaign_id = models.CharField(max_length=64, blank=True)
    propensity = models.FloatField()
    source = models.CharField(max_length=10, choices=DecisionSource.choices)
    offerfit_event_id = models.CharField(max_length=100, blank=True)
    fallback_reason = models.CharField(max_length=40, blank=True,
                                       help_text="Why Thompson answered: off, timeout, error, breaker_open, bad_answer")
    candidates = models.JSONField(help_text="The offer ids chosen among, in order")
    probabilities = models.JSONField(default=list, blank=True,
                                     help_text="Each candidate's estimated probability of being chosen (same order)")
    context = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=DecisionStatus.choices, default=DecisionStatus.OPEN)
    reward_value = models.FloatField(null=True, blank=True, help_text="The raw value of the reward that closed it")
    reward_source = models.CharField(max_length=10, choices=RewardSource.choices, blank=True)
    reward_ref = models.CharField(max_length=100, null=True, blank=True, unique=True,
                                  help_text="The feedback event that closed it (one event closes one decision)")
    created_at = models.DateTimeField(db_index=True)
    expires_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["user_id", "offer_id", "-created_at"], name="rl_decision_user_offer",
                         condition=models.Q(status="open")),
            models.Index(fields=["expires_at"], name="rl_decision_open_expiry", condition=models.Q(status="open")),
        ]

    def __str__(self) -> str:
        return f"decision {self.decision_id} → {self.offer_id} ({self.source}, {self.status})"


class EvaluationRun(models.Model):
    """One ``evaluate_policy`` result: a policy's estimated value on the logged decisions of a range."""

    policy = models.CharField(max_length=100)
    start = models.DateTimeField()
    end = models.DateTimeField()
    decisions = models.PositiveIntegerField()
    logged_value = models.FloatField(null=True, blank=True, help_text="Mean reward of the policy in service")
    estimates = models.JSONField(help_text='[{"estimator", "value", "low", "high", "n"}]')
    excluded = models.PositiveIntegerField(
        default=0, help_text="Closed decisions left out: the policy has no probability for them (offerfit-on: "
                             "rounds OfferFit could not rank)")
    details = models.JSONField(
        default=dict, blank=True,
        help_text='offerfit-on: {"offerfit_logged", "offerfit_logged_partial", "ranked", "unranked": {reason: n}}')
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.policy} on {self.start:%Y-%m-%d}..{self.end:%Y-%m-%d}"
