"""Omnichannel reads. Other slices (recommendations, reports) use these, not the models.

Interactions come back as plain :class:`InteractionRow` tuples so readers do not depend on the ORM
model; email analytics as dicts in the shape of docs/RULES.md §5.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q, Sum
from django.utils import timezone

from apps.core.exceptions import NotFound

from .models import Activation, Contact, EmailStats, IngestSource, Interaction, Source


# --- interactions (recommendations input) ----------------------------------------------------------
@dataclass(frozen=True)
class InteractionRow:
    user_id: str  # the user id, or "device:<device id>" for anonymous devices
    item_id: str
    event_type: str
    basket_id: str  # order / basket id, "" when none
    quantity: int
    weight: float
    occurred_at: datetime


_ROW_FIELDS = ("user_id", "item_id", "event_type", "basket_id", "quantity", "weight", "occurred_at")


def interaction_rows(*, user_id: str | None = None, since: datetime | None = None,
                     event_types: Iterable[str] | None = None, item_ids: Iterable[str] | None = None
                     ) -> Iterator[InteractionRow]:
    """Interactions, oldest first, streamed from the database in chunks."""
    qs = Interaction.objects.all()
    if user_id is not None:
        qs = qs.filter(user_id=user_id)
    if since is not None:
        qs = qs.filter(occurred_at__gte=since)
    if event_types is not None:
        qs = qs.filter(event_type__in=list(event_types))
    if item_ids is not None:
        qs = qs.filter(item_id__in=list(item_ids))
    for values in qs.order_by("occurred_at", "id").values_list(*_ROW_FIELDS).iterator(chunk_size=2000):
        yield InteractionRow(*values)


def interaction_user_items(*, user_id: str) -> set[str]:
    """Every item the user interacted with (recommendations exclude them)."""
    return set(Interaction.objects.filter(user_id=user_id).values_list("item_id", flat=True).distinct())


def interaction_user_weights(*, user_id: str) -> dict[str, float]:
    """Item → summed interaction weight for one user, in one query (recommendations score from it)."""
    rows = Interaction.objects.filter(user_id=user_id).values("item_id").annotate(total=Sum("weight"))
    return {row["item_id"]: float(row["total"]) for row in rows.order_by()}


def interaction_baskets(*, since: datetime | None = None) -> dict[str, set[str]]:
    """Items bought together: basket / order id → its item ids (purchases only)."""
    qs = Interaction.objects.filter(event_type="purchase").exclude(basket_id="")
    if since is not None:
        qs = qs.filter(occurred_at__gte=since)
    baskets: dict[str, set[str]] = {}
    for basket_id, item_id in qs.values_list("basket_id", "item_id").iterator(chunk_size=5000):
        baskets.setdefault(basket_id, set()).add(item_id)
    return baskets


# --- contacts and sources ---------------------------------------------------------------------------
def contact_get(*, user_id: str) -> Contact | None:
    return Contact.objects.filter(user_id=user_id).first()


def contact_is_present(*, user_id: str, store_id: str | None = None) -> bool:
    """True while the user's last store visit / check-in keeps them in a store (that store, if given)."""
    qs = Contact.objects.filter(user_id=user_id, present_until__gt=timezone.now()).exclude(present_store_id="")
    if store_id is not None:
        qs = qs.filter(present_store_id=store_id)
    return qs.exists()


def ingest_sources() -> list[dict]:
    """Every source with whether it is accepted and why not (admin switch or INGEST_DISABLED_SOURCES)."""
    from django.conf import settings

    rows = {row.source: row for row in IngestSource.objects.all()}
    out = []
    for source in Source.values:
        row = rows.get(source)
        by_env = source in settings.INGEST_DISABLED_SOURCES
        enabled = (row.enabled if row else True) and not by_env
        out.append({"source": source, "enabled": enabled, "disabled_by_env": by_env,
                    "note": row.note if row else ""})
    return out


# --- activations -------------------------------------------------------------------------------------
def activation_get(*, activation_id: int) -> Activation:
    activation = (Activation.objects.select_related("campaign", "offer").prefetch_related("sends", "transitions")
                  .filter(pk=activation_id).first())
    if activation is None:
        raise NotFound(f"activation {activation_id} does not exist", field="activation_id")
    return activation


# --- email analytics ---------------------------------------------------------------------------------
COUNTERS = ("total_sent", "delivered", "opens", "unique_opens", "clicks", "unique_clicks", "bounces",
            "spam_reports", "unsubscribes", "dropped", "deferred")


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def email_rates(counters: dict) -> dict:
    """docs/RULES.md §5: open_rate = unique_opens / total_sent, click_rate = unique_clicks / total_sent,
    bounce_rate = bounces / total_sent (0.0 when nothing was sent)."""
    sent = counters.get("total_sent") or 0
    return {
        "open_rate": _rate(counters.get("unique_opens") or 0, sent),
        "click_rate": _rate(counters.get("unique_clicks") or 0, sent),
        "bounce_rate": _rate(counters.get("bounces") or 0, sent),
    }


def _stats_dict(stats: EmailStats) -> dict:
    activation = stats.activation
    counters = {name: getattr(stats, name) for name in COUNTERS}
    return {"activation_id": activation.pk, "campaign_id": activation.campaign_id, "offer_id": activation.offer_id,
            "user_id": activation.user_id, "status": activation.status, **counters, **email_rates(counters)}


def email_analytics_for_activation(*, activation_id: int) -> dict:
    stats = EmailStats.objects.select_related("activation").filter(activation_id=activation_id).first()
    if stats is None:
        if not Activation.objects.filter(pk=activation_id).exists():
            raise NotFound(f"activation {activation_id} does not exist", field="activation_id")
        raise NotFound(f"activation {activation_id} has no email analytics (it was not an email activation)",
                       field="activation_id")
    return _stats_dict(stats)


def email_analytics_queryset(*, campaign_id: int | None = None):
    qs = EmailStats.objects.select_related("activation").order_by("-activation__created_at", "-activation_id")
    if campaign_id is not None:
        qs = qs.filter(activation__campaign_id=campaign_id)
    return qs


def email_analytics_list(*, campaign_id: int | None = None, limit: int | None = None) -> list[dict]:
    qs = email_analytics_queryset(campaign_id=campaign_id)
    if limit is not None:
        qs = qs[:limit]
    return [_stats_dict(stats) for stats in qs]


def email_analytics_rows(stats_page: Iterable[EmailStats]) -> list[dict]:
    return [_stats_dict(stats) for stats in stats_page]


def email_analytics_totals(*, campaign_id: int | None = None, activation_filter: Q | None = None) -> dict:
    """Counters summed over the email activations of a campaign (or all), with the rates of the sums."""
    qs = EmailStats.objects.all()
    if campaign_id is not None:
        qs = qs.filter(activation__campaign_id=campaign_id)
    if activation_filter is not None:
        qs = qs.filter(activation_filter)
    sums = qs.aggregate(**{f"sum_{name}": Sum(name) for name in COUNTERS})
    counters = {name: int(sums[f"sum_{name}"] or 0) for name in COUNTERS}
    return {**counters, **email_rates(counters), "activations": qs.count()}


def email_analytics_by_campaign() -> list[dict]:
    """One row per campaign with email activations (plus one for activations without a campaign)."""
    rows = (EmailStats.objects.values("activation__campaign_id", "activation__campaign__name")
            .annotate(**{f"sum_{name}": Sum(name) for name in COUNTERS}).order_by("activation__campaign_id"))
    out = []
    for row in rows:
        counters = {name: int(row[f"sum_{name}"] or 0) for name in COUNTERS}
        out.append({"campaign_id": row["activation__campaign_id"], "campaign_name": row["activation__campaign__name"] or "",
                    **counters, **email_rates(counters)})
    return out

