"""``BidProcessor``: the eight steps of docs/RULES.md §1, shared by the HTTP, gRPC and NATS entries.

Pure asyncio Python with no ORM and no blocking call. On an L1 hit the only side effects are
in-memory (metrics, the analytics buffer); on an L1 miss there is one pipelined Redis round trip,
bounded by the request's deadline. Each entry only decodes the request, calls ``process`` and
encodes the outcome.
"""
from __future__ import annotations

import asyncio
import html
import random
import time

import redis.exceptions
import structlog

from apps.analytics.bid_inputs import KIND as BID_INPUTS
from apps.analytics.emitter import Emitter, default_emitter, emit, emit_record
from apps.analytics.emitter import new_event_id as _new_hex_id
from apps.bidding import metrics, openrtb
from apps.bidding.cache import (
    ANONYMOUS,
    TIER_BOOST,
    ZERO_INTERESTS,
    ZERO_LOYALTY,
    L1Cache,
    UserState,
    default_state,
    load_from_redis,
)
from apps.bidding.conf import BidConfig
from apps.bidding.snapshot import DEVICE_BITS, OfferEntry, Snapshot
from apps.bidding.tokens import Signer
from apps.core.countries import normalise_country
from apps.inference.features import (
    DEVICE_COL,
    FEATURE_LAYOUT_VERSION,
    FREQ_COL,
    device_code,
    device_type_from_openrtb,
    frequency_utilisation,
    position_column,
    user_row,
)

log = structlog.get_logger(__name__)

# recommended_bid = max_bid * (MIN_FRACTION + (1 - MIN_FRACTION) * min(predicted_ctr / REFERENCE_CTR, 1))
# An offer pays its max bid for users the model expects to click at >= 5 % (the CTR scale the
# model's offer features use) and at least MIN_FRACTION of it for anyone it targets.
REFERENCE_CTR = 0.05
L2_RETRY_AFTER_SECONDS = 1.0
MAX_REQUEST_SEGMENTS = 64

_perf = time.perf_counter
_wall = time.time
_random = random.random


class BidOutcome:
    """The processor's answer: a response with bids, or a no-bid with its reason and ``nbr`` code."""

    __slots__ = ("response", "bids", "reason", "nbr", "latency_us")

    def __init__(self, response: openrtb.BidResponse, bids: list, reason: str | None, nbr: int | None, latency_us: int):
        self.response = response
        self.bids = bids
        self.reason = reason
        self.nbr = nbr
        self.latency_us = latency_us

    @property
    def is_bid(self) -> bool:
        return bool(self.bids)

    def summary(self) -> list[tuple[str, str, float, str | None]]:
        """``[(impid, adid, price, dealid)]``: the decision, comparable across entries (bid ids differ)."""
        return [(b.impid, b.adid, b.price, b.dealid) for b in self.bids]


def device_from_ua(ua: str | None) -> str:
    """A coarse device type from the user agent, used only when ``device.devicetype`` is absent."""
    if not ua:
        return "unknown"
    u = ua.lower()
    if "ipad" in u or "tablet" in u or ("android" in u and "mobile" not in u):
        return "tablet"
    if "smart-tv" in u or "smarttv" in u or "appletv" in u or "roku" in u or "crkey" in u or "bravia" in u:
        return "ctv"
    if "mobi" in u or "iphone" in u or "ipod" in u or "android" in u:
        return "mobile"
    return "desktop"


def new_uuid() -> str:
    """A random (version 4) UUID string like ``str(uuid.uuid4())``, from the analytics emitter's
    batched random ids (one getrandom syscall per 256 ids)."""
    h = _new_hex_id()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _allows_domain(allowed: list[str], domain: str) -> bool:
    return any(d.lower() == domain for d in allowed)


def micros_from_cpm(price: float) -> int:
    """A CPM price in USD (rounded to 4 decimals) as integer micro-dollars of CPM."""
    return round(price * 1_000_000)


class BidProcessor:
    """One per process, shared by every entry in it (docs/DESIGN.md "Shared BidProcessor")."""

    def __init__(self, *, config: BidConfig, inference, redis=None, emit_event=emit, emit_inputs=emit_record):
        self.config = config
        self.inference = inference
        self.redis = redis
        self.emit = emit_event
        self.emit_inputs = emit_inputs  # the serve-time inputs of each bid (apps.analytics.bid_inputs)
        # the default emitter's bound methods rather than the module functions that forward to them
        # (one call and one re-packed keyword dict less per event)
        self._emit = default_emitter().emit if emit_event is emit else emit_event
        self._emit_inputs = default_emitter().emit_record if emit_inputs is emit_record else emit_inputs
        # Both to one Emitter (the workers' case): a bid's events and inputs go as one served record per
        # request (Emitter.emit_served), turned at once into the same rows (events.served_rows) and
        # encoded — one buffer entry instead of one per bid plus one, no keyword dict per bid.
        emitter = getattr(self._emit, "__self__", None)
        self._emit_served = (emitter.emit_served if isinstance(emitter, Emitter) and self._emit == emitter.emit
                             and self._emit_inputs == emitter.emit_record else None)
        self.cache = L1Cache(max_entries=config.l1_max_entries, ttl_seconds=config.l1_ttl_seconds)
        self.snapshot: Snapshot | None = None
        self.exhausted: set[int] = set()
        self.exhausted_offers: frozenset[int] = frozenset()
        self._l2_retry_at = 0.0
        self._l2_error_logged_at = 0.0
        self._win_base = f"{config.public_base_url}/v1/win?t="
        self._click_base = f"{config.public_base_url}/v1/click?t="
        self._signer = Signer(config.win_secret)
        # per snapshot entry: None, or the banner markup around its click token (see _bid_templates)
        self._templates: list[tuple[str, str] | None] = []
        self._anonymous = default_state(ANONYMOUS)
        # the profile part of the default profile's feature row (read-only: each request copies it)
        self._default_base = user_row(interests=ZERO_INTERESTS, segments=(), loyalty=ZERO_LOYALTY, recency=0.0,
                                      impressions_1h=0, max_per_hour=1, device_type=None)
        self._default_base.setflags(write=False)
        self._hot = metrics.hot()
        # position column for up to batch_size ranked candidates (a request takes the first n): made once
        positions = position_column(max(1, config.batch_size), max(1, config.batch_size))
        positions.setflags(write=False)
        # one read-only view per candidate count: the provider caches each one's layer-1 term by identity
        self._positions = tuple(positions[:n] for n in range(positions.shape[0] + 1))
        # what every logged row shares: layout version, and the divisors of columns 137 and 139
        self._layout = (FEATURE_LAYOUT_VERSION, config.freq_max_per_hour, positions.shape[0])

    # --- state fed by the runtime (snapshot loads, announcements) --------------------------------
    @property
    def ready(self) -> bool:
        return self.snapshot is not None and bool(getattr(self.inference, "ready", False))

    def set_snapshot(self, snapshot: Snapshot) -> None:
        current = self.snapshot
        if current is not None and snapshot.version < current.version:
            return
        self._templates = self._bid_templates(snapshot)
        self.snapshot = snapshot
        self.exhausted = set(snapshot.exhausted)
        self.exhausted_offers = snapshot.offers_of(self.exhausted)
        metrics.SNAPSHOT_LOADS.inc()

    def mark_exhausted(self, campaign_id: int) -> None:
        """Stop bidding for a campaign whose budget ran out (announced by the win handler)."""
        if campaign_id in self.exhausted:
            return
        self.exhausted.add(campaign_id)
        if self.snapshot is not None:
            self.exhausted_offers = self.snapshot.offers_of(self.exhausted)

    # --- the hot path ----------------------------------------------------------------------------
    async def process(self, request: openrtb.BidRequest, *, started: float | None = None,
                      exchange: str = "open") -> BidOutcome:
        """Answer one decoded bid request. ``started`` is ``time.perf_counter()`` when the request
        arrived (defaults to now); the deadline counts from it."""
        t0 = started if started is not None else _perf()
        cfg = self.config
        tmax = request.tmax or cfg.tmax_cap_ms
        budget_ms = (tmax if tmax < cfg.tmax_cap_ms else cfg.tmax_cap_ms) - cfg.network_buffer_ms
        deadline = t0 + budget_ms / 1000.0
        if cfg.request_sample_rate and _random() < cfg.request_sample_rate:
            self._emit("bid_request", request_id=request.id, extra={"sample_rate": cfg.request_sample_rate,
                                                                   "imps": len(request.imp), "exchange": exchange})
        if budget_ms <= 0:
            return self._no_bid(request, t0, "deadline", openrtb.NBR_TECHNICAL_ERROR)
        snap, templates = self.snapshot, self._templates  # set together by set_snapshot: they match
        if snap is None or not self.inference.ready:
            return self._no_bid(request, t0, "not_ready", openrtb.NBR_TECHNICAL_ERROR)
        seat = cfg.seat
        if (request.wseat and seat not in request.wseat) or (request.bseat and seat in request.bseat):
            return self._no_bid(request, t0, "seat_blocked", openrtb.NBR_UNKNOWN)
        if request.cur and "USD" not in request.cur:
            return self._no_bid(request, t0, "currency", openrtb.NBR_UNKNOWN)

        # Step 1: user id. COPPA traffic is never personalised.
        user = request.user
        coppa = request.regs is not None and request.regs.coppa == 1
        user_id = ANONYMOUS
        if user is not None and not coppa:
            user_id = user.id or user.buyeruid or ANONYMOUS
        now = _wall()

        # Step 2: profile (L1 -> L2 -> default).
        hot = self._hot
        if user_id == ANONYMOUS:
            state = self._anonymous
        else:
            state = self.cache.get(user_id, now)
            if state is None:
                hot.l1_miss.inc()
                state = await self._load(user_id, now, deadline)
            else:
                hot.l1_hit.inc()

        # Step 3: frequency cap (won impressions, kept in memory by announcements).
        impressions_1h = 0
        if state.wins:
            impressions_1h, impressions_24h = state.counts(now)
            if impressions_1h >= cfg.freq_max_per_hour or impressions_24h >= cfg.freq_max_per_day:
                self._hot.frequency_capped.inc()
                return self._no_bid(request, t0, "frequency_cap", openrtb.NBR_DAILY_USER_CAP, user_id=user_id)

        # Step 4: candidates from the snapshot.
        device = request.device
        device_type = "unknown"
        country = None
        if device is not None:
            device_type = device_type_from_openrtb(device.devicetype)
            if device.devicetype is None:
                device_type = device_from_ua(device.ua)
            if device.geo is not None and device.geo.country:
                country = normalise_country(device.geo.country)
        if country is None and user is not None and user.geo is not None and user.geo.country:
            country = normalise_country(user.geo.country)
        segments = state.segments
        if user is not None and user.data and not coppa:
            extra = _request_segments(user.data)
            if extra:
                segments = tuple(set(segments) | extra)
        candidates, imp_fits = self._candidates(request, snap, state, now, device_type, country, segments)
        if not candidates:
            return self._no_bid(request, t0, "no_candidates", openrtb.NBR_UNKNOWN, user_id=user_id)
        if _perf() >= deadline:
            return self._no_bid(request, t0, "deadline", openrtb.NBR_TECHNICAL_ERROR, user_id=user_id)

        # Step 5: features and inference (offer features were precomputed with the snapshot).
        n = len(candidates)
        if segments is state.segments:
            # The profile part of the row only changes with the profile: built once per L1 entry.
            base = state.base_row
            if base is None:
                if (state.interests is ZERO_INTERESTS and state.loyalty is ZERO_LOYALTY and not segments
                        and state.recency == 0.0):
                    base = self._default_base  # the default profile's (every unknown user's): built once
                else:
                    base = user_row(interests=state.interests, segments=segments, loyalty=state.loyalty,
                                    recency=state.recency, impressions_1h=0, max_per_hour=1, device_type=None)
                state.base_row = base
            row = base.copy()
            row[FREQ_COL] = frequency_utilisation(impressions_1h, cfg.freq_max_per_hour)
            row[DEVICE_COL] = device_code(device_type)
        else:
            row = user_row(interests=state.interests, segments=segments, loyalty=state.loyalty, recency=state.recency,
                           impressions_1h=impressions_1h, max_per_hour=cfg.freq_max_per_hour, device_type=device_type)
        # the provider keeps each offer's share of layer 1 per (snapshot, model): only rows are gathered
        # order: candidate positions best score first; scores and CTRs as Python floats (the float32 values)
        order, score, ctrs = await self.inference.rank_indexed_async(row, snap.features, candidates, self._positions[n])
        model_version = self.inference.model_version  # no await since scoring: the weights that scored
        if _perf() >= deadline:
            return self._no_bid(request, t0, "deadline", openrtb.NBR_TECHNICAL_ERROR, user_id=user_id)

        # Step 6: recommended bid and loyalty boost, capped at the offer's max bid. Priced only for the
        # candidates step 7 looks at (usually one per impression), in float64 like numpy would.
        entries = snap.entries
        f = cfg.min_bid_fraction
        boost = TIER_BOOST.get(state.tier, 1.0)

        # Step 7: winner per impression: highest score among fitting candidates at or above the floor.
        used: set[int] = set()
        winners: list[tuple[openrtb.Imp, int, float, str | None]] = []
        for imp_index, imp in enumerate(request.imp):
            fits = imp_fits[imp_index]  # the snapshot indexes that fit this impression; None: every candidate
            if fits is not None and not fits:
                continue
            deals, open_auction = _imp_deals(imp, seat)
            for pos in order:
                if pos in used or (fits is not None and candidates[pos] not in fits):
                    continue
                entry = entries[candidates[pos]]
                # the price, inline (a nested function would make entries, candidates, ctrs, f and boost
                # closure cells of process, each created per request and read through them)
                max_bid = entry.max_bid
                ratio = ctrs[pos] / REFERENCE_CTR
                if ratio > 1.0:
                    ratio = 1.0
                price = max_bid * (f + (1.0 - f) * ratio) * boost
                price = round(price if price < max_bid else max_bid, 4)
                dealid = None
                if deals:
                    for deal in deals:
                        if price >= deal.bidfloor and (not deal.wadomain or _allows_domain(deal.wadomain, entry.adomain)):
                            dealid = deal.id
                            break
                if dealid is None and (not open_auction or price < imp.bidfloor or price <= 0.0):
                    continue
                used.add(pos)
                winners.append((imp, pos, price, dealid))
                break
        if not winners:
            return self._no_bid(request, t0, "below_floor", openrtb.NBR_UNKNOWN, user_id=user_id)

        # Step 8: response.
        bids = []
        issued = int(now)
        per_bid = []  # serve-time inputs of each bid (below)
        for imp, pos, price, dealid in winners:
            entry = entries[candidates[pos]]
            bid = self._bid(request, imp, entry, templates[entry.index], price, dealid, user_id, issued)
            bids.append(bid)
            banner = imp.banner
            per_bid.append((bid.id, imp.id, imp.tagid, banner.pos if banner is not None else None, entry.serve_inputs,
                            price, pos, ctrs[pos], score[pos]))
        if boost > 1.0:
            hot.loyalty_boosted.inc(len(bids))
        response = openrtb.BidResponse(
            id=request.id, seatbid=[openrtb.SeatBid(bid=bids, seat=seat)], bidid=new_uuid(), cur="USD"
        )
        latency_us = int((_perf() - t0) * 1e6)
        hot.total_latency_us.observe(latency_us)
        hot.responded.inc()
        emit_served = self._emit_served
        if emit_served is None:
            emit_event = self._emit
            for b in bids:
                emit_event("bid_response", request_id=request.id, user_id=user_id, campaign_id=b.cid,
                           offer_id=b.adid, bid_id=b.id, imp_id=b.impid, price=b.price, latency_us=latency_us,
                           device_type=device_type, country=country, tier=state.tier)
        # Serve-time inputs (apps.analytics.bid_inputs): immutable atomic values only (nothing the garbage
        # collector has to walk while they wait in the buffer), converted into rows by the flusher (or,
        # served, by the emitter at once)
        site, app = request.site, request.app
        source = site if site is not None else app
        publisher = source.publisher if source is not None else None
        ctx = (request.id, exchange, user_id, state.tier, state.interests, segments, state.loyalty, state.recency,
               impressions_1h, device_type, country, snap.version, model_version, now, self._layout,
               site.id if site is not None else None, site.domain if site is not None else None,
               app.id if app is not None else None, app.bundle if app is not None else None,
               publisher.id if publisher is not None else None)
        if emit_served is not None:  # the bid_response events (one per bid) and the inputs, one record
            emit_served((ctx, tuple(per_bid), latency_us))
        else:
            self._emit_inputs(BID_INPUTS, (ctx, per_bid))  # one record per request, one row per bid
        return BidOutcome(response, bids, None, None, latency_us)

    # --- helpers ---------------------------------------------------------------------------------
    def _bid_templates(self, snapshot: Snapshot) -> list[tuple[str, str] | None]:
        """Per entry, a banner's markup as the two strings around its click token: the click link is
        ``html.escape(click_base + token)``, and a token (base64url, ".") has nothing to escape."""
        head = f'<a href="{html.escape(self._click_base)}'
        return [(head, f'" target="_blank" rel="noopener">{e.row.markup}</a>') if e.format == "banner" else None
                for e in snapshot.entries]

    def _bid(self, request, imp, entry: OfferEntry, template: tuple[str, str] | None, price: float, dealid,
             user_id: str, issued: int) -> openrtb.Bid:
        bid_id = new_uuid()
        signer = self._signer
        token = signer.win(bid_id, request.id, imp.id, entry.campaign_id, entry.offer_id, user_id,
                           round(price * 1_000_000), issued)  # micros_from_cpm
        if template is None:
            markup = entry.row.markup
        else:
            markup = template[0] + signer.click(bid_id, entry.campaign_id, entry.offer_id, user_id,
                                                entry.row.landing_url, issued) + template[1]
        w, h = entry.size
        return openrtb.Bid(
            id=bid_id, impid=imp.id, price=price, adid=entry.adid,
            nurl=self._win_base + token + "&price=${AUCTION_PRICE}",
            adm=markup, adomain=entry.adomain_list, cid=entry.cid, crid=entry.crid, cat=entry.cat_list,
            dealid=dealid, w=w, h=h, mtype=entry.mtype,
        )

    def _candidates(self, request, snap: Snapshot, state: UserState, now: float, device_type: str,
                    country: str | None, segments) -> tuple[list[int], list[set[int] | None]]:
        """Offers that fit at least one impression and pass targeting, blocks, budget and caps —
        best priority first, at most ``BID_BATCH_SIZE``; plus, per impression, the snapshot indexes of
        the offers that fit it (``None`` for a request's only impression: all of them do)."""
        imps = request.imp
        per_imp: list[list[int]] = []
        if len(imps) == 1:  # the usual case: no union to build
            fitting = _offers_for_imp(imps[0], snap)
            if not fitting:
                return [], []
            per_imp.append(fitting)
            # Set algebra in C for what depends on the request only; a Python loop only for what
            # depends on the user (segment targeting, per-campaign caps).
            pool = snap.eligible(DEVICE_BITS.get(device_type, 0), country, now).intersection(fitting)
        else:
            union: set[int] = set()
            for imp in imps:
                fitting = _offers_for_imp(imp, snap)
                per_imp.append(fitting)
                union.update(fitting)
            if not union:
                return [], []
            pool = union & snap.eligible(DEVICE_BITS.get(device_type, 0), country, now)
        if request.bcat or request.badv:
            pool -= snap.blocked(tuple(request.bcat or ()), tuple(request.badv or ()))
        if self.exhausted_offers:
            pool -= self.exhausted_offers
        ordered = sorted(pool)
        caps = state.campaign_counts(now) if state.wins else None
        if caps or (snap.segment_targeted and not snap.segment_targeted.isdisjoint(pool)):
            segment_set = frozenset(segments) if segments else frozenset()
            entries = snap.entries
            kept = []
            for i in ordered:
                e = entries[i]
                if e.segments is not None and e.segments.isdisjoint(segment_set):
                    continue
                if caps:
                    seen = caps.get(e.campaign_id)
                    if seen is not None and (seen[0] >= e.max_per_hour or seen[1] >= e.max_per_day):
                        continue
                kept.append(i)
            ordered = kept
        chosen = ordered[: self.config.batch_size]
        if not chosen:
            return [], []
        if len(per_imp) == 1:  # one impression: every candidate came from its fitting offers
            return chosen, [None]
        # per impression the snapshot indexes that fit it (a set built in C, no position map)
        return chosen, [set(fitting) for fitting in per_imp]

    async def _load(self, user_id: str, now: float, deadline: float) -> UserState:
        """L2: one pipelined Redis read bounded by the deadline; the default profile if Redis fails."""
        client = self.redis
        t = _perf()
        if client is None or t < self._l2_retry_at:
            return default_state(user_id)
        remaining = deadline - t
        if remaining <= 0:
            return default_state(user_id)
        cache = self.cache
        cache.begin_load(user_id)
        try:
            # bounded in this task rather than by wait_for: the command is written now (wait_for wraps it
            # in a new task that starts one event-loop turn later, behind every request ready meanwhile)
            # and the reply resumes this task directly
            state = await load_from_redis(client, user_id, now, timeout=remaining)
        except (redis.exceptions.RedisError, OSError, asyncio.TimeoutError) as exc:
            cache.finish_load(user_id, None)
            metrics.L2_ERRORS.inc()
            # Unreachable Redis: skip L2 for a moment instead of paying a failed connect per request.
            # A timeout is not enough to say so (a busy event loop also makes reads late).
            if isinstance(exc, (redis.exceptions.ConnectionError, OSError)) and not isinstance(exc, asyncio.TimeoutError):
                self._l2_retry_at = _perf() + L2_RETRY_AFTER_SECONDS
            if t - self._l2_error_logged_at > 10.0:
                self._l2_error_logged_at = t
                log.warning("bid_l2_unavailable", error=f"{type(exc).__name__}: {exc}", fallback="default_profile")
            return default_state(user_id)
        (self._hot.l2_hit if state.known else self._hot.l2_miss).inc()
        cache.finish_load(user_id, state)
        return state

    def _no_bid(self, request, t0: float, reason: str, nbr: int, *, user_id: str | None = None) -> BidOutcome:
        latency_us = int((_perf() - t0) * 1e6)
        hot = self._hot
        hot.total_latency_us.observe(latency_us)
        hot.no_bid(reason).inc()
        self._emit("no_bid", request_id=request.id, user_id=user_id, reason=reason, latency_us=latency_us)
        response = openrtb.BidResponse(id=request.id, seatbid=[], nbr=nbr, ext={"reason": reason})
        return BidOutcome(response, [], reason, nbr, latency_us)


def _request_segments(data) -> set[int]:
    """Numeric segment ids the exchange sent in ``user.data[].segment[]`` (others are not ours)."""
    out: set[int] = set()
    for item in data:
        if not item.segment:
            continue
        for seg in item.segment:
            sid = seg.id
            # isascii first: str.isdigit() also accepts digits int() refuses ("²", "①"); those ids are not ours
            if sid and sid.isascii() and sid.isdigit() and len(sid) <= 18:
                out.add(int(sid))
                if len(out) >= MAX_REQUEST_SEGMENTS:
                    return out
    return out


def _offers_for_imp(imp: openrtb.Imp, snap: Snapshot) -> list[int]:
    """Snapshot indexes of the offers whose creative fits this impression (banner size or ``format``
    list, video player size, native); none when the floor is in a currency we do not bid in."""
    if imp.bidfloorcur != "USD" and imp.bidfloor > 0:
        return []
    out: list[int] = []
    banner = imp.banner
    if banner is not None:
        by_size = snap.banners_by_size
        if banner.w and banner.h:
            out.extend(by_size.get((banner.w, banner.h), ()))
        if banner.format:
            for fmt in banner.format:
                if fmt.w and fmt.h and (fmt.w != banner.w or fmt.h != banner.h):
                    out.extend(by_size.get((fmt.w, fmt.h), ()))
    video = imp.video
    if video is not None and snap.videos:
        entries = snap.entries
        for i in snap.videos:
            w, h = entries[i].size
            # A player that states its size takes creatives of that size (or the same shape, scaled).
            if not video.w or not video.h or (w, h) == (video.w, video.h) or w * video.h == h * video.w:
                out.append(i)
    if imp.native is not None and snap.natives:
        out.extend(snap.natives)
    return out


def _imp_deals(imp: openrtb.Imp, seat: str) -> tuple[list[openrtb.Deal], bool]:
    """The deals we may bid on (no seat list, or ours in it; USD floors) and whether the open
    auction is allowed too (``pmp.private_auction`` = 0)."""
    pmp = imp.pmp
    if pmp is None:
        return [], True
    deals = []
    for deal in pmp.deals or ():
        if deal.wseat and seat not in deal.wseat:
            continue
        if deal.bidfloorcur != "USD" and deal.bidfloor > 0:
            continue
        deals.append(deal)
    return deals, pmp.private_auction != 1
