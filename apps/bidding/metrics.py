"""Prometheus metrics of the bid path (names from docs/REQUEST_FLOW.md, '.' -> '_').

With several uvicorn workers ``PROMETHEUS_MULTIPROC_DIR`` is set by ``run_bid_app`` / the Procfile,
and ``apps.core.metrics.render()`` aggregates every worker's samples.
"""
from prometheus_client import Counter, Histogram

LATENCY_BUCKETS_US = (50, 100, 150, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 10000, 20000, 50000, 100000)

TOTAL_LATENCY_US = Histogram(
    "bids_total_latency_us", "Server-side time to answer a bid request (decode to response), microseconds",
    buckets=LATENCY_BUCKETS_US,
)
RESPONDED = Counter("bids_responded", "Bid requests answered with at least one bid")
NO_BID = Counter("bids_no_bid", "Bid requests answered with a no-bid", ["reason"])
FREQUENCY_CAPPED = Counter("bids_frequency_capped", "Bid requests refused because the user reached a frequency cap")
LOYALTY_BOOSTED = Counter("bids_loyalty_boosted", "Bids whose price was raised by the user's loyalty tier")
INVALID = Counter("bids_invalid_requests", "Bid requests refused as malformed", ["entry"])
L1_HIT = Counter("cache_l1_hit", "User state found in the in-process L1 cache")
L1_MISS = Counter("cache_l1_miss", "User state not in the in-process L1 cache")
L2_HIT = Counter("cache_l2_hit", "User profile found in Redis (L2)")
L2_MISS = Counter("cache_l2_miss", "User profile not in Redis (L2): default profile used")
L2_ERRORS = Counter("cache_l2_errors", "L2 reads that failed or timed out (Redis unreachable): default profile used")
WINS = Counter("bids_wins", "Win notices counted (first notice per bid id)")
WIN_DUPLICATES = Counter("bids_win_duplicates", "Win notices ignored because the bid id was already counted")
WIN_REJECTED = Counter("bids_win_rejected", "Win notices refused (bad signature, expired, bad price)", ["reason"])
SNAPSHOT_LOADS = Counter("bids_snapshot_loads", "Offer snapshots loaded by this process")


class _Hot:
    """The per-request updates of the bid path, through ``apps.core.metrics.buffered(always=True)``:
    plain adds off the metrics' locks, in either metrics mode; the ``Bidder`` flushes them every
    ``FLUSH_SECONDS`` and ``/metrics`` before rendering (``apps.core.metrics.render``), so a reader
    lags the requests by at most one flush (a processor without a Bidder: call ``flush_buffered``)."""

    def __init__(self) -> None:
        from functools import partial

        from apps.core.metrics import buffered as buffered_when

        buffered = partial(buffered_when, always=True)

        self.total_latency_us = buffered(TOTAL_LATENCY_US)
        self.responded = buffered(RESPONDED)
        self.l1_hit = buffered(L1_HIT)
        self.l1_miss = buffered(L1_MISS)
        self.l2_hit = buffered(L2_HIT)
        self.l2_miss = buffered(L2_MISS)
        self.loyalty_boosted = buffered(LOYALTY_BOOSTED)
        self.frequency_capped = buffered(FREQUENCY_CAPPED)
        self._buffered = buffered
        self._no_bid: dict = {}

    def no_bid(self, reason: str):
        child = self._no_bid.get(reason)
        if child is None:
            child = self._no_bid[reason] = self._buffered(NO_BID.labels(reason))
        return child


FLUSH_SECONDS = 0.1
_hot: _Hot | None = None


def hot() -> _Hot:
    global _hot
    if _hot is None:
        _hot = _Hot()
    return _hot
