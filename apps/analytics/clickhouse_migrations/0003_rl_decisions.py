"""The decision log of ``apps.rl`` (``apps.analytics.rl_decisions``): one row per decision under
``FINAL`` — the closed version (1) replaces the open one (0). ``reward`` is NaN while open."""

OPERATIONS = [
    """
    CREATE TABLE IF NOT EXISTS rl_decisions (
        event_id String,
        timestamp DateTime('UTC'),
        timestamp_us UInt32,
        decision_id String,
        version UInt8,
        user_id String,
        channel String,
        tier String,
        segment String,
        source String,
        offer_id String,
        campaign_id String,
        propensity Float64,
        candidates Array(String),
        probabilities Array(Float64),
        context String,
        status String,
        reward Float64,
        closed_at_us UInt64,
        inserted_at DateTime('UTC') DEFAULT now()
    )
    ENGINE = ReplacingMergeTree(version)
    PARTITION BY toYYYYMM(timestamp)
    ORDER BY (timestamp, event_id)
    SETTINGS index_granularity = 8192
    """,
]
