"""Serve-time inputs of every bid (``apps.analytics.bid_inputs``): what rebuilds its feature row.

Like ``analytics_events``: a ``ReplacingMergeTree`` whose sorting key ends in ``event_id`` (a
re-inserted batch collapses on merge; readers use ``FINAL``), monthly partitions dropped by the
same retention task. Sorted by time first: the trainer reads a time window and joins labels by
``bid_id``. Arrays of the profile's float32 values keep them bit-exact. Runs on ClickHouse 18.16.
"""

OPERATIONS = [
    """
    CREATE TABLE IF NOT EXISTS bid_inputs (
        event_id String,
        timestamp DateTime('UTC'),
        timestamp_us UInt32,
        bid_id String,
        request_id String,
        imp_id String,
        user_id String,
        campaign_id String,
        offer_id String,
        price Float64,
        predicted_ctr Float64,
        score Float64,
        layout_version UInt16,
        snapshot_version Int64,
        model_version String,
        served_at Float64,
        tier String,
        interests Array(Float32),
        segments Array(Int64),
        loyalty Array(Float32),
        recency Float64,
        impressions_1h UInt32,
        max_per_hour Int32,
        device_type String,
        country String,
        position UInt16,
        batch_size UInt16,
        offer_category String,
        offer_max_bid_cpm Float64,
        offer_observed_ctr Float64,
        offer_format String,
        exchange String,
        site_id String,
        site_domain String,
        app_id String,
        app_bundle String,
        publisher_id String,
        imp_tagid String,
        imp_banner_pos Int16,
        inserted_at DateTime('UTC') DEFAULT now()
    )
    ENGINE = ReplacingMergeTree()
    PARTITION BY toYYYYMM(timestamp)
    ORDER BY (timestamp, event_id)
    SETTINGS index_granularity = 8192
    """,
]
