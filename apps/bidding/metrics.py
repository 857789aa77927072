"""Prometheus metrics of the bid path (names from REQUEST_FLOW.md, '.' -> '_').

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
