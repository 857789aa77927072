"""The raw events table: one row per event, partitioned by month (retention drops whole partitions).

``ReplacingMergeTree`` ordered by a key that ends in ``event_id`` makes a re-inserted event (the
consumer crashed between the ClickHouse insert and the Redis XACK, or the emitter retried a
half-applied pipeline) collapse into one row on merge; report queries read ``FINAL`` so they see
each event once even before the merge (see ``apps.analytics.selectors``). A duplicate always lands
in the same partition because the partition key is derived from the event's own timestamp.

``timestamp`` is a second-resolution ``DateTime('UTC')`` (18.16 has no DateTime64) and
``timestamp_us`` keeps the microseconds. Absent string fields are ``''``, absent numbers NULL.
"""

OPERATIONS = [
    """
    CREATE TABLE IF NOT EXISTS analytics_events (
        event_id String,
        event_type String,
        timestamp DateTime('UTC'),
        timestamp_us UInt32,
        request_id String,
        user_id String,
        campaign_id String,
        offer_id String,
        bid_id String,
        imp_id String,
        price Nullable(Float64),
        win_price Nullable(Float64),
        latency_us Nullable(Int64),
        reason String,
        channel String,
        activation_id String,
        stars Nullable(Int64),
        amount Nullable(Float64),
        platform String,
        country String,
        device_type String,
        tier String,
        extra String,
        inserted_at DateTime('UTC') DEFAULT now()
    )
    ENGINE = ReplacingMergeTree()
    PARTITION BY toYYYYMM(timestamp)
    ORDER BY (campaign_id, event_type, timestamp, event_id)
    SETTINGS index_granularity = 8192
    """,
]
