"""``rl_decide``: choose one offer among candidates — OfferFit when it answers in budget, else
Thompson sampling over the (offer, channel × tier) Beta posteriors — and log the choice with its
propensity (Postgres row to close it by, ClickHouse decision log for off-policy evaluation)."""
from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

import orjson
import psycopg
import structlog
from django.conf import settings
from django.db import connection, transaction
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper
from django.utils import timezone
from prometheus_client import Counter, Histogram

from apps.core.channels import Channel
from apps.core.exceptions import ServiceError, Unprocessable
from apps.rl import candidates as candidates_cache
from apps.rl import offerfit, posteriors, thompson
from apps.rl.models import Decision, DecisionSource

from .log import log_record, log_row

log = structlog.get_logger("apps.rl.services")
_tables = thompson.PropensityTable()

TIERS = ("green", "gold", "reserve")
_CHANNELS = frozenset(Channel.values) - {Channel.ALL.value}  # Channel.values builds a list per call
MAX_CANDIDATES = candidates_cache.MAX_CANDIDATES  # Personalizer's limit on actions per rank call
ID_MAX = 64

DECISIONS = Counter("rl_decisions_total", "Decisions made", ["source"])
FALLBACKS = Counter("rl_offerfit_fallbacks_total", "Decisions Thompson answered although OfferFit is configured", ["reason"])
DECIDE_SECONDS = Histogram("rl_decide_seconds", "Time to choose (posteriors read, draws, propensity)",
                           buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1))


@dataclass(frozen=True)
class DecisionResult:
    decision_id: str
    offer_id: str
    campaign_id: str | None
    propensity: float
    source: str
    segment: str
    tier: str
    candidates: list[str]
    expires_at: str
    fallback_reason: str = ""
    probabilities: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _clean_candidates(candidates: Any) -> list[str]:
    if not isinstance(candidates, list) or not candidates:
        raise ServiceError("candidates must be a non-empty list of offer ids.", field="candidates")
    if len(candidates) > MAX_CANDIDATES:
        raise ServiceError(f"At most {MAX_CANDIDATES} candidates per decision, got {len(candidates)}.", field="candidates")
    if all(type(c) is str for c in candidates):  # the usual shape: one pass, no per-item checks below
        out = [c.strip() for c in candidates]
        if all(0 < len(c) <= ID_MAX for c in out) and len(set(out)) == len(out):
            return out
    out = []
    for i, c in enumerate(candidates):
        if isinstance(c, bool) or not isinstance(c, (str, int)) or not str(c).strip() or len(str(c).strip()) > ID_MAX:
            raise ServiceError(f"candidates[{i}] must be an offer id (a string of 1..{ID_MAX} characters).",
                               field="candidates")
        out.append(str(c).strip())
    if len(set(out)) != len(out):
        raise ServiceError("candidates must not repeat an offer id.", field="candidates")
    return out


def rl_sync_catalog() -> int:
    """Push every live offer to OfferFit as an action with its features; returns how many (0 when off)."""
    from apps.campaigns import selectors as campaigns

    if not offerfit.is_configured():
        return 0
    actions = [{"id": str(o.pk), "features": candidates_cache.offer_features(o)}
               for campaign in campaigns.campaign_list_biddable() for o in campaign.offers.all()]
    return offerfit.sync_catalog(actions=actions)


def _tier_for(user_id: str, context: dict[str, Any]) -> str:
    tier = context.get("tier")
    if tier is not None:
        if tier not in TIERS:
            raise ServiceError(f"Unknown tier {tier!r}; choose one of: {', '.join(TIERS)}.", field="context.tier")
        return str(tier)
    from apps.loyalty import selectors as loyalty

    account = loyalty.loyalty_account_find(user_id=user_id)
    return str(account.tier) if account else "green"


def _clean_context(context: Any) -> tuple[dict[str, Any], bytes]:
    context = dict(context or {})
    try:
        return context, orjson.dumps(context)
    except orjson.JSONEncodeError as exc:
        raise ServiceError(f"context cannot be logged as JSON: {exc}", field="context") from exc


# One statement, in autocommit a transaction of its own: one round trip, committed durably (the WAL
# flushed) before the answer leaves — a decision the caller holds can always be closed by its reward.
# Bound server-side (no ORM, no client-side quoting), so psycopg prepares it after its fifth use on
# a connection; through Django's cursor wrapper, so it is counted and logged like any query.
_INSERT = (
    f"INSERT INTO {Decision._meta.db_table} (decision_id, user_id, channel, tier, segment, offer_id, campaign_id,"
    " propensity, source, offerfit_event_id, fallback_reason, candidates, probabilities, context, status,"
    " reward_source, created_at, expires_at)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s::jsonb, 'open', '', %s, %s)"
)


def _insert_decision(params: tuple) -> None:
    """The decision row, inside the caller's transaction when there is one (the activation cascade)."""
    connection.ensure_connection()
    raw = psycopg.Cursor(connection.connection)
    cursor = CursorDebugWrapper(raw, connection) if connection.queries_logged else CursorWrapper(raw, connection)
    with cursor:
        cursor.execute(_INSERT, params)


def rl_decide(*, user_id: str, channel: str, context: dict[str, Any] | None = None,
              candidates: list[Any] | None = None) -> DecisionResult:
    """Choose an offer for ``user_id`` on ``channel``. ``candidates`` defaults to the live offers for
    the channel. OfferFit answers when configured, in budget and sane; otherwise Thompson sampling,
    never an error to the caller. The decision stays open until its first reward or its wait time.

    Round trips when OfferFit is off: one Redis pipeline (the posteriors, and the offers' generation
    when the candidates are the cached live offers) and one durable INSERT."""
    if not isinstance(user_id, str) or not user_id.strip() or len(user_id.strip()) > 128:
        raise ServiceError("user_id is required (at most 128 characters).", field="user_id")
    user_id = user_id.strip()
    if not isinstance(channel, str) or channel not in _CHANNELS:
        raise ServiceError(f"Unknown channel {channel!r}.", field="channel")
    channel = str(channel)  # a TextChoices member (the cascade's) as its plain value
    context, context_json = _clean_context(context)
    live: candidates_cache.LiveOffers | None = None
    if candidates is None:
        live = candidates_cache.cached(channel)
        if live is None or not live.ids or offerfit.is_configured():
            live = candidates_cache.live_offers(channel)  # checked against the generation first
        if not live.ids:
            raise Unprocessable(f"No live offers run on channel {channel!r}; pass candidates.", field="candidates")
        offer_ids = live.ids
    else:
        offer_ids = _clean_candidates(candidates)
    tier = _tier_for(user_id, context)
    segment = posteriors.segment_of(channel=channel, tier=tier)
    decision_id = uuid.uuid4()
    started = time.perf_counter()

    source, fallback_reason, event_id = DecisionSource.THOMPSON, "", ""
    probabilities: list[float]
    try:
        features = live.features if live is not None else {}
        ranking = offerfit.rank(event_id=str(decision_id), context={**context, "channel": channel, "tier": tier},
                                candidates=[{"id": o, "features": features.get(o)} for o in offer_ids])
        if ranking.offer_id not in offer_ids:
            raise offerfit.Fallback("bad_answer", f"offer {ranking.offer_id!r} is not a candidate")
        chosen, propensity, event_id = ranking.offer_id, ranking.propensity, ranking.event_id
        source = DecisionSource.OFFERFIT
        # OfferFit's whole distribution (what offerfit-on evaluation reads back); the chosen one's is the propensity
        probabilities = [ranking.probabilities.get(o, 0.0) for o in offer_ids]
    except offerfit.Fallback as fallback:
        fallback_reason = fallback.reason
        if fallback.reason != "off":
            FALLBACKS.labels(fallback.reason).inc()
            log.info("rl_offerfit_fallback", reason=fallback.reason, error=str(fallback))
        check = candidates_cache.GENERATION_KEY if live is not None else None
        successes, failures, generation = posteriors.posterior_read(segment=segment, offer_ids=offer_ids,
                                                                    also_get=check)
        if live is not None and not candidates_cache.still_current(live, generation):
            live = candidates_cache.live_offers(channel)  # an offer changed since the list was read
            if not live.ids:
                raise Unprocessable(f"No live offers run on channel {channel!r}; pass candidates.",
                                    field="candidates") from None
            offer_ids = live.ids
            successes, failures = posteriors.posterior_counts(segment=segment, offer_ids=offer_ids)
        choice = _tables.choose(successes, failures, arms=(segment, *offer_ids), prior_alpha=settings.RL_PRIOR_ALPHA,
                                prior_beta=settings.RL_PRIOR_BETA, draws=settings.RL_PROPENSITY_DRAWS)
        chosen, propensity = offer_ids[choice.index], choice.propensity
        probabilities = choice.probabilities.tolist()
    DECIDE_SECONDS.observe(time.perf_counter() - started)

    campaign_id = live.campaigns.get(chosen, "") if live is not None else ""
    now = timezone.now()
    expires_at = now + timedelta(seconds=settings.RL_REWARD_WAIT_SECONDS)
    candidates_json, probabilities_json = orjson.dumps(offer_ids), orjson.dumps(probabilities)
    _insert_decision((decision_id, user_id, channel, tier, segment, chosen, campaign_id, propensity, str(source),
                      event_id, fallback_reason, candidates_json.decode(), probabilities_json.decode(),
                      context_json.decode(), now, expires_at))
    record = log_row(decision_id=decision_id, created_at=now, user_id=user_id, channel=channel, tier=tier,
                     segment=segment, source=str(source), offer_id=chosen, campaign_id=campaign_id,
                     propensity=propensity, candidates=offer_ids, probabilities=probabilities,
                     context_json=context_json.decode())
    transaction.on_commit(lambda: log_record(record))  # at once in autocommit; after the caller's commit otherwise
    DECISIONS.labels(source).inc()
    return DecisionResult(
        decision_id=str(decision_id), offer_id=chosen, campaign_id=campaign_id or None, propensity=propensity,
        source=str(source), segment=segment, tier=tier, candidates=offer_ids, expires_at=expires_at.isoformat(),
        fallback_reason=fallback_reason,
        probabilities={o: p for o, p in zip(offer_ids, probabilities, strict=True) if p > 0},
    )
