"""Demo data for ``manage.py seed_demo``: the four platforms, pointing at the local DSP servers that
``make run`` starts (``manage.py run_local_dsps`` on :8090, Procfile ``dsps``), 20–60 ms each, so the
first fan-out shows real concurrency:

    curl -s -X POST localhost:8081/v1/dsp/bid -d '{"id":"r1","tmax":200,"cur":["USD"],
         "imp":[{"id":"1","banner":{"w":300,"h":250},"bidfloor":0.5}],
         "app":{"id":"a1","bundle":"com.example"},"user":{"buyeruid":"u-1"}}'

Idempotent: a platform found by name is left as it is.
"""
from __future__ import annotations

from decimal import Decimal

import structlog

from apps.dsp import services
from apps.dsp.localdsp import DEMO_META_APP_SECRET
from apps.dsp.models import Platform

log = structlog.get_logger(__name__)

BASE = "http://127.0.0.1:8090"
PLATFORMS = [
    dict(name="ttd", kind="ttd", endpoint_url=f"{BASE}/bid/ttd/bid/bidder/{{supply_id}}?latency_ms=20&jitter_ms=10",
         params={"publisher_id": "demo-pub", "supply_source_id": "demo-supply"}, hourly_budget=Decimal("50")),
    dict(name="meta", kind="meta", endpoint_url=f"{BASE}/bid/meta/placementbid.ortb?latency_ms=30&jitter_ms=10",
         params={"platform_id": "demo-platform", "publisher_id": "123", "placement_id": "456"},
         credentials={"app_secret": DEMO_META_APP_SECRET}, hourly_budget=Decimal("30")),
    dict(name="dv360", kind="dv360", endpoint_url=f"{BASE}/bid/dv360?latency_ms=40&jitter_ms=10",
         params={"billing_ids": ["1234567"]}, bid_adjustment=Decimal("0.95"), gzip=True),
    dict(name="amazon", kind="amazon", endpoint_url=f"{BASE}/bid/amazon?latency_ms=50&jitter_ms=10",
         qps_cap=500, bid_adjustment=Decimal("0.9")),
]


def seed() -> None:
    created = 0
    for spec in PLATFORMS:
        if Platform.objects.filter(name=spec["name"]).exists():
            continue
        services.platform_save(platform=Platform(**spec))
        created += 1
    services.platforms_publish()
    log.info("dsp_demo_platforms", created=created, total=len(PLATFORMS))
