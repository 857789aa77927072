"""Beat entries of the bidding slice (merged by ``config.celery``).

* The snapshot is rebuilt every 10 s even without a campaign change: a missed announcement or a
  lost Redis key heals on its own (bidders also drop campaigns at their end time by themselves).
* Spend is flushed every 5 s. Budgets stop bidding at once through Redis (see ``apps.bidding.wins``);
  the flush only brings ``Campaign.spent`` up to date and completes spent campaigns.
Each run expires before the next is due, so a stalled worker does not pile up duplicates."""
BEAT_SCHEDULE = {
    "bidding-refresh-offer-snapshot": {
        "task": "bidding.refresh_offer_snapshot",
        "schedule": 10.0,
        "options": {"expires": 9},
    },
    "bidding-flush-spend": {
        "task": "bidding.flush_spend",
        "schedule": 5.0,
        "options": {"expires": 4},
    },
}
